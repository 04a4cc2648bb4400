"""Webhooks: an account's endpoints, the batch events sent to them, and each delivery's log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from loadbay.domain.lifecycle import Status

__all__ = ["EVENT_OF_STATUS", "EVENT_TYPES", "Attempt", "Delivery", "DeliveryClaim", "Endpoint"]

# The status a batch reaches, and the event that says so.
EVENT_OF_STATUS: Final = {
    Status.VALIDATED: "batch.validated",
    Status.COMPLETED: "batch.completed",
    Status.ERROR: "batch.failed",
    Status.CANCELLED: "batch.cancelled",
}
EVENT_TYPES: Final = tuple(EVENT_OF_STATUS.values())


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where an account's batch events go. `disabled_reason`: why loadbay disabled it, after
    every attempt since `failing_since` failed (None when its account disabled it)."""

    id: int
    account_id: int
    url: str
    description: str | None
    events: tuple[str, ...]
    enabled: bool
    secret: str
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt at a delivery: `result` is sending (under way), delivered, failed, or
    interrupted (its worker stopped before it recorded the answer)."""

    attempt: int
    at: datetime
    result: str
    status_code: int | None = None
    error: str | None = None
    latency_ms: int | None = None
    response: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to one endpoint: `pending` until `delivered`, or `failed` once its retries ran out."""

    id: int
    endpoint_id: int
    message_id: str  # the webhook-id header: the same for every attempt
    event: str
    batch_id: int
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    log: tuple[Attempt, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryClaim:
    """A delivery a worker took: attempt number `attempt`, to send now."""

    delivery_id: int
    endpoint_id: int
    attempt: int
    url: str
    secret: str
    message_id: str
    payload: str
    retrying_since: datetime
    failing_since: datetime | None
