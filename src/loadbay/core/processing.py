"""The two stages a worker runs: validate a batch into chunks, and apply one chunk.

Attempts. Every claim of a chunk (or of a batch to validate) is an attempt. One whose work
raised counts as failed: after LOADBAY_MAX_ATTEMPTS of those the chunk's valid records
become `unprocessed` (the batch's validation ends in RETRIES_EXHAUSTED). One that was
interrupted (its worker was killed, stalled past its lease, lost its database connection
or waited too long for a lock) says nothing about the work, so it counts only against
LOADBAY_MAX_INTERRUPTIONS, a much larger cap that still ends a chunk that kills every
worker that takes it (one that runs it out of memory, say).

Locks. Every settle of a chunk locks its batch's row, so no transaction of a worker holds
that row while it does anything long: staging deletes its keys and shares in slices, each
checking the lease (an update of the row) as its last statement.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import partial
from itertools import islice
from typing import Any, BinaryIO, TypeVar, cast

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from loadbay.blobs import BlobWriter
from loadbay.core import metrics, retries, settle, totals, webhooks
from loadbay.core.columns import ColumnApplied, ColumnChunk, is_column_payload
from loadbay.core.heartbeat import Heartbeat
from loadbay.core.intake import FETCHED_NAME, fetched_folder
from loadbay.core.results import column_input_parts, input_parts, result_rows
from loadbay.core.runtime import Runtime
from loadbay.core.staging import Chunk, Stager, chunk_keys, mark_duplicates, skip_records
from loadbay.core.types import ApplyContext, BatchType, ChildTotals
from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.db.engine import database_trouble, is_interruption
from loadbay.domain.lifecycle import Event, Milestone, Status, next_status
from loadbay.domain.models import Batch
from loadbay.domain.records import Applied, FieldError, StagedRecord
from loadbay.domain.text import many
from loadbay.errors import Busy, LoadbayError, UnsupportedMediaType
from loadbay.fetcher import fetch_to
from loadbay.readers import (
    SNIFF_BYTES,
    UTF8_CHARSETS,
    Columns,
    RawRecord,
    ReadOptions,
    RowBlock,
    format_for_content_type,
    iter_json_items,
    open_blocks,
    open_reader,
    parse_content_type,
    read_through,
    sniff_format,
)

__all__ = ["LeaseLost", "applies_early", "apply_chunk", "validate_batch"]

log = logging.getLogger(__name__)

_RECORD_REFUSALS = (IntegrityError, DataError)
_Applied = TypeVar("_Applied", list[Applied], ColumnApplied)  # what applying a chunk did

# Chunks in column form staged in one transaction: up to four, and up to 8,000 records (a
# run's chunks and payloads are held until it is written). On SQLite a transaction first waits
# for the one write lock, which applying workers hold most of the time: at 1M rows with a
# worker applying meanwhile, the validating one waited 5-6 s of its 11-13 s for it a chunk at
# a time, ~2 s of 6.5-8 s four at a time, and the import took 12% less (four pairs of runs).
# On PostgreSQL no difference beyond the noise; a validation commits 4x less often.
STAGED_TOGETHER = 4
STAGED_RECORDS = 8_000


class LeaseLost(Exception):
    """Another worker owns this work now (our lease expired), or the batch was cancelled."""


# validation ----------------------------------------------------------------


def validate_batch(rt: Runtime, claim: queue.ValidationClaim) -> None:
    """Read, validate and chunk a claimed batch; on unreadable data the batch goes to `error`.

    A loadbay error (unreadable file, refused fetch, …) fails the batch with its code. Anything
    else (a bug, a lost database connection) gives the batch back at once for another attempt;
    when its attempts are spent (see the module's doc) the batch fails with the last error seen.
    """
    renew = partial(_renew_validation, rt, claim)
    try:
        batch = _load(rt, claim.batch_id)  # (in here: a connection lost even now gives the batch back)
        spent = _validation_spent(rt, claim, batch)
        if spent is not None:
            _fail(rt, claim, "RETRIES_EXHAUSTED", spent)
            return
        with Heartbeat(rt, renew):
            resume = _start(rt, claim, batch)
            staged = _stage_all(rt, claim, batch, resume)
            _finish_validation(rt, claim, batch, staged)
    except Busy as exc:  # the object store is away for a while: not the data's fault
        log.warning("batch %s: validation interrupted (attempt %s): %s", claim.batch_id, claim.attempt, exc)
        _give_back(rt, claim, exc.message, failed=False)
    except LoadbayError as exc:
        _fail(rt, claim, exc.code, exc.message)
    except LeaseLost:
        log.info("batch %s: validation lease lost; leaving it to its new owner", claim.batch_id)
    except Exception as exc:
        failed = not is_interruption(exc)
        where = (claim.batch_id, "failed" if failed else "interrupted", claim.attempt, _why(exc, failed))
        log.log(
            _level(failed), "batch %s: validation %s (attempt %s)%s", *where, exc_info=exc if failed else None
        )
        _give_back(rt, claim, _summary(exc), failed)


def _validation_spent(rt: Runtime, claim: queue.ValidationClaim, batch: Batch) -> str | None:
    """Why the batch's validation is not tried again, or None. A batch applied while validated
    counts the attempts since the last one that staged a chunk: one that resumes and goes on
    has not failed (its failures were reset then, see `_store_chunk` and `_store_columns`)."""
    since = batch.staged_attempt if batch.apply_early else 0
    interrupted = claim.attempt - 1 - since - claim.failed
    last = f": {batch.error_message}" if batch.error_message else ""
    if claim.failed >= rt.settings.max_attempts:
        return f"validation failed {claim.failed} times{last}"
    if interrupted >= rt.settings.max_interruptions:
        return f"validation was interrupted {interrupted} times (its worker stopped or lost its lease){last}"
    return None


def _summary(exc: Exception) -> str:
    """What an attempt's error says to clients (a batch's error message): a database error
    names its kind and SQLSTATE, never its statement or parameters (the log has them)."""
    if isinstance(exc, DBAPIError):
        state = getattr(exc.orig, "sqlstate", None)
        return f"{type(exc.orig).__name__} from the database" + (f" (SQLSTATE {state})" if state else "")
    return f"{type(exc).__name__}: {exc}"


def _level(failed: bool) -> int:
    """A failed attempt is logged as an error (with its traceback); an interrupted one is not:
    a WARNING line that says what the database said (`_why`)."""
    return logging.ERROR if failed else logging.WARNING


def _why(exc: Exception, failed: bool) -> str:
    return "" if failed else f": {database_trouble(exc) or exc}"


def _renew_validation(rt: Runtime, claim: queue.ValidationClaim, conn: Connection) -> bool:
    until = repo.now() + timedelta(seconds=rt.settings.lease_seconds)
    return queue.extend_validation(conn, claim.batch_id, claim.attempt, until)


def _give_back(rt: Runtime, claim: queue.ValidationClaim, error: str, failed: bool) -> None:
    """End our lease now, keeping the error, so another attempt starts at once; `failed`:
    the attempt counts as failed (else it was interrupted)."""

    def give(conn: Connection) -> None:
        queue.give_back_validation(conn, claim.batch_id, claim.attempt, repo.now(), error[:2000], failed)

    _hand_back(rt, f"batch {claim.batch_id}", give)


# A give-back the database does not take (it is restarting) is tried again after these waits,
# doubled each time, while the lease lasts: given back, the work is taken again at once, not
# once the lease has run out.
_HAND_BACK_FIRST, _HAND_BACK_LONGEST = 0.25, 5.0


def _hand_back(rt: Runtime, what: str, write: Callable[[Connection], object]) -> None:
    """Give back a claim (`write`, in a write transaction), tried again while the database
    does not answer (an interruption: `is_interruption`), one line each time, for at most the
    lease; then, or for any other error, the error is raised (the lease runs out instead)."""
    deadline = time.monotonic() + rt.settings.lease_seconds
    wait = _HAND_BACK_FIRST
    while True:
        try:
            with rt.db.write() as conn:
                write(conn)
            return
        except Exception as exc:
            if not is_interruption(exc) or time.monotonic() + wait > deadline:
                raise
            trouble = database_trouble(exc)
            log.warning(
                "%s: not given back yet, the database does not answer (%s); again in %g s",
                what,
                trouble,
                wait,
            )
        time.sleep(wait)
        wait = min(wait * 2, _HAND_BACK_LONGEST)


def _load(rt: Runtime, batch_id: int) -> Batch:
    with rt.db.single_read() as conn:
        batch = repo.get_batch(conn, None, batch_id)
    assert batch is not None
    return batch


def _start(rt: Runtime, claim: queue.ValidationClaim, batch: Batch) -> tuple[int, int]:
    """Begin an attempt; (seq, record index) of the first chunk it stages. A batch taken over
    from a worker whose lease expired starts again from nothing, unless it applies early:
    then it resumes after its last staged chunk."""
    resume = (0, 0)
    if claim.takeover and not batch.apply_early:
        drop_staging(rt, batch.id, claim)  # the bulk of `_reset_staging`, without the batch row locked
    with rt.db.write() as conn:
        _check_lease(conn, claim, rt)
        detail = f"attempt {claim.attempt}"
        if claim.takeover and batch.apply_early:
            resume = queue.staged_through(conn, claim.batch_id)
            detail += f", resuming at record {resume[1]}"
        elif claim.takeover:
            _reset_staging(conn, claim.batch_id)
        repo.add_event(conn, claim.batch_id, Event.START, Status.VALIDATING, detail)
    return resume


def _reset_staging(conn: Connection, batch_id: int) -> None:
    repo.delete_keys(conn, batch_id)
    repo.delete_shares(conn, batch_id)
    queue.delete_chunks(conn, batch_id)
    repo.delete_errors(conn, batch_id)
    repo.reset_counts(conn, batch_id)


@dataclass
class _Staged:
    """What staging a batch found besides its chunks: warnings for the batch, and the records
    of each of its files (by input id), kept once validation ends unless its files were
    counted before anything was staged (a batch applied early: `_open_early`)."""

    warnings: list[str] = field(default_factory=list)
    counted: dict[int, int] = field(default_factory=dict)
    early: bool = False
    key_met_again: bool = False  # a run's keys met one staged before (`_store_columns`)


def _stage_all(rt: Runtime, claim: queue.ValidationClaim, batch: Batch, resume: tuple[int, int]) -> _Staged:
    if batch.source_url and not batch.apply_early:  # (applying early: copied by an earlier attempt)
        _fetch_source(rt, claim, batch)
    batch_type = rt.types.get(batch.type)
    staged = _Staged()
    warnings = staged.warnings
    if batch_type.child_totals is not None:
        _sum_children(rt, claim, batch, batch_type.child_totals, warnings)
    records: Iterator[RawRecord | RowBlock]
    if batch_type.generates:
        records = _generated(rt, batch, batch_type)
    else:
        blocks = batch_type.column_plans is not None
        records = batch_records(
            rt, batch, batch_type.columns(), warnings, blocks=blocks, counted=staged.counted
        )
    seq, first = resume
    early = staged.early = batch.apply_early or applies_early(batch, batch_type)
    if early:
        _open_early(rt, claim, batch, batch_type)
        records = skip_records(records, first)
    chunks = Stager(batch_type, rt.settings.chunk_size).chunks(records, seq, first)
    for n, run in enumerate(_runs(chunks)):
        if run[0].columns is None:
            _store_chunk(rt, claim, batch, run[0], first_of_attempt=n == 0, early=early)
        else:
            _store_columns(rt, claim, run, staged, first_of_attempt=n == 0)
    staged.warnings = _summarised(warnings)
    return staged


def _runs(chunks: Iterator[Chunk]) -> Iterator[list[Chunk]]:
    """The chunks in the runs staged one transaction each: up to STAGED_TOGETHER in column
    form (and STAGED_RECORDS, unless one chunk holds more), one in record form alone (its
    type's `check` may read the database). When reading fails, the chunks read before come
    first, as a run of their own: they are staged, as they were a chunk at a time."""
    run: list[Chunk] = []
    held = 0  # the run's records
    try:
        for chunk in chunks:
            if chunk.columns is None:
                if run:
                    yield run
                    run, held = [], 0
                yield [chunk]
                continue
            if run and held + len(chunk.columns) > STAGED_RECORDS:
                yield run
                run, held = [], 0
            run.append(chunk)
            held += len(chunk.columns)
            if len(run) == STAGED_TOGETHER:
                yield run
                run, held = [], 0
    except Exception:
        if run:
            yield run
        raise
    if run:
        yield run


def applies_early(batch: Batch, batch_type: BatchType) -> bool:
    """Whether the batch's chunks are applied while it is still validated.

    An automatic batch does when its type declares `applies_while_validating`: its staging
    reads nothing that applying writes, so its outcomes are the same as when every chunk
    waits for the end of validation.
    """
    return batch.process_mode != "manual" and batch_type.applies_while_validating


def _open_early(rt: Runtime, claim: queue.ValidationClaim, batch: Batch, batch_type: BatchType) -> None:
    """Let the batch's chunks be applied as they are staged.

    The first attempt reads the data through once before it stages anything: a batch whose
    data turns out unreadable must still apply nothing. A later attempt resumes after the
    last chunk an earlier one staged (see `_start`: each chunk (or run of chunks), its keys,
    errors and counts were committed together, so nothing before it is staged twice or missed).
    """
    if batch.apply_early:
        return
    counted = _read_through(rt, batch, batch_type.columns())
    read, files = sum(counted.values()), len(counted)
    with rt.db.write() as conn:
        _check_lease(conn, claim, rt)
        repo.update_batch(conn, batch.id, apply_early=True)
        repo.set_item_counts(conn, counted)  # the batch's total is known from here on
        found = f"{many(read, 'record')} in {many(files, 'file')} read through" if files else "pages only"
        detail = f"{found}; chunks are applied as they are staged"
        repo.add_event(conn, batch.id, Milestone.READ, Status.VALIDATING, detail)


def _sum_children(
    rt: Runtime, claim: queue.ValidationClaim, batch: Batch, rule: ChildTotals, warnings: list[str]
) -> None:
    """Keep what the valid records of the batch's waiting children of `rule.child_type` add
    to the batch's records. When a child cannot be summed (its data is fetched from its URL
    only when it is validated, or cannot be read) nothing is kept and no record is checked:
    partial sums would refuse good records. The batch gets a warning; an unreadable child
    fails on its own when it is validated."""
    with rt.db.read() as conn:
        children = [
            c
            for c in repo.children(conn, batch.id)
            if c.type == rule.child_type and c.status == Status.QUEUED
        ]
    child_type = rt.types.get(rule.child_type)
    kept, reason = 0, None
    for child in children:
        if child.source_url:
            reason = f"child batch {child.id} is fetched from its URL only when it is validated"
            break
        try:
            kept += _keep_shares(rt, claim, batch, child, child_type)
        except LoadbayError as exc:
            reason = f"child batch {child.id} cannot be read: {exc.message}"
            break
    with rt.db.write() as conn:
        _check_lease(conn, claim, rt)
        if reason is None:
            detail = f"{kept} {rule.children_are} of {len(children)} child batches summed"
        else:
            repo.delete_shares(conn, batch.id)
            detail = f"{rule.children_are} not summed, {rule.field} not checked against them: {reason}"
            warnings.append(detail)
        repo.add_event(conn, batch.id, Milestone.SUMMED, Status.VALIDATING, detail)


def _keep_shares(
    rt: Runtime, claim: queue.ValidationClaim, batch: Batch, child: Batch, child_type: BatchType
) -> int:
    """Keep one child's shares, a thousand per transaction; how many it had."""
    count = 0
    shares = totals.shares(child_type, batch_records(rt, child, child_type.columns(), []))
    while part := list(islice(shares, 1000)):
        with rt.db.write() as conn:
            _check_lease(conn, claim, rt)
            repo.insert_shares(conn, batch.id, child.id, part)
        count += len(part)
    return count


