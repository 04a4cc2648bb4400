"""Delivering webhook events: one attempt at a time, by the workers (`deliver_next`).

An attempt is claimed in one transaction, sent with no transaction open (it may wait for
LOADBAY_WEBHOOK_TIMEOUT seconds), and recorded in another: the delivery log has every
attempt once, an attempt whose worker stopped shows as interrupted, and the delivery is
claimed again once its hold (twice the timeout) has passed. So an event is delivered at
least once: a receiver may see the same `webhook-id` twice.

Each attempt is signed as the Standard Webhooks specification says: `webhook-id` (the
event's, the same for every attempt), `webhook-timestamp` (the attempt's, in seconds) and
`webhook-signature`, `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` keyed with the
endpoint secret's bytes (base64 after `whsec_`). Its URL goes through the fetcher's guard
(public addresses only, unless LOADBAY_FETCH_ALLOW), and a redirect is not followed.

A 2xx answer delivers it. Any other answer, or none, fails the attempt: the next comes after
LOADBAY_WEBHOOK_BACKOFF seconds, twice as long after each failure (at most an hour), each
wait cut by up to half at random, until LOADBAY_WEBHOOK_RETRY_FOR seconds have passed since
the event (or the last redeliver): a wait that would end later ends then, with one last
attempt, and a failure after that fails the delivery. An endpoint whose every
attempt has failed for LOADBAY_WEBHOOK_DISABLE_AFTER seconds is disabled, with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from loadbay import __version__
from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.db import repository as repo
from loadbay.db import webhooks as hooks
from loadbay.domain.webhooks import DeliveryClaim
from loadbay.errors import FetchError, FetchRefused
from loadbay.fetcher import Answer, post

__all__ = ["AttemptResult", "backoff", "deliver_next", "signature"]

_MAX_WAIT = 3600.0  # seconds between two attempts at most
_EXCERPT = 1024  # bytes of an answer kept in the log
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How one attempt went: delivered (a 2xx), or why not."""

    delivered: bool
    status_code: int | None
    error: str | None
    latency_ms: int
    response: str | None


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value for this secret, message and time."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def backoff(failures: int, first: float) -> float:
    """Seconds to wait after `failures` failed attempts in a row."""
    wait: float = min(_MAX_WAIT, first * 2.0 ** (failures - 1))
    return wait * random.uniform(0.5, 1.0)


def deliver_next(rt: Runtime) -> bool:
    """Make one attempt at the delivery due first; False when none is due."""
    hold = timedelta(seconds=2 * rt.settings.webhook_timeout)
    with rt.db.read() as conn:  # (most of the time none is: no write lock taken for nothing)
        if not hooks.any_due(conn, repo.now()):
            return False
    with rt.db.write() as conn:
        claim = hooks.claim_delivery(conn, repo.now(), hold)
    if claim is None:
        return False
    result = _attempt(rt, claim)
    with rt.db.write() as conn:
        _record(conn, rt.settings, claim, result, repo.now())
    return True


def _attempt(rt: Runtime, claim: DeliveryClaim) -> AttemptResult:
    body = claim.payload.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"loadbay/{__version__}",
        "webhook-id": claim.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(claim.secret, claim.message_id, timestamp, body),
    }
    started = time.monotonic()
    try:
        answer = post(
            claim.url,
            body,
            headers,
            allow=rt.fetch_allow,
            timeout=rt.settings.webhook_timeout,
            max_excerpt=_EXCERPT,
        )
    except (FetchRefused, FetchError) as exc:
        return AttemptResult(False, None, _storable(exc.message), _since(started), None)
    return _answered(answer, _since(started))


def _answered(answer: Answer, latency_ms: int) -> AttemptResult:
    text = _storable(answer.excerpt.decode("utf-8", errors="replace"))
    code = answer.status_code
    if 200 <= code < 300:
        return AttemptResult(True, code, None, latency_ms, text)
    if 300 <= code < 400:
        error = f"HTTP {code}: a redirect (to {answer.location or 'nowhere'}), which is not followed"
    else:
        error = f"HTTP {code}: not a 2xx answer"
    return AttemptResult(False, code, _storable(error), latency_ms, text)


def _storable(text: str) -> str:
    """`text` with U+FFFD for what no database can hold: U+0000 (PostgreSQL refuses it in text;
    the attempt could not be recorded and the event was sent again and again) and surrogates."""
    return _UNSTORABLE.sub("\ufffd", text)


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _record(
    conn: Connection, settings: Settings, claim: DeliveryClaim, result: AttemptResult, at: datetime
) -> None:
    """The attempt in the log; the delivery delivered, retried later or failed; the endpoint's
    run of failures ended, or made longer (and the endpoint disabled when it is long enough)."""
    outcome = hooks.DELIVERED if result.delivered else hooks.FAILED
    log = {"status_code": result.status_code, "error": result.error, "latency_ms": result.latency_ms}
    hooks.finish_attempt(
        conn, claim.delivery_id, claim.attempt, result=outcome, response=result.response, **log
    )
    if result.delivered:
        # (even by an attempt whose hold ran out: the receiver has it; but not one redelivered
        # during this attempt, which is sent again as asked)
        delivered = {"status": hooks.DELIVERED, "next_attempt_at": None, "finished_at": at}
        hooks.set_delivery(conn, claim.delivery_id, None, since=claim.retrying_since, **delivered)
        hooks.endpoint_recovered(conn, claim.endpoint_id)
        return
    # (the backoff and the window start again at a redeliver, as for a new event; one made
    # during this attempt is left as it is)
    tries = hooks.tries_since(conn, claim.delivery_id, claim.retrying_since)
    after = at + timedelta(seconds=backoff(max(tries, 1), settings.webhook_backoff))
    end = claim.retrying_since + timedelta(seconds=settings.webhook_retry_for)
    if at >= end:
        values = {"status": hooks.FAILED, "next_attempt_at": None, "finished_at": at}
    else:  # (a wait past the window's end is cut to it: the last attempt comes at its end)
        values = {"next_attempt_at": min(after, end)}
    hooks.set_delivery(conn, claim.delivery_id, claim.attempt, since=claim.retrying_since, **values)
    since = hooks.endpoint_failing(conn, claim.endpoint_id, at)
    if since is not None and at - since >= timedelta(seconds=settings.webhook_disable_after):
        reason = (
            f"disabled {_stamp(at)}: every attempt since {_stamp(since)} failed (the last: {result.error})"
        )
        hooks.disable_endpoint(conn, claim.endpoint_id, reason[:2000])


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")
