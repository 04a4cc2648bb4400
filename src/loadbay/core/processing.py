"""The two stages a worker runs: validate a batch into chunks, and apply one chunk."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import timedelta
from decimal import Decimal
from typing import BinaryIO, cast

from sqlalchemy import Connection
from sqlalchemy.exc import DataError, IntegrityError

from loadbay.core import settle
from loadbay.core.lifecycle import Event, Status
from loadbay.core.models import Batch
from loadbay.core.records import Applied, FieldError, StagedRecord
from loadbay.core.runtime import Runtime
from loadbay.core.staging import Chunk, Stager, chunk_keys, mark_duplicates
from loadbay.core.types import ApplyContext, BatchType
from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.errors import FetchError, LoadbayError, PayloadTooLarge, UnreadableData
from loadbay.fetcher import fetch_to
from loadbay.readers import Columns, RawRecord, format_for_content_type, iter_json_items, open_reader

__all__ = ["LeaseLost", "apply_chunk", "validate_batch"]

log = logging.getLogger(__name__)

_BATCH_FAILURES = (UnreadableData, FetchError, PayloadTooLarge)
_RECORD_REFUSALS = (IntegrityError, DataError)


class LeaseLost(Exception):
    """Another worker owns this work now (our lease expired), or the batch was cancelled."""


# validation ----------------------------------------------------------------


def validate_batch(rt: Runtime, claim: queue.ValidationClaim) -> None:
    """Read, validate and chunk a claimed batch; on unreadable data the batch goes to `error`."""
    batch = _load(rt, claim.batch_id)
    if claim.attempt > rt.settings.max_attempts:
        _fail(rt, claim, "RETRIES_EXHAUSTED", f"validation was interrupted {claim.attempt - 1} times")
        return
    try:
        _start(rt, claim)
        warnings = _stage_all(rt, claim, batch)
        _finish_validation(rt, claim, batch, warnings)
    except _BATCH_FAILURES as exc:
        _fail(rt, claim, exc.code, exc.message)
    except LeaseLost:
        log.info("batch %s: validation lease lost; leaving it to its new owner", batch.id)


def _load(rt: Runtime, batch_id: int) -> Batch:
    with rt.db.read() as conn:
        batch = repo.get_batch(conn, None, batch_id)
    assert batch is not None
    return batch


def _start(rt: Runtime, claim: queue.ValidationClaim) -> None:
    with rt.db.write() as conn:
        _check_lease(conn, claim, rt)
        if claim.takeover:
            _reset_staging(conn, claim.batch_id)
        repo.add_event(conn, claim.batch_id, Event.START, Status.VALIDATING, f"attempt {claim.attempt}")


def _reset_staging(conn: Connection, batch_id: int) -> None:
    repo.delete_keys(conn, batch_id)
    queue.delete_chunks(conn, batch_id)
    repo.delete_errors(conn, batch_id)
    repo.reset_counts(conn, batch_id)


def _stage_all(rt: Runtime, claim: queue.ValidationClaim, batch: Batch) -> list[str]:
    if batch.source_url:
        _fetch_source(rt, claim, batch)
    batch_type = rt.types.get(batch.type)
    warnings: list[str] = []
    stager = Stager(batch_type, rt.settings.chunk_size)
    for chunk in stager.chunks(_records(rt, batch, batch_type.columns(), warnings)):
        _store_chunk(rt, claim, batch, chunk)
    return warnings


def _fetch_source(rt: Runtime, claim: queue.ValidationClaim, batch: Batch) -> None:
    """Copy the batch's source_url into the blob store (once per attempt)."""
    assert batch.source_url is not None
    key = f"batches/{batch.id}/inputs/source"
    writer = rt.blobs.writer(key)
    try:
        sink = cast(BinaryIO, writer)
        got = fetch_to(batch.source_url, sink, allow=rt.fetch_allow, max_bytes=rt.settings.max_upload_bytes)
    except LoadbayError:
        writer.abort()
        raise
    size = writer.commit()
    fmt = _source_format(got.content_type, got.final_url)
    with rt.db.write() as conn:
        _check_lease(conn, claim, rt)
        repo.upsert_input(conn, batch.id, "file", "source", format=fmt, blob_key=key, size=size)
        repo.add_event(conn, batch.id, "copied", Status.VALIDATING, f"{size} bytes from {got.final_url}")


def _source_format(content_type: str | None, url: str) -> str:
    name = url.split("?", 1)[0].rsplit("/", 1)[-1]
    try:
        return format_for_content_type(content_type, name)
    except LoadbayError:
        return format_for_content_type(None, name)


def _records(rt: Runtime, batch: Batch, columns: Columns, warnings: list[str]) -> Iterator[RawRecord]:
    """Every record of the batch in order: its files, then its pages."""
    with rt.db.read() as conn:
        inputs = repo.list_inputs(conn, batch.id)
    for item in inputs:
        if item["kind"] == "page":
            yield from iter_json_items(json.loads(item["items"], parse_float=Decimal), columns)
            continue
        with closing(rt.blobs.open(item["blob_key"])) as stream:
            reader = open_reader(stream, item["format"], columns)
            yield from reader
            warnings.extend(f"{item['name']}: {w}" for w in reader.warnings)


