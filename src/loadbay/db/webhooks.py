"""Every statement about webhooks: endpoints, the event outbox, deliveries and their attempts.

Functions take an open connection, so the caller decides what commits together: an event
and its deliveries are written in the transaction of the batch's move that causes them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, func, insert, select, update

from loadbay.db.repository import new_ref
from loadbay.db.tables import webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events
from loadbay.domain.webhooks import Attempt, Delivery, DeliveryClaim, Endpoint

__all__ = [
    "any_due",
    "claim_delivery",
    "deliveries",
    "delete_endpoint",
    "disable_endpoint",
    "endpoint_failing",
    "endpoint_recovered",
    "endpoints",
    "finish_attempt",
    "get_endpoint",
    "insert_endpoint",
    "insert_event",
    "redeliver",
    "set_delivery",
    "subscribed",
    "tries_since",
    "update_endpoint",
]

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
SENDING, INTERRUPTED = "sending", "interrupted"
_INTERRUPTED = "no answer recorded: the worker stopped during the attempt"


# endpoints -----------------------------------------------------------------


def insert_endpoint(conn: Connection, account_id: int, at: datetime, **values: Any) -> int:
    row = {"account_id": account_id, "created_at": at, "updated_at": at} | _stored(values)
    return int(
        conn.execute(insert(webhook_endpoints).values(row).returning(webhook_endpoints.c.id)).scalar_one()
    )


def endpoints(conn: Connection, account_id: int) -> list[Endpoint]:
    e = webhook_endpoints.c
    query = select(webhook_endpoints).where(e.account_id == account_id).order_by(e.id)
    return [_endpoint(row) for row in conn.execute(query).mappings()]


def get_endpoint(conn: Connection, account_id: int, endpoint_id: int) -> Endpoint | None:
    e = webhook_endpoints.c
    query = select(webhook_endpoints).where(e.account_id == account_id, e.id == endpoint_id)
    row = conn.execute(query).mappings().first()
    return None if row is None else _endpoint(row)


def update_endpoint(conn: Connection, endpoint_id: int, at: datetime, **values: Any) -> None:
    statement = update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    conn.execute(statement.values(updated_at=at, **_stored(values)))


def delete_endpoint(conn: Connection, endpoint_id: int) -> None:
    """The endpoint, its deliveries and their attempts (the events stay: other endpoints)."""
    ids = select(webhook_deliveries.c.id).where(webhook_deliveries.c.endpoint_id == endpoint_id)
    conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(ids.scalar_subquery())))
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id))
    conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))


def endpoint_recovered(conn: Connection, endpoint_id: int) -> None:
    """An attempt succeeded: the endpoint's run of failures is over."""
    e = webhook_endpoints.c
    statement = update(webhook_endpoints).where(e.id == endpoint_id, e.failing_since.is_not(None))
    conn.execute(statement.values(failing_since=None))


def endpoint_failing(conn: Connection, endpoint_id: int, at: datetime) -> datetime | None:
    """An attempt failed at `at`: since when every attempt at the endpoint has failed (None
    when it is disabled already)."""
    e = webhook_endpoints.c
    statement = update(webhook_endpoints).where(e.id == endpoint_id, e.failing_since.is_(None))
    conn.execute(statement.values(failing_since=at))
    row = conn.execute(select(e.failing_since, e.enabled).where(e.id == endpoint_id)).first()
    return row.failing_since if row is not None and row.enabled else None


def disable_endpoint(conn: Connection, endpoint_id: int, reason: str) -> None:
    e = webhook_endpoints.c
    statement = update(webhook_endpoints).where(e.id == endpoint_id, e.enabled.is_(True))
    conn.execute(statement.values(enabled=False, disabled_reason=reason))


def subscribed(conn: Connection, account_id: int, event: str) -> list[int]:
    """The account's enabled endpoints that take `event`, locked until the transaction ends
    against their delete (FOR KEY SHARE, PostgreSQL): one deleted between this read and the
    event's deliveries would fail the transaction that moved the batch."""
    e = webhook_endpoints.c
    query = select(e.id, e.events).where(e.account_id == account_id, e.enabled.is_(True)).order_by(e.id)
    locked = query.with_for_update(key_share=True)
    return [row.id for row in conn.execute(locked) if event in json.loads(row.events)]


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    if "events" in values:
        values = values | {"events": json.dumps(list(values["events"]))}
    return values


