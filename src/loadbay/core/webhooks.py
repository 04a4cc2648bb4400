"""Webhooks: an account's endpoints (`Webhooks`), and the outbox the batch events go into
(`announce`). The workers deliver them: see `loadbay.core.delivery`.

An event is written by `announce`, in the transaction of the batch's move that causes it
(to validated, completed, error or cancelled): if that transaction commits, the event and
one delivery per subscribed endpoint are there, whatever happens to the process next; if
it rolls back, neither is. Its payload is rendered then, so it shows the batch as it was
at the event.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from loadbay.core.progress import progress
from loadbay.core.runtime import Runtime
from loadbay.core.views import batch_view
from loadbay.db import repository as repo
from loadbay.db import webhooks as hooks
from loadbay.domain.models import Account
from loadbay.domain.webhooks import EVENT_OF_STATUS, EVENT_TYPES, Delivery, Endpoint
from loadbay.errors import Conflict, FetchRefused, InvalidInput, NotFound
from loadbay.fetcher import check_url

__all__ = ["MAX_ENDPOINTS", "EndpointChanges", "Webhooks", "announce", "new_secret"]

MAX_ENDPOINTS = 20  # per account


def announce(conn: Connection, batch_id: int) -> None:
    """Put the event of the batch's status (if it has one) into the outbox, for each of its
    account's enabled endpoints that takes it. Call it in the transaction that moved the batch,
    after everything that move changes (its counts too)."""
    batch = repo.get_batch(conn, None, batch_id)
    event = EVENT_OF_STATUS.get(batch.status) if batch is not None else None
    if batch is None or event is None:
        return
    targets = hooks.subscribed(conn, batch.account_id, event)
    if not targets:
        return
    at = repo.now()
    stamp = at.isoformat().replace("+00:00", "Z")
    body = {"type": event, "timestamp": stamp, "data": batch_view(batch, progress(batch, None, {}, at))}
    hooks.insert_event(conn, batch.account_id, batch.id, event, json.dumps(body), targets, at)


def new_secret() -> str:
    """A signing secret as the Standard Webhooks specification has them: whsec_ and 24 random
    bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


_DELETE_TRIES = 5  # an endpoint's delete, done again while deliveries for it keep appearing


@dataclass(frozen=True, slots=True)
class EndpointChanges:
    """What a PATCH changes (None: left as it is; the description is set, to None too, when
    `description_named`)."""

    url: str | None = None
    events: Sequence[str] | None = None
    enabled: bool | None = None
    description: str | None = None
    description_named: bool = False


class Webhooks:
    """An account's webhook endpoints and their deliveries; another account's are NotFound."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def create(
        self,
        account: Account,
        url: str,
        events: Sequence[str] | None = None,
        *,
        enabled: bool = True,
        description: str | None = None,
    ) -> Endpoint:
        """A new endpoint (every event unless `events` names some), with a new secret."""
        self._check_url(url)
        chosen = _events(EVENT_TYPES if events is None else events)
        with self.rt.db.write() as conn:
            repo.lock_account(conn, account.id)
            if len(hooks.endpoints(conn, account.id)) >= MAX_ENDPOINTS:
                raise Conflict(
                    f"an account has at most {MAX_ENDPOINTS} webhook endpoints; delete one first",
                    code="TOO_MANY_WEBHOOKS",
                )
            values = {"url": url, "events": chosen, "enabled": enabled, "description": description}
            endpoint_id = hooks.insert_endpoint(conn, account.id, repo.now(), secret=new_secret(), **values)
            return self._get(conn, account, endpoint_id)

    def endpoints(self, account: Account) -> list[Endpoint]:
        with self.rt.db.read() as conn:
            return hooks.endpoints(conn, account.id)

    def get(self, account: Account, endpoint_id: int) -> Endpoint:
        with self.rt.db.read() as conn:
            return self._get(conn, account, endpoint_id)

    def update(self, account: Account, endpoint_id: int, changes: EndpointChanges) -> Endpoint:
        """Change the endpoint; enabling it forgets why it was disabled and its failures
        (disabling it keeps them)."""
        values: dict[str, object] = {}
        if changes.url is not None:
            self._check_url(changes.url)
            values["url"] = changes.url
        if changes.events is not None:
            values["events"] = _events(changes.events)
        if changes.description is not None or changes.description_named:
            values["description"] = changes.description
        if changes.enabled is not None:
            values["enabled"] = changes.enabled
        if changes.enabled:
            values |= {"disabled_reason": None, "failing_since": None}
        with self.rt.db.write() as conn:
            self._get(conn, account, endpoint_id)
            hooks.update_endpoint(conn, endpoint_id, repo.now(), **values)
            return self._get(conn, account, endpoint_id)

    def delete(self, account: Account, endpoint_id: int) -> None:
        """Delete the endpoint with its deliveries. A delivery written for it meanwhile (a
        batch's status change, committed between our two deletes) makes the endpoint's
        delete refused by its foreign key: then all of it is done again."""
        for tries_left in reversed(range(_DELETE_TRIES)):
            try:
                with self.rt.db.write() as conn:
                    self._get(conn, account, endpoint_id)
                    hooks.delete_endpoint(conn, endpoint_id)
                return
            except IntegrityError:
                if not tries_left:
                    raise

    def rotate(self, account: Account, endpoint_id: int) -> Endpoint:
        """A new secret for the endpoint, in use from the next attempt on."""
        with self.rt.db.write() as conn:
            self._get(conn, account, endpoint_id)
            hooks.update_endpoint(conn, endpoint_id, repo.now(), secret=new_secret())
            return self._get(conn, account, endpoint_id)

    def deliveries(
        self, account: Account, endpoint_id: int, before_id: int | None = None, limit: int = 50
    ) -> list[Delivery]:
        """The endpoint's deliveries, newest first, each with every attempt."""
        with self.rt.db.read() as conn:
            self._get(conn, account, endpoint_id)
            return hooks.deliveries(conn, endpoint_id, before_id=before_id, limit=limit)

    def redeliver(self, account: Account, endpoint_id: int, delivery_id: int) -> Delivery:
        """Send the delivery again as soon as a worker can, retried as a new event is."""
        with self.rt.db.write() as conn:
            self._get(conn, account, endpoint_id)
            self._delivery(conn, endpoint_id, delivery_id)
            hooks.redeliver(conn, delivery_id, repo.now())
            return self._delivery(conn, endpoint_id, delivery_id)

    def _get(self, conn: Connection, account: Account, endpoint_id: int) -> Endpoint:
        found = hooks.get_endpoint(conn, account.id, endpoint_id) if 0 < endpoint_id < 2**63 else None
        if found is None:
            raise NotFound(f"webhook endpoint {endpoint_id} not found")
        return found

    def _delivery(self, conn: Connection, endpoint_id: int, delivery_id: int) -> Delivery:
        found = (
            hooks.deliveries(conn, endpoint_id, only=delivery_id, limit=1) if 0 < delivery_id < 2**63 else []
        )
        if not found:
            raise NotFound(f"delivery {delivery_id} of webhook endpoint {endpoint_id} not found")
        return found[0]

    def _check_url(self, url: str) -> None:
        try:
            check_url(url, self.rt.fetch_allow)
        except FetchRefused as exc:
            raise InvalidInput(exc.message, code="INVALID_WEBHOOK_URL") from None


def _events(events: Sequence[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown or not events:
        raise InvalidInput(
            f"events are some of {', '.join(EVENT_TYPES)}"
            + (f"; not {', '.join(unknown)}" if unknown else "; name at least one"),
            code="INVALID_EVENT",
        )
    return [e for e in EVENT_TYPES if e in events]