def _store_chunk(rt: Runtime, claim: queue.ValidationClaim, batch: Batch, chunk: Chunk) -> None:
    """Stage one chunk: its records (duplicates marked, type rules checked), their errors
    and the counts, in one transaction."""
    batch_type = rt.types.get(batch.type)
    with rt.db.write() as conn:
        _check_lease(conn, claim, rt)
        fresh = repo.claim_keys(conn, claim.batch_id, chunk_keys(batch_type, chunk.records))
        records = mark_duplicates(batch_type, chunk.records, fresh)
        records = batch_type.check(conn, _context(batch), records)
        invalid = [r for r in records if r.data is None]
        valid = len(records) - len(invalid)
        rows = settle.error_rows((r, r.errors) for r in invalid)
        payload = settle.encode_chunk(records)
        queue.insert_chunk(conn, claim.batch_id, chunk.seq, chunk.first_index, len(records), valid, payload)
        repo.insert_errors(conn, claim.batch_id, rows)
        repo.add_counts(conn, claim.batch_id, total=len(records), valid=valid, invalid=len(invalid))


def _check_lease(conn: Connection, claim: queue.ValidationClaim, rt: Runtime) -> None:
    until = repo.now() + timedelta(seconds=rt.settings.lease_seconds)
    if not queue.extend_validation(conn, claim.batch_id, claim.attempt, until):
        raise LeaseLost()


def _finish_validation(rt: Runtime, claim: queue.ValidationClaim, batch: Batch, warnings: list[str]) -> None:
    with rt.db.write() as conn:
        _check_lease(conn, claim, rt)
        fresh = repo.get_batch(conn, None, batch.id)
        assert fresh is not None
        detail = f"{fresh.counts.total} records, {fresh.counts.invalid} invalid"
        repo.add_event(conn, batch.id, "chunked", Status.VALIDATING, detail)
        repo.delete_keys(conn, batch.id)
        manual = batch.process_mode == "manual"
        status, event = (Status.VALIDATED, Event.VALIDATED) if manual else (Status.PROCESSING, Event.PROCESS)
        repo.set_status(
            conn, batch.id, status, event, warnings=warnings, lease_owner=None, lease_expires_at=None
        )
        settle.complete_if_done(conn, batch.id)


def _fail(rt: Runtime, claim: queue.ValidationClaim, code: str, message: str) -> None:
    """The batch's data cannot be read: nothing is applied and nothing stays staged."""
    with rt.db.write() as conn:
        try:
            _check_lease(conn, claim, rt)
        except LeaseLost:
            return
        _reset_staging(conn, claim.batch_id)
        repo.set_status(
            conn,
            claim.batch_id,
            Status.ERROR,
            Event.FAIL,
            message,
            error_code=code,
            error_message=message,
            finished_at=repo.now(),
            lease_owner=None,
            lease_expires_at=None,
        )


# applying ------------------------------------------------------------------


def apply_chunk(rt: Runtime, claim: queue.ChunkClaim) -> None:
    """Apply one claimed chunk: domain writes, outcomes and the done mark in one transaction."""
    batch = _load(rt, claim.batch_id)
    batch_type = rt.types.get(batch.type)
    records = settle.decode_chunk(claim.payload)
    if claim.attempt > rt.settings.max_attempts:
        _spend(rt, batch_type, claim, records)
        return
    ctx = _context(batch)
    try:
        with rt.db.write() as conn:
            applied = _apply(conn, batch_type, ctx, [r for r in records if r.data is not None])
            results = settle.outcomes(records, applied)
            if not settle.settle_chunk(conn, batch_type, claim, records, results):
                raise LeaseLost()
    except LeaseLost:
        log.info("chunk %s: lease lost; its new owner applies it", claim.id)
    except Exception as exc:  # any failure: give the chunk back for another attempt
        log.exception("chunk %s of batch %s failed (attempt %s)", claim.id, batch.id, claim.attempt)
        with rt.db.write() as conn:
            queue.release_chunk(conn, claim.id, claim.attempt, f"{type(exc).__name__}: {exc}"[:2000])


def _context(batch: Batch) -> ApplyContext:
    return ApplyContext(batch.account_id, batch.id, batch.test, batch.options)


def _spend(rt: Runtime, batch_type: BatchType, claim: queue.ChunkClaim, records: list[StagedRecord]) -> None:
    with rt.db.write() as conn:
        results = settle.unapplied(records, settle.RETRIES_SPENT)
        settle.settle_chunk(conn, batch_type, claim, records, results, queue.SPENT)


def _apply(
    conn: Connection, batch_type: BatchType, ctx: ApplyContext, valid: Sequence[StagedRecord]
) -> list[Applied]:
    """Apply in bulk; if the database refuses the bulk write, find the refused records one by one."""
    if not valid:
        return []
    try:
        with conn.begin_nested():
            return batch_type.apply(conn, ctx, valid)
    except _RECORD_REFUSALS:
        return [_apply_one(conn, batch_type, ctx, record) for record in valid]


def _apply_one(conn: Connection, batch_type: BatchType, ctx: ApplyContext, record: StagedRecord) -> Applied:
    try:
        with conn.begin_nested():
            return batch_type.apply(conn, ctx, [record])[0]
    except _RECORD_REFUSALS as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        return Applied(
            record.index, error=FieldError("APPLY_ERROR", f"the database refused this record: {reason}")
        )