def _endpoint(row: RowMapping) -> Endpoint:
    return Endpoint(
        id=row["id"],
        account_id=row["account_id"],
        url=row["url"],
        description=row["description"],
        events=tuple(json.loads(row["events"])),
        enabled=row["enabled"],
        secret=row["secret"],
        disabled_reason=row["disabled_reason"],
        failing_since=row["failing_since"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


# the outbox ----------------------------------------------------------------


def insert_event(
    conn: Connection,
    account_id: int,
    batch_id: int,
    event: str,
    payload: str,
    endpoint_ids: Sequence[int],
    at: datetime,
) -> None:
    """The event (with its payload as sent) and one pending delivery per endpoint, due now."""
    row = {
        "message_id": f"msg_{new_ref()}",
        "account_id": account_id,
        "batch_id": batch_id,
        "type": event,
        "payload": payload,
        "created_at": at,
    }
    event_id = conn.execute(insert(webhook_events).values(row).returning(webhook_events.c.id)).scalar_one()
    due = {"status": PENDING, "attempts": 0, "next_attempt_at": at, "retrying_since": at, "created_at": at}
    conn.execute(
        insert(webhook_deliveries), [{"event_id": event_id, "endpoint_id": e} | due for e in endpoint_ids]
    )


# deliveries ----------------------------------------------------------------


def any_due(conn: Connection, at: datetime) -> bool:
    """Whether a delivery to an enabled endpoint is due."""
    d, e = webhook_deliveries.c, webhook_endpoints.c
    query = (
        select(d.id)
        .join(webhook_endpoints, e.id == d.endpoint_id)
        .where(d.status == PENDING, d.next_attempt_at <= at, e.enabled.is_(True))
        .limit(1)
    )
    return conn.execute(query).first() is not None


def claim_delivery(conn: Connection, at: datetime, hold: timedelta) -> DeliveryClaim | None:
    """Take the delivery due first whose endpoint is enabled, for one attempt: its attempt
    number goes up and it is not due again until `hold` has passed (a worker that stops
    mid-attempt leaves it to the next). The attempt is logged as sending; an earlier one
    still sending was interrupted."""
    d, e, ev = webhook_deliveries.c, webhook_endpoints.c, webhook_events.c
    query = (
        select(d.id, d.endpoint_id, d.attempts, d.retrying_since, e.url, e.secret, e.failing_since)
        .add_columns(ev.message_id, ev.payload)
        .join(webhook_endpoints, e.id == d.endpoint_id)
        .join(webhook_events, ev.id == d.event_id)
        .where(d.status == PENDING, d.next_attempt_at <= at, e.enabled.is_(True))
        .order_by(d.next_attempt_at, d.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=webhook_deliveries)
    )
    row = conn.execute(query).first()
    if row is None:
        return None
    attempt = row.attempts + 1
    conn.execute(
        update(webhook_deliveries).where(d.id == row.id).values(attempts=attempt, next_attempt_at=at + hold)
    )
    a = webhook_attempts.c
    stopped = update(webhook_attempts).where(a.delivery_id == row.id, a.result == SENDING)
    conn.execute(stopped.values(result=INTERRUPTED, error=_INTERRUPTED))
    conn.execute(insert(webhook_attempts).values(delivery_id=row.id, attempt=attempt, at=at, result=SENDING))
    return DeliveryClaim(
        row.id,
        row.endpoint_id,
        attempt,
        row.url,
        row.secret,
        row.message_id,
        row.payload,
        row.retrying_since,
        row.failing_since,
    )


def finish_attempt(conn: Connection, delivery_id: int, attempt: int, **values: Any) -> None:
    """Record how attempt `attempt` went (result, status_code, error, latency_ms, response)."""
    a = webhook_attempts.c
    conn.execute(
        update(webhook_attempts).where(a.delivery_id == delivery_id, a.attempt == attempt).values(**values)
    )


def set_delivery(
    conn: Connection, delivery_id: int, attempt: int | None, *, since: datetime | None = None, **values: Any
) -> bool:
    """Change a pending delivery (only if its latest attempt is `attempt`, unless None; and
    only if its retries run since `since`, unless None: not redelivered meanwhile)."""
    d = webhook_deliveries.c
    statement = update(webhook_deliveries).where(d.id == delivery_id, d.status == PENDING)
    if attempt is not None:
        statement = statement.where(d.attempts == attempt)
    if since is not None:
        statement = statement.where(d.retrying_since == since)
    return bool(conn.execute(statement.values(**values)).rowcount)


def tries_since(conn: Connection, delivery_id: int, since: datetime) -> int:
    """The delivery's attempts made since `since` (its retries' start: the event, or the last
    redeliver)."""
    a = webhook_attempts.c
    query = select(func.count()).where(a.delivery_id == delivery_id, a.at >= since)
    return int(conn.execute(query).scalar_one())


def redeliver(conn: Connection, delivery_id: int, at: datetime) -> None:
    """Send the delivery again now, with a new retry window, whatever became of it."""
    values = {"status": PENDING, "next_attempt_at": at, "retrying_since": at, "finished_at": None}
    conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(**values))


def deliveries(
    conn: Connection,
    endpoint_id: int,
    *,
    before_id: int | None = None,
    limit: int = 50,
    only: int | None = None,
) -> list[Delivery]:
    """The endpoint's deliveries, newest first, each with its attempts (`only`: that one)."""
    d, ev = webhook_deliveries.c, webhook_events.c
    query = (
        select(webhook_deliveries, ev.message_id, ev.type, ev.batch_id)
        .join(webhook_events, ev.id == d.event_id)
        .where(d.endpoint_id == endpoint_id)
    )
    if before_id is not None:
        query = query.where(d.id < before_id)
    if only is not None:
        query = query.where(d.id == only)
    rows = list(conn.execute(query.order_by(d.id.desc()).limit(limit)).mappings())
    logs = _attempts(conn, [row["id"] for row in rows])
    return [_delivery(row, logs.get(row["id"], ())) for row in rows]


def _attempts(conn: Connection, delivery_ids: Sequence[int]) -> dict[int, tuple[Attempt, ...]]:
    if not delivery_ids:
        return {}
    a = webhook_attempts.c
    query = select(webhook_attempts).where(a.delivery_id.in_(delivery_ids)).order_by(a.delivery_id, a.attempt)
    found: dict[int, list[Attempt]] = {}
    for r in conn.execute(query):
        attempt = Attempt(r.attempt, r.at, r.result, r.status_code, r.error, r.latency_ms, r.response)
        found.setdefault(r.delivery_id, []).append(attempt)
    return {delivery_id: tuple(log) for delivery_id, log in found.items()}


def _delivery(row: RowMapping, log: tuple[Attempt, ...]) -> Delivery:
    return Delivery(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        message_id=row["message_id"],
        event=row["type"],
        batch_id=row["batch_id"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        log=log,
    )
