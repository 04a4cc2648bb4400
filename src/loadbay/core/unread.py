"""Records a cancel left unread: every record of a batch ends with one outcome, those of a
batch cancelled before its validation read all its data too.

A batch cancelled while queued or validating (`waits_for_reading`) is `cancelled` at once,
its staged chunks settled as any cancel settles them, and marked `unread_pending`. A worker
then takes it (`queue.claim_unread`, with a lease as a validation has) and reads the rest of
its data from where staging stopped, without validating it: each further record is staged in
a chunk that is final already, `unprocessed` ("the batch was cancelled before this record was
read"), with its result row and its values, so that a retry sends it again. One chunk per
transaction, its counts with it; a worker that dies mid-way leaves its lease to expire, and
the next one goes on after the last chunk staged. Once read through, the batch's webhook
event goes out and its result file is written (neither happens before: both would lack the
records not read yet), and its uploaded files are removed, as a cancel removes them.

Data that cannot be read further (a file unreadable from some point on) ends the reading
there: its records past that point stay unknown, as the event's detail says.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from functools import partial

from sqlalchemy import Connection

from loadbay.core import files, settle, webhooks
from loadbay.core.heartbeat import Heartbeat
from loadbay.core.processing import batch_records
from loadbay.core.results import result_rows
from loadbay.core.runtime import Runtime
from loadbay.core.staging import skip_records
from loadbay.core.types import BatchType
from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.db.engine import is_interruption
from loadbay.domain.lifecycle import Milestone, Status
from loadbay.domain.models import Batch
from loadbay.domain.records import FieldError, OutcomeStatus, RecordOutcome, StagedRecord
from loadbay.domain.text import many
from loadbay.errors import Busy, LoadbayError
from loadbay.readers import RawRecord, RowBlock

__all__ = ["NEVER_READ", "read_unread", "waits_for_reading"]

log = logging.getLogger(__name__)

NEVER_READ = FieldError("UNPROCESSED", "not applied: the batch was cancelled before this record was read")


class LeaseLost(Exception):
    """Another worker reads the batch's unread records now."""


def waits_for_reading(batch: Batch, batch_type: BatchType) -> bool:
    """Whether cancelling the batch leaves records of its data unread: it was submitted and its
    validation had not read it through (a type that makes its own records has none to read)."""
    return batch.status in (Status.QUEUED, Status.VALIDATING) and not batch_type.generates


def read_unread(rt: Runtime, claim: queue.ValidationClaim) -> None:
    """Give each record of the claimed batch not read yet its outcome, unprocessed. The
    database or the store away a moment gives the batch back (read again from where it
    stopped); anything else ends the reading there, with what stopped it in its event: the
    batch is never left waiting for a reading that fails the same way each time."""
    try:
        with Heartbeat(rt, partial(_renew, rt, claim)):
            read, stopped = _stage_rest(rt, claim)
            _finish(rt, claim, read, stopped)
    except LeaseLost:
        log.info("batch %s: reading its unread records: lease lost", claim.batch_id)
        return
    except Exception as exc:
        if not _passing(exc):
            raise
        log.warning("batch %s: reading its unread records interrupted: %s", claim.batch_id, exc)
        with rt.db.write() as conn:
            queue.extend_unread(conn, claim.batch_id, claim.attempt, None)  # (another goes on at once)
        return
    files.remove_inputs(rt, claim.batch_id)


def _passing(exc: Exception) -> bool:
    """Whether the reading can go on later: the database or the object store was away."""
    return isinstance(exc, Busy) or is_interruption(exc)


def _load(rt: Runtime, batch_id: int) -> tuple[Batch, BatchType]:
    with rt.db.single_read() as conn:
        batch = repo.get_batch(conn, None, batch_id)
    assert batch is not None
    return batch, rt.types.get(batch.type)