def _read_through(rt: Runtime, batch: Batch, columns: Columns) -> dict[int, int]:
    """Read the batch's files once, raising what reading them raises; the records of each
    (by input id). Its pages were counted when they were stored, a retry's records when it
    was made."""
    with rt.db.read() as conn:
        files = [item for item in repo.list_inputs(conn, batch.id) if item["kind"] == "file"]
    counted: dict[int, int] = {}
    limit, options = rt.settings.max_record_bytes, ReadOptions.of(batch.options)
    for item in files:
        with closing(rt.blobs.open(item["blob_key"], item["etag"])) as stream:
            counted[item["id"]] = read_through(
                stream, item["format"], columns, max_record_bytes=limit, options=options
            )
    return counted


def _fetch_source(rt: Runtime, claim: queue.ValidationClaim, batch: Batch) -> None:
    """Copy the batch's source_url into the blob store (once per attempt).

    Each attempt writes its own copy and points the batch at it under its lease, so an
    attempt that lost its lease mid-fetch cannot replace the file a later one reads (or
    resumes reading); the copy it replaces is deleted. A copy that cannot be fetched whole, or
    whose format cannot be told, is not kept."""
    assert batch.source_url is not None
    folder = fetched_folder(batch.id, claim.attempt)
    key = f"{folder}/source"
    writer = rt.blobs.writer(key)
    sink = _HeadKept(writer)
    try:
        got = fetch_to(
            batch.source_url,
            cast(BinaryIO, sink),
            allow=rt.fetch_allow,
            max_bytes=rt.settings.max_upload_bytes,
            timeout=rt.settings.fetch_timeout,
        )
        fmt, told = _source_format(got.content_type, got.final_url, sink.head)
    except LoadbayError:
        writer.abort()
        raise
    size = writer.commit()
    try:
        with rt.db.write() as conn:
            _check_lease(conn, claim, rt)
            inputs = repo.list_inputs(conn, batch.id)
            before = [i["blob_key"] for i in inputs if i["name"] == FETCHED_NAME]
            repo.upsert_input(conn, batch.id, "file", FETCHED_NAME, format=fmt, blob_key=key, size=size)
            repo.add_event(
                conn,
                batch.id,
                Milestone.COPIED,
                Status.VALIDATING,
                f"{size} bytes from {got.final_url}, {told}",
            )
    except LeaseLost:
        rt.blobs.delete_prefix(folder)
        raise
    fetched = fetched_folder(batch.id)
    for old in before:
        if old != key and old.startswith(fetched):
            rt.blobs.delete_prefix(old.rsplit("/", 1)[0])


