"""Retries: a new batch made of a finished batch's records that ended in some outcomes
(`failed` and `unprocessed` unless told), as they were read, for refusals that may not hold
any more (a customer created since, a database outage). See `BatchService.retry`.

The transaction that makes a retry copies nothing: it gives the new batch one input of kind
`retry` (`add_input`), which stands for those records, counted from the original's totals.
The retry's validation reads them from the original's staged chunks (each record's values
as read from its file or page), a few chunks per read transaction, in record order, before
any page added to the retry (`records`). A final batch's chunks are kept (clearing is for
open or failed batches), so they are there when the retry is validated, however late, and
a retry of millions of records holds no writer's turn for more than a moment.

A batch's records are sent again once: a retry asked for again with the same outcomes is
answered with the retry made (a client whose answer was lost asks again), and one whose
outcomes share some with an earlier retry's is refused (`earlier_retry`): those records were
sent already, and may have been applied; the earlier retry is the one to retry.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection

from loadbay.core import settle
from loadbay.core.types import BatchType
from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.db.engine import Database
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Batch
from loadbay.domain.records import OutcomeStatus
from loadbay.errors import Conflict
from loadbay.readers import Columns, RawRecord, iter_json_items

__all__ = [
    "KIND",
    "RETRIED",
    "add_input",
    "check_records",
    "check_retryable",
    "count",
    "earlier_retry",
    "input_name",
    "outcomes_text",
    "records",
    "taken",
]

RETRIED = frozenset({OutcomeStatus.FAILED.value, OutcomeStatus.UNPROCESSED.value})
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
    if batch.unread_pending:
        raise Conflict(
            f"batch {batch.id} was cancelled before all its data was read; a retry is made of it once "
            "the records not read yet have their outcome (unprocessed), in a moment",
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
        took = _outcomes(text)
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


def count(original: Batch, outcomes: frozenset[str]) -> int:
    """How many of the final batch's records ended in `outcomes`."""
    return sum(getattr(original.counts, name) for name in outcomes)


def check_records(conn: Connection, original: Batch, outcomes: frozenset[str]) -> None:
    """Conflict unless some of the batch's records ended in `outcomes` (NOTHING_TO_RETRY) and
    its staged records are all kept (RETRY_NOT_SUPPORTED)."""
    if not count(original, outcomes):
        names = ", ".join(sorted(outcomes))
        raise Conflict(f"no record of batch {original.id} ended {names}", code="NOTHING_TO_RETRY")
    if queue.chunks_without_payload(conn, original.id):
        raise _not_kept(original.id)


def add_input(conn: Connection, retry_id: int, original: Batch, outcomes: frozenset[str]) -> None:
    """Give the new retry its input: the `count` records of `original` that ended in `outcomes`."""
    records = count(original, outcomes)
    repo.upsert_input(conn, retry_id, KIND, input_name(original.id), format="", item_count=records, size=0)


KIND = "retry"  # the kind of a retry's input (batch_inputs.kind)


def input_name(original_id: int) -> str:
    """The name of a retry's input: the batch its records come from."""
    return f"batch-{original_id}"


def taken(retry: Batch) -> frozenset[str]:
    """The outcomes whose records the retry sends again."""
    return _outcomes(retry.retry_outcomes)


def _outcomes(text: str | None) -> frozenset[str]:
    return frozenset(text.split(",")) if text else RETRIED  # (None: made before they were kept)


def records(db: Database, retry: Batch, columns: Columns) -> Iterator[RawRecord]:
    """The records the retry sends again, as they were read, in order (as JSON items of the
    retry's type: `columns`): a few of the original's chunks per read transaction."""
    assert retry.retry_of is not None
    original, outcomes = retry.retry_of, taken(retry)
    after = -1
    while True:
        with db.read() as conn:
            parts = queue.chunk_records(conn, original, after, _CHUNKS)
        if not parts:
            return
        for seq, payload, settled in parts:
            after = seq
            if payload is None:
                raise _not_kept(original)
            if settled is not None:
                views = settle.record_views(payload, settled)
                yield from iter_json_items((v.raw for v in views if v.status in outcomes), columns)


def _not_kept(batch_id: int) -> Conflict:
    return Conflict(
        f"batch {batch_id}'s records are no longer kept; a retry cannot be made of it",
        code="RETRY_NOT_SUPPORTED",
    )