def _stage_rest(rt: Runtime, claim: queue.ValidationClaim) -> tuple[int, str]:
    """Stage the records after the last staged chunk; (how many, why reading stopped early or "")."""
    read = 0
    try:
        batch, batch_type = _load(rt, claim.batch_id)
        with rt.db.read() as conn:
            seq, first = queue.staged_through(conn, batch.id)
            inputs = len(repo.list_inputs(conn, batch.id))
        if batch.source_url and not inputs:
            return 0, "its file at source_url had not been fetched: its records are not known"
        records = skip_records(batch_records(rt, batch, batch_type.columns(), []), first)
        for part in _parts(records, rt.settings.chunk_size):
            _store(rt, claim, batch_type, queue.NewChunk(seq, first + read, len(part), 0, ""), part)
            seq, read = seq + 1, read + len(part)
    except LeaseLost:
        raise
    except Exception as exc:
        if _passing(exc):
            raise
        if not isinstance(exc, LoadbayError):
            log.exception("batch %s: reading its unread records failed; ending it there", claim.batch_id)
        what = (
            f"{exc.code}: {exc.message}" if isinstance(exc, LoadbayError) else f"{type(exc).__name__}: {exc}"
        )
        return read, f"the rest of the data could not be read ({what})"
    return read, ""


def _parts(items: Iterator[RawRecord | RowBlock], size: int) -> Iterator[list[RawRecord]]:
    """The records (read one by one: no block) in lists of `size`, the last shorter; when
    reading fails, the records read before it first."""
    part: list[RawRecord] = []
    try:
        for item in items:
            assert isinstance(item, RawRecord)
            part.append(item)
            if len(part) == size:
                yield part
                part = []
    except Exception:
        if part:
            yield part
        raise
    if part:
        yield part


def _store(
    rt: Runtime,
    claim: queue.ValidationClaim,
    batch_type: BatchType,
    chunk: queue.NewChunk,
    part: list[RawRecord],
) -> None:
    """Stage `part` as one chunk, final: every record unprocessed (NEVER_READ)."""
    columns = batch_type.columns().names
    staged = [_staged(batch_type, chunk.first_index + n, raw) for n, raw in enumerate(part)]
    outcomes = [RecordOutcome(OutcomeStatus.UNPROCESSED, errors=(NEVER_READ,))] * len(staged)
    payload = settle.encode_chunk(staged)
    rows = result_rows(columns, staged, outcomes)
    with rt.db.write() as conn:
        _check_lease(rt, claim, conn)
        full = queue.NewChunk(chunk.seq, chunk.first_index, chunk.count, 0, payload)
        queue.insert_cancelled_chunk(conn, claim.batch_id, full, settle.encode_outcomes(outcomes), rows)
        repo.add_counts(conn, claim.batch_id, total=len(staged), unprocessed=len(staged))


def _staged(batch_type: BatchType, index: int, raw: RawRecord) -> StagedRecord:
    """A record as read and not checked: its values (or its text, when it could not be read as
    values, in the type's first column, as validation shows it)."""
    shown = raw.values
    if raw.text is not None and batch_type.columns().names:
        shown = {batch_type.columns().names[0]: raw.text}
    return StagedRecord(index, batch_type.external_id(raw.values), shown, None)


def _finish(rt: Runtime, claim: queue.ValidationClaim, read: int, stopped: str) -> None:
    """The batch is read through (or as far as it can be): its event, and its webhook's."""
    detail = f"{many(read, 'record')} never read before the cancel: unprocessed"
    if stopped:
        detail += f"; {stopped}"
    with rt.db.write() as conn:
        _check_lease(rt, claim, conn)
        repo.update_batch(conn, claim.batch_id, unread_pending=False, lease_owner=None, lease_expires_at=None)
        repo.add_event(conn, claim.batch_id, Milestone.CHUNKED, Status.CANCELLED, detail[:2000])
        webhooks.announce(conn, claim.batch_id)


def _check_lease(rt: Runtime, claim: queue.ValidationClaim, conn: Connection) -> None:
    """LeaseLost unless this worker still reads the batch (its row locked until the commit)."""
    if not _renew(rt, claim, conn):
        raise LeaseLost()


def _renew(rt: Runtime, claim: queue.ValidationClaim, conn: Connection) -> bool:
    until = repo.now() + timedelta(seconds=rt.settings.lease_seconds)
    return queue.extend_unread(conn, claim.batch_id, claim.attempt, until)