class _HeadKept:
    """A blob writer that keeps the first SNIFF_BYTES written, for `_source_format`."""

    def __init__(self, writer: BlobWriter) -> None:
        self._writer, self.head = writer, b""

    def write(self, data: bytes) -> int:
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]
        return self._writer.write(data)


# Content-Types that say nothing of a file's format: its URL's extension, else its first bytes, tell it.
_SAYS_NOTHING = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "text/plain", "application/vnd.ms-excel"}
)
_SERVE = (
    "serve it as text/csv, text/tab-separated-values, application/x-ndjson (JSON Lines) or "
    "application/json, or with a .csv, .tsv, .jsonl, .ndjson or .json file name"
)


def _source_format(content_type: str | None, url: str, head: bytes) -> tuple[str, str]:
    """The format of a fetched file, and which rule told it: its Content-Type, else its URL's
    extension, else (a Content-Type that says nothing) its first bytes (`head`). A charset
    other than UTF-8 is refused whichever rule tells the format, as an upload's is."""
    name = url.split("?", 1)[0].rsplit("/", 1)[-1]
    media_type, charset = parse_content_type(content_type or "")
    said = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
    if charset is not None and charset not in UTF8_CHARSETS:
        raise UnsupportedMediaType(
            f"the file came with {said}: charset {charset!r} is not read; serve it as UTF-8"
        )
    if fmt := _format_of(content_type, None):
        return fmt, f"read as {fmt} by its {said}"
    if fmt := _format_of(None, name):
        return fmt, f"read as {fmt} by the extension of {name!r} ({said})"
    if media_type not in _SAYS_NOTHING:
        raise UnsupportedMediaType(
            f"unsupported {said}, and the URL's name {name!r} has no extension loadbay reads; {_SERVE}"
        )
    if fmt := sniff_format(head):
        return fmt, f"read as {fmt} by its first bytes ({said}, no known extension in {name!r})"
    raise UnsupportedMediaType(
        f"the file's format cannot be told: it came with {said}, the URL's name {name!r} has no "
        f"extension loadbay reads, and its first bytes are not CSV or JSON text; {_SERVE}"
    )


