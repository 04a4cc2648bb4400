"""Retries: a new batch made of a finished batch's records that ended in some outcomes
(`failed` and `unprocessed` unless told), as they were read, for refusals that may not hold
any more (a customer created since, a database outage). See `BatchService.retry`.

The records are copied from the finished batch's staged chunks (each record's values as
read from its file or page) into pages of the new batch, in the transaction that creates
it, in record order: a retry is made whole or not at all.

A batch's records are sent again once: a retry asked for again with the same outcomes is
answered with the retry made (a client whose answer was lost asks again), and one whose
outcomes share some with an earlier retry's is refused (`earlier_retry`): those records were
sent already, and may have been applied; the earlier retry is the one to retry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection

from loadbay.core import intake, settle
from loadbay.core.types import BatchType
from loadbay.db import queue
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Batch
from loadbay.domain.records import OutcomeStatus
from loadbay.errors import Conflict

__all__ = ["RETRIED", "check_retryable", "copy_records", "earlier_retry", "outcomes_text"]

RETRIED = frozenset({OutcomeStatus.FAILED.value, OutcomeStatus.UNPROCESSED.value})
_PAGE = 1000  # records per page of the new batch
_CHUNKS = 20  # chunks read at a time


def check_retryable(batch: Batch, batch_type: BatchType, children: int) -> None:
    """Conflict unless a retry can be made of the batch: it is completed or cancelled, and its
    records stand alone (a type that makes its own records, needs an attachment, or a batch
    with a parent or children cannot be sent again record by record)."""
    if batch.status not in (Status.COMPLETED, Status.CANCELLED):
        raise Conflict(
            f"batch {batch.id} is {batch.status}; a retry is made of a completed or cancelled batch",
            code="RESULTS_NOT_READY",
        )
    if batch_type.generates or batch_type.attachments or batch.parent_id is not None or children:
        what = (
            "makes its own records"
            if batch_type.generates
            else "needs an attachment"
            if batch_type.attachments
            else "belongs to a family of batches"
        )
        raise Conflict(
            f"batch {batch.id} {what}: its records cannot be sent again alone; send them in a new batch",
            code="RETRY_NOT_SUPPORTED",
        )


def outcomes_text(outcomes: frozenset[str]) -> str:
    """The outcomes as stored with a retry (batches.retry_outcomes)."""
    return ",".join(sorted(outcomes))


def earlier_retry(batch_id: int, made: list[tuple[int, str | None]], outcomes: frozenset[str]) -> int | None:
    """The id of the retry of batch `batch_id` (of those `made`: id, outcomes text) that took
    exactly `outcomes`, to answer with; None when no retry took any of them. Conflict
    (ALREADY_RETRIED) when one took some of them."""
    for retry_id, text in made:
        took = frozenset(text.split(",")) if text else RETRIED
        if took == outcomes:
            return retry_id
        if took & outcomes:
            names = ", ".join(sorted(took & outcomes))
            raise Conflict(
                f"batch {batch_id}'s {names} records were sent again in batch {retry_id}; "
                f"retry batch {retry_id} instead",
                code="ALREADY_RETRIED",
            )
    return None


def copy_records(conn: Connection, original: Batch, retry: Batch, outcomes: frozenset[str]) -> int:
    """Store the records of `original` that ended in `outcomes` as pages of `retry` (open);
    how many there were."""
    copied = 0
    page: list[dict[str, Any]] = []
    for raw in _records(conn, original.id, outcomes):
        page.append(raw)
        if len(page) == _PAGE:
            intake.store_page(conn, retry, copied // _PAGE, page)
            copied, page = copied + len(page), []
    if page:
        intake.store_page(conn, retry, copied // _PAGE, page)
        copied += len(page)
    return copied


def _records(conn: Connection, batch_id: int, outcomes: frozenset[str]) -> Iterator[dict[str, Any]]:
    """The values read of each of the batch's records that ended in `outcomes`, in order."""
    after = -1
    while parts := queue.chunk_records(conn, batch_id, after, _CHUNKS):
        for seq, payload, settled in parts:
            after = seq
            if payload is None:
                raise Conflict(
                    f"batch {batch_id}'s records are no longer kept; a retry cannot be made of it",
                    code="RETRY_NOT_SUPPORTED",
                )
            if settled is not None:
                yield from (v.raw for v in settle.record_views(payload, settled) if v.status in outcomes)