def _format_of(content_type: str | None, name: str | None) -> str | None:
    """What `format_for_content_type` says, or None for a Content-Type and name that say nothing."""
    try:
        return format_for_content_type(content_type, name)
    except UnsupportedMediaType:
        return None


def batch_records(
    rt: Runtime,
    batch: Batch,
    columns: Columns,
    warnings: list[str],
    *,
    blocks: bool = False,
    counted: dict[int, int] | None = None,
) -> Iterator[Any]:
    """Every record of the batch in order: a retry's records, its files, then its pages (with
    `blocks`, a CSV file's records come a block at a time where they can: see `open_blocks`).
    `counted`: filled with each file's records (by input id) as it is read to its end."""
    with rt.db.read() as conn:
        inputs = repo.list_inputs(conn, batch.id)
    limit, options = rt.settings.max_record_bytes, ReadOptions.of(batch.options)
    for item in inputs:
        if item["kind"] == retries.KIND:
            yield from retries.records(rt.db, batch, columns)
            continue
        if item["kind"] == "page":
            with rt.db.read() as conn:
                text = repo.page_items(conn, item["id"])
            yield from iter_json_items(json.loads(text, parse_float=Decimal), columns)
            continue
        with closing(rt.blobs.open(item["blob_key"], item["etag"])) as stream:
            read = open_blocks if blocks else open_reader
            reader = read(stream, item["format"], columns, max_record_bytes=limit, options=options)
            if counted is None:
                yield from reader
            else:
                counted[item["id"]] = yield from _counting(reader)
            warnings.extend(f"{item['name']}: {w}" for w in reader.warnings)


def _counting(items: Iterable[RawRecord | RowBlock]) -> Generator[RawRecord | RowBlock, None, int]:
    """`items`, then how many records they held (a block holds several)."""
    count = 0
    for item in items:
        count += item.count if isinstance(item, RowBlock) else 1
        yield item
    return count


_MAX_WARNINGS = 20


def _summarised(warnings: list[str]) -> list[str]:
    """The first warnings, and how many more there were: the batch stays small whatever its files."""
    if len(warnings) <= _MAX_WARNINGS:
        return warnings
    return [*warnings[:_MAX_WARNINGS], f"… and {len(warnings) - _MAX_WARNINGS} more warnings"]


def _generated(rt: Runtime, batch: Batch, batch_type: BatchType) -> Iterator[RawRecord]:
    """The records a generating type makes itself, one page per read transaction."""
    after: str | None = None
    while True:
        with rt.db.read() as conn:
            page = batch_type.generate(conn, _context(batch, rt.db.engine.dialect), after)
        yield from (RawRecord(dict(values)) for values in page.records)
        if page.after is None:
            return
        after = page.after


def _store_chunk(
    rt: Runtime,
    claim: queue.ValidationClaim,
    batch: Batch,
    chunk: Chunk,
    *,
    first_of_attempt: bool,
    early: bool,
) -> None:
    """Stage one chunk: its records (duplicates marked, type rules checked), their errors
    and the counts, in one transaction (the attempt's first also notes the attempt, and
    when the batch applies early, that it made progress: its failures start again from 0).
    The lease is checked (the batch row locked) after the rest, just before the counts.

    The payload is encoded before the transaction, as if no earlier chunk had one of this
    chunk's keys and no rule refused a record (the usual case), and again inside only when
    that turns out wrong: on SQLite the transaction holds the one write lock.
    """
    batch_type = rt.types.get(batch.type)
    keys = chunk_keys(batch_type, chunk.records)
    unseen = mark_duplicates(batch_type, chunk.records, set(keys))  # duplicates within the chunk
    encoded = settle.encode_chunk(unseen)
    with rt.db.write() as conn:
        fresh = repo.claim_keys(conn, claim.batch_id, keys)
        marked = unseen if len(fresh) == len(keys) else mark_duplicates(batch_type, chunk.records, fresh)
        records = _checked(conn, batch_type, batch, marked)
        unchanged = marked is unseen and all(a is b for a, b in zip(records, unseen, strict=True))
        payload = encoded if unchanged else settle.encode_chunk(records)
        invalid = [r for r in records if r.data is None]
        valid = len(records) - len(invalid)
        rows = settle.error_rows((r, r.errors) for r in invalid)
        queue.insert_chunk(conn, claim.batch_id, chunk.seq, chunk.first_index, len(records), valid, payload)
        repo.insert_errors(conn, claim.batch_id, rows)
        _check_lease(conn, claim, rt)
        repo.add_counts(conn, claim.batch_id, total=len(records), valid=valid, invalid=len(invalid))
        if first_of_attempt:
            progress = {"failed_attempts": 0} if early else {}
            repo.update_batch(conn, claim.batch_id, staged_attempt=claim.attempt, **progress)


def _store_columns(
    rt: Runtime,
    claim: queue.ValidationClaim,
    run: list[Chunk],
    staged: _Staged,
    *,
    first_of_attempt: bool,
) -> None:
    """`_store_chunk` of consecutive chunks in column form (their type keeps the default
    `check`), in one transaction. Until a key of the batch is met again, the run's keys are
    recorded by one plain INSERT (`repo.insert_new_keys`); if one was seen before, that
    transaction is rolled back and the run staged again as from then on: each chunk claims
    its keys in turn, so a key's first record still wins across them."""
    chunks = [(chunk.seq, _columns_of(chunk)) for chunk in run]
    payloads = [_encoded(columns) for _, columns in chunks]
    keys = [key for chunk_keys, _ in payloads for key in chunk_keys]
    if not staged.key_met_again and len(set(keys)) == len(keys):
        try:
            _write_run(rt, claim, chunks, payloads, staged.early, first_of_attempt, new_keys=keys)
            return
        except repo.KeySeen:
            staged.key_met_again = True
    _write_run(rt, claim, chunks, payloads, staged.early, first_of_attempt, new_keys=None)


def _write_run(
    rt: Runtime,
    claim: queue.ValidationClaim,
    chunks: list[tuple[int, ColumnChunk]],
    payloads: list[tuple[list[str], str]],
    early: bool,
    first_of_attempt: bool,
    *,
    new_keys: list[str] | None,
) -> None:
    """Stage a run: `new_keys`, the run's keys when none can have been seen, else each
    chunk's keys claimed in turn and its duplicates marked."""
    with rt.db.write() as conn:
        if new_keys is not None:
            repo.insert_new_keys(conn, claim.batch_id, new_keys)
        new, errors = [], []
        for (seq, columns), (keys, encoded) in zip(chunks, payloads, strict=True):
            payload = encoded
            if new_keys is None:
                fresh = repo.claim_keys(conn, claim.batch_id, keys)
                if len(fresh) != len(keys) and columns.mark_duplicates(fresh):
                    payload = columns.encode()
            new.append(queue.NewChunk(seq, columns.first, len(columns), len(columns.valid()), payload))
            errors += columns.error_rows()
        queue.insert_chunks(conn, claim.batch_id, new)
        repo.insert_errors(conn, claim.batch_id, errors)
        total, valid = sum(c.count for c in new), sum(c.valid for c in new)
        _check_lease(conn, claim, rt)
        repo.add_counts(conn, claim.batch_id, total=total, valid=valid, invalid=total - valid)
        if first_of_attempt:
            progress = {"failed_attempts": 0} if early else {}
            repo.update_batch(conn, claim.batch_id, staged_attempt=claim.attempt, **progress)


def _columns_of(chunk: Chunk) -> ColumnChunk:
    assert chunk.columns is not None, "a run holds chunks in column form only"
    return chunk.columns


def _encoded(columns: ColumnChunk) -> tuple[list[str], str]:
    """(the chunk's keys, its payload as if no earlier chunk had one of them)."""
    keys = columns.keys()
    if columns.repeats_keys():  # duplicates within the chunk
        columns.mark_duplicates(set(keys))
    return keys, columns.encode()


def _checked(
    conn: Connection, batch_type: BatchType, batch: Batch, records: list[StagedRecord]
) -> list[StagedRecord]:
    """The type's own rules (`check`), then its child totals. The keys of refused records are released: like
    any invalid record's key, they are not "seen" (no later DUPLICATE_KEY, no parent found)."""
    checked = batch_type.check(conn, _context(batch, conn.dialect), records)
    checked = totals.check(conn, batch_type, batch.id, checked)
    pairs = zip(records, checked, strict=True)
    refused = [before.data for before, after in pairs if before.data is not None and after.data is None]
    keys = (batch_type.record_key(data) for data in refused if data is not None)
    repo.release_keys(conn, batch.id, [key for key in keys if key is not None])
    return checked


def _check_lease(conn: Connection, claim: queue.ValidationClaim, rt: Runtime) -> None:
    until = repo.now() + timedelta(seconds=rt.settings.lease_seconds)
    if not queue.extend_validation(conn, claim.batch_id, claim.attempt, until):
        raise LeaseLost()


def _finish_validation(rt: Runtime, claim: queue.ValidationClaim, batch: Batch, staged: _Staged) -> None:
    """The batch is validated (its chunks apply), then the keys and shares its staging kept
    are deleted: once it is past validation nothing reads them, and deleting a million keys
    takes a second or more, which its records need not wait for."""
    warnings = staged.warnings
    with rt.db.write() as conn:
        _check_lease(conn, claim, rt)
        if not staged.early:  # (a batch applied early had its files counted before staging)
            repo.set_item_counts(conn, staged.counted)
        fresh = repo.get_batch(conn, None, batch.id)
        assert fresh is not None
        detail = f"{many(fresh.counts.total, 'record')}, {fresh.counts.invalid} invalid"
        repo.add_event(conn, batch.id, Milestone.CHUNKED, Status.VALIDATING, detail)
        event = Event.VALIDATED if batch.process_mode == "manual" else Event.APPLY
        status = next_status(Status.VALIDATING, event)
        repo.set_status(
            conn, batch.id, status, event, warnings=warnings, lease_owner=None, lease_expires_at=None
        )
        webhooks.announce(conn, batch.id)
        settle.complete_if_done(conn, batch.id)
    try:
        drop_staging(rt, batch.id)
    except Exception:  # (the batch is past validation: a worker's sweep deletes what is left)
        log.warning("batch %s: its staging keys are left for a later sweep", batch.id, exc_info=True)


def drop_staging(rt: Runtime, batch_id: int, claim: queue.ValidationClaim | None = None) -> None:
    """Delete the keys and the shares the batch's staging kept, on SQLite a slice per
    transaction (its write lock is not held for all of them at once: 1M keys, about a
    second), on PostgreSQL all at once.

    For a batch past validation, safe to stop half-way: `drop_left_staging` finds what is
    left. For one being validated again (`claim` given, its lease checked last in each slice,
    so the batch row is locked only just before each commit): the attempt that takes over
    starts the staging again from nothing."""
    for delete_some in (repo.delete_some_keys, repo.delete_some_shares):
        after: repo.Slice | None = None
        while True:
            with rt.db.write() as conn:
                after = delete_some(conn, batch_id, after)
                if claim is not None:
                    _check_lease(conn, claim, rt)
            if after is None:
                break


def drop_left_staging(rt: Runtime) -> bool:
    """`drop_staging` of every batch past validation whose keys or shares are left (its
    worker stopped while it deleted them); whether there was one."""
    with rt.db.read() as conn:
        left = repo.staging_left(conn)
    for batch_id in left:
        log.info("batch %s: deleting the staging keys a stopped worker left", batch_id)
        drop_staging(rt, batch_id)
    return bool(left)


def _fail(rt: Runtime, claim: queue.ValidationClaim, code: str, message: str) -> None:
    """The batch's data cannot be read: nothing is applied and nothing stays staged (unless
    some of it was applied early: see `_stop_early`)."""
    with rt.db.write() as conn:
        try:
            _check_lease(conn, claim, rt)
        except LeaseLost:
            return
        batch = repo.get_batch(conn, None, claim.batch_id, lock=True)
        assert batch is not None
        if batch.apply_early and queue.applied_chunks(conn, batch.id):
            _stop_early(rt, conn, batch, code, message)
            return
        _reset_staging(conn, claim.batch_id)
        repo.update_batch(conn, batch.id, apply_early=False)
        finished = repo.now()
        metrics.batch_finished(batch, Status.ERROR, finished)
        repo.set_status(
            conn,
            claim.batch_id,
            Status.ERROR,
            Event.FAIL,
            message,
            error_code=code,
            error_message=message,
            finished_at=finished,
            lease_owner=None,
            lease_expires_at=None,
        )
        webhooks.announce(conn, claim.batch_id)


def _stop_early(rt: Runtime, conn: Connection, batch: Batch, code: str, message: str) -> None:
    """A batch applied while validated whose validation cannot go on, after some of its chunks
    were applied: it cannot end in `error` (which means nothing was applied), so it stops as a
    cancel stops it. Its staged records not yet applied become unprocessed, the records never
    staged have no outcome (the counts say how many were staged), and it keeps the code and
    message of what stopped it."""
    reason = FieldError(code, f"not applied: the batch's validation failed: {message}"[:2000])
    staged = f"{many(batch.counts.total, 'record')} {'was' if batch.counts.total == 1 else 'were'}"
    detail = f"validation failed after {staged} staged: {message}"[:2000]
    values: dict[str, Any] = {
        "error_code": code,
        "error_message": message,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    settle.cancel(conn, rt.types.get(batch.type), batch, detail, reason, **values)


# applying ------------------------------------------------------------------


def apply_chunk(rt: Runtime, claim: queue.ChunkClaim) -> None:
    """Apply one claimed chunk: domain writes, outcomes and the done mark in one transaction.

    Any failure gives the chunk back for another attempt; a chunk whose attempts are spent
    (see the module's doc) is settled with its valid records `unprocessed`, so the batch
    still finishes.
    """
    spent = _chunk_spent(rt, claim)
    if spent is not None:
        _spend(rt, claim, spent)
        return
    renew = partial(_renew_chunk, rt, claim)
    try:
        with Heartbeat(rt, renew):
            _apply_and_settle(rt, claim)
    except LeaseLost:
        log.info("chunk %s: lease lost; its new owner applies it", claim.id)
    except Exception as exc:
        failed = not is_interruption(exc)
        where = (
            claim.id,
            claim.batch_id,
            "failed" if failed else "interrupted",
            claim.attempt,
            _why(exc, failed),
        )
        log.log(
            _level(failed), "chunk %s of batch %s %s (attempt %s)%s", *where, exc_info=exc if failed else None
        )
        _release(rt, claim, exc, failed)


def _release(rt: Runtime, claim: queue.ChunkClaim, exc: Exception, failed: bool) -> None:
    """Give the chunk back for another attempt at once, keeping the error."""
    error = _summary(exc)[:2000]
    _hand_back(
        rt,
        f"chunk {claim.id}",
        lambda conn: queue.release_chunk(conn, claim.id, claim.attempt, error, failed),
    )


def _chunk_spent(rt: Runtime, claim: queue.ChunkClaim) -> FieldError | None:
    """The reason the chunk is not tried again (its records' error), or None."""
    if claim.failed >= rt.settings.max_attempts:
        return settle.RETRIES_SPENT
    if claim.attempt - 1 - claim.failed >= rt.settings.max_interruptions:
        return settle.INTERRUPTIONS_SPENT
    return None


def _apply_and_settle(rt: Runtime, claim: queue.ChunkClaim) -> None:
    """Decode the chunk and do what needs no database (the type's `prepare`, the input half of
    the result rows) first, then write in one transaction: on SQLite it holds the one write
    lock, which the validating worker needs too."""
    batch = _load(rt, claim.batch_id)
    batch_type, ctx = rt.types.get(batch.type), _context(batch, rt.db.engine.dialect)
    if is_column_payload(claim.payload):
        _apply_columns(rt, claim, batch.type, batch_type, ctx)
        return
    records = settle.decode_chunk(claim.payload)
    valid = [r for r in records if r.data is not None]
    prepared = batch_type.prepare(ctx, valid) if valid else None
    inputs = input_parts(batch_type.columns().names, records)

    def bulk(conn: Connection) -> list[Applied]:
        return batch_type.apply_prepared(conn, ctx, valid, prepared) if valid else []

    def one_by_one(conn: Connection) -> list[Applied]:
        return [_apply_one(conn, batch_type, ctx, record) for record in valid]

    def settled(conn: Connection, applied: list[Applied]) -> bool:
        results = settle.outcomes(records, applied)
        return settle.settle_chunk(conn, batch_type, claim, records, results, inputs=inputs)

    with metrics.timed_chunk(batch.type):
        _write_chunk(rt, bulk, one_by_one, settled)


def _apply_columns(
    rt: Runtime, claim: queue.ChunkClaim, type_name: str, batch_type: BatchType, ctx: ApplyContext
) -> None:
    """`_apply_and_settle` of a chunk in column form."""
    chunk = ColumnChunk.decode(claim.payload)
    valid = chunk.valid()
    prepared = batch_type.prepare_columns(ctx, chunk, valid) if valid else None
    inputs = column_input_parts(batch_type.columns().names, chunk.raw, len(chunk))

    def bulk(conn: Connection) -> ColumnApplied:
        return batch_type.apply_columns(conn, ctx, chunk, valid, prepared) if valid else ColumnApplied([], [])

    def one_by_one(conn: Connection) -> ColumnApplied:
        records = chunk.to_records()
        return ColumnApplied.of([_apply_one(conn, batch_type, ctx, records[i]) for i in valid])

    def settled(conn: Connection, applied: ColumnApplied) -> bool:
        return settle.settle_columns(conn, claim, chunk, applied, inputs)

    with metrics.timed_chunk(type_name):
        _write_chunk(rt, bulk, one_by_one, settled)


class _Refused(Exception):
    """The database refused a chunk's bulk write; its transaction is rolled back."""


def _write_chunk(
    rt: Runtime,
    bulk: Callable[[Connection], _Applied],
    one_by_one: Callable[[Connection], _Applied],
    settled: Callable[[Connection, _Applied], bool],
) -> None:
    """Apply a chunk and settle it (`settled`: False when the lease was lost) in one
    transaction: in bulk, with no savepoint around it (on PostgreSQL two round trips a chunk);
    if the database refuses the bulk write, that transaction is rolled back and a new one
    applies the records one by one, each in a savepoint, to tell the refused ones."""
    try:
        _write_settled(rt, bulk, settled, refusable=True)
    except _Refused:
        _write_settled(rt, one_by_one, settled, refusable=False)


def _write_settled(
    rt: Runtime,
    apply: Callable[[Connection], _Applied],
    settled: Callable[[Connection, _Applied], bool],
    *,
    refusable: bool,
) -> None:
    with rt.db.write() as conn:
        try:
            applied = apply(conn)
        except _RECORD_REFUSALS as exc:
            if refusable:
                raise _Refused() from exc
            raise
        if not settled(conn, applied):
            raise LeaseLost()


def _renew_chunk(rt: Runtime, claim: queue.ChunkClaim, conn: Connection) -> bool:
    until = repo.now() + timedelta(seconds=rt.settings.lease_seconds)
    return queue.extend_chunk(conn, claim.id, claim.attempt, until)


def _context(batch: Batch, dialect: Dialect) -> ApplyContext:
    return ApplyContext(batch.account_id, batch.id, batch.test, batch.options, dialect)


def _spend(rt: Runtime, claim: queue.ChunkClaim, reason: FieldError) -> None:
    """Settle a chunk whose attempts are spent: its valid records become `unprocessed`.

    If even that cannot be done normally (its type is gone, its payload is unreadable, a
    bug), the chunk is closed with its valid records counted unprocessed and, as its result
    rows, its invalid records' (`_kept_rows`). An interruption (a lock waited for too long,
    a lost connection) only gives it back.
    """
    try:
        batch_type = rt.types.get(_load(rt, claim.batch_id).type)
        records = settle.decode_chunk(claim.payload)
        with rt.db.write() as conn:
            results = settle.unapplied(records, reason)
            settle.settle_chunk(conn, batch_type, claim, records, results, queue.SPENT)
    except Exception as exc:
        if is_interruption(exc):
            log.warning("chunk %s: interrupted while its records were made unprocessed", claim.id)
            _release(rt, claim, exc, failed=False)
            return
        log.exception("chunk %s: cannot settle it record by record; closing it", claim.id)
        _close_unsettled(rt, claim, reason)


def _close_unsettled(rt: Runtime, claim: queue.ChunkClaim, reason: FieldError) -> None:
    """Close a chunk that could not be settled, keeping the result rows that can still be
    made: every record's (`_all_rows`), else its invalid records' (served since validation
    ended: `settle.invalid_rows`), else none."""
    rows = ""
    for made in (_all_rows, _invalid_rows):
        try:
            rows = made(rt, claim, reason)
            break
        except Exception as exc:
            if is_interruption(exc):
                log.warning("chunk %s: interrupted while it was closed", claim.id)
                _release(rt, claim, exc, failed=False)
                return
            log.exception("chunk %s: its result rows cannot be made (%s)", claim.id, made.__name__)
    with rt.db.write() as conn:
        settle.close_unreadable_chunk(conn, claim, rows)


def _all_rows(rt: Runtime, claim: queue.ChunkClaim, reason: FieldError) -> str:
    """Every record's result row, as settling the chunk spent would have written it: the
    invalid ones as staged, the valid ones unprocessed for `reason`."""
    records = settle.decode_chunk(claim.payload)
    return result_rows(_columns(rt, claim), records, settle.unapplied(records, reason))


def _invalid_rows(rt: Runtime, claim: queue.ChunkClaim, reason: FieldError) -> str:
    return settle.invalid_rows(_columns(rt, claim), claim.payload)


def _columns(rt: Runtime, claim: queue.ChunkClaim) -> Sequence[str]:
    return rt.types.get(_load(rt, claim.batch_id).type).columns().names


def _apply_one(conn: Connection, batch_type: BatchType, ctx: ApplyContext, record: StagedRecord) -> Applied:
    try:
        with conn.begin_nested():
            return batch_type.apply(conn, ctx, [record])[0]
    except _RECORD_REFUSALS as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        return Applied(
            record.index, error=FieldError("APPLY_ERROR", f"the database refused this record: {reason}")
        )
