"""A batch's files in the blob store once it is final: its result files, and their removal
when the retention ends (LOADBAY_RETENTION_DAYS).

Result files. Each final batch gets `batches/{id}/results.csv` (every record with its
outcome; for a batch that ended without records, one row that says why) and, when it has
records, `batches/{id}/refused.csv` (the invalid, failed and unprocessed ones). They are
written from the chunks' result rows outside any database transaction, by a worker step
(`store_next_results`) or, when a signed download URL is asked for before a worker got to
it, by the server that hands the URL out (`ensure_results`). Writing is idempotent: the
same batch gives the same bytes, an object appears whole or not at all, and the durable
mark (`batches.results_at`) is set only once both are written, and only if the batch is
still in the status they were written for (a cleared `error` batch gets its file again).
A worker that dies mid-way leaves no mark, and its claim expires.

Before a batch is final, once its validation has ended, the rows its result file will have
for its invalid records are known: `invalid_parts` makes them from the chunks (a settled
chunk's result rows, or the staged payload of one not yet settled).

Retention. `Sweeper` removes every file of batches final for longer than the retention
(uploads, fetched copies, attachments, result files), a bounded number of batches per
pass, and marks them (`batches.files_removed_at`), so asking for their results is `Gone`.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, BinaryIO, TypeVar

from loadbay.blobs import BlobWriter
from loadbay.core import settle
from loadbay.core.results import escape_cell, header_row, rows_of_status
from loadbay.core.runtime import Runtime
from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Batch
from loadbay.errors import Gone

__all__ = [
    "REFUSED",
    "REFUSED_FILE",
    "RESULTS_FILE",
    "Sweeper",
    "ensure_results",
    "invalid_parts",
    "remove_inputs",
    "require_kept",
    "result_key",
    "result_parts",
    "store_next_results",
    "stored_text",
]

log = logging.getLogger(__name__)

RESULTS_FILE, REFUSED_FILE = "results.csv", "refused.csv"
REFUSED = frozenset({"invalid", "failed", "unprocessed"})  # the outcomes of the refused records
_INVALID = frozenset({"invalid"})
CSV = "text/csv; charset=utf-8"
_PAGE = 5  # chunks' result rows read per transaction (20 of 4,000 records: 25 MB more in a worker)
_PAYLOADS = 5  # chunks' staged payloads read per transaction (each holds a chunk's records)
_CLAIM = timedelta(minutes=10)  # how long a worker has to write one batch's result files
_RETRY = timedelta(seconds=10)  # before result files whose writing failed are tried again
_SWEEP_EVERY = 60.0  # seconds between two retention passes of one worker
_SWEEP_BATCHES = 20  # batches whose files one pass removes at most
_READ = 1 << 20


def result_key(batch_id: int, name: str = RESULTS_FILE) -> str:
    return f"batches/{batch_id}/{name}"


def result_parts(rt: Runtime, batch_id: int, header: str) -> Iterator[str]:
    """The result file from the chunks' rows: the header, then each chunk's rows in order
    (a page of chunks per read transaction)."""
    yield header
    for _, text in _by_seq(rt, partial(queue.result_parts, batch_id=batch_id, limit=_PAGE)):
        yield text or ""


def invalid_parts(rt: Runtime, batch_id: int, columns: Sequence[str]) -> Iterator[str]:
    """The result file's header, then the rows it has (or will have, once the batch is final)
    for the batch's invalid records, in order, chunk by chunk: read from each settled chunk's
    result rows, made from the staged payload of each chunk not yet settled
    (`settle.invalid_rows`: as its settling will write them). For a batch whose validation has
    ended: no invalid record is staged after that."""
    yield header_row(columns)
    for _, result, payload in _by_seq(rt, partial(queue.invalid_parts, batch_id=batch_id, limit=_PAYLOADS)):
        if rows := _invalid_rows(columns, result, payload):
            yield rows


_Row = TypeVar("_Row", bound=tuple[Any, ...])


def _by_seq(rt: Runtime, read: Callable[..., list[_Row]]) -> Iterator[_Row]:
    """The rows `read(conn, after_seq=…)` gives, a page per read transaction, each page after
    the last one's chunk (every row starts with its chunk's seq)."""
    after = -1
    while rows := _read_page(rt, read, after):
        yield from rows
        after = rows[-1][0]


def _read_page(rt: Runtime, read: Callable[..., list[_Row]], after: int) -> list[_Row]:
    with rt.db.read() as conn:
        return read(conn, after_seq=after)


def _invalid_rows(columns: Sequence[str], result: str | None, payload: str | None) -> str:
    """A chunk's invalid records' result rows, from its result rows or its staged payload."""
    if result is not None:
        return rows_of_status(result, len(columns), _INVALID)
    try:
        return settle.invalid_rows(columns, payload or "")
    except ValueError:  # unreadable: it is settled with no result rows (settle.close_unreadable_chunk)
        return ""


def failure_file(columns: Sequence[str], status: str, code: str, message: str) -> str:
    """The result file of a batch that ended without records (its file could not be read, or
    it was cleared): the header, then one row with no input values whose loadbay_status,
    loadbay_error_code and loadbay_error_message say why."""
    row = ["" for _ in columns] + [status, "", "", code, message]
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerow([escape_cell(cell) for cell in row])
    return header_row(columns) + text.getvalue()


def require_kept(rt: Runtime, batch: Batch) -> None:
    """Gone when the batch's files were removed at the end of their retention."""
    if batch.files_removed_at is None:
        return
    finished = batch.finished_at or batch.created_at
    days = rt.settings.retention_days or (batch.files_removed_at - finished).days
    raise Gone(
        f"batch {batch.id}'s files were removed {days:g} days after it finished "
        f"(LOADBAY_RETENTION_DAYS), on {batch.files_removed_at:%Y-%m-%d}"
    )


def stored_text(rt: Runtime, key: str) -> Iterator[str]:
    """A stored result file as text parts; opened now (NotFound now when it is missing)."""
    return _decoded(rt.blobs.open(key))


def _decoded(stream: BinaryIO) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    with stream:
        while data := stream.read(_READ):
            yield decoder.decode(data)
    yield decoder.decode(b"", final=True)


# writing ---------------------------------------------------------------------------------


def ensure_results(rt: Runtime, batch: Batch) -> None:
    """Write the final batch's result files now unless they are stored (see the module's doc)."""
    if batch.results_at is None:
        _write_and_mark(rt, batch)


def store_next_results(rt: Runtime, owner: str) -> bool:
    """Write the result files of one final batch that has none yet; False when none waits."""
    now = repo.now()
    kept_since = _retention_cutoff(rt, now)
    with rt.db.read() as conn:
        wanted = repo.results_wanted(conn, now, kept_since, 5)
    for batch_id in wanted:
        with rt.db.write() as conn:
            claimed = repo.claim_results(conn, batch_id, now, now + _CLAIM)
            batch = repo.get_batch(conn, None, batch_id) if claimed else None
        if batch is not None:
            log.debug("worker %s writes the result files of batch %s", owner, batch_id)
            try:
                _write_and_mark(rt, batch)
            except Exception:  # (the store away a moment: tried again soon, not once the claim ends)
                with rt.db.write() as conn:
                    repo.results_due(conn, batch_id, repo.now() + _RETRY)
                raise
            return True
    return False


def _write_and_mark(rt: Runtime, batch: Batch) -> None:
    _write(rt, batch)
    with rt.db.write() as conn:
        current = repo.get_batch(conn, None, batch.id, lock=True)
        if current is not None and current.files_removed_at is None:
            if current.status == batch.status:  # (a cleared `error` batch: written again later)
                repo.results_stored(conn, batch.id, repo.now())
            return
    for name in (RESULTS_FILE, REFUSED_FILE):  # its files were removed while these were written
        rt.blobs.delete(result_key(batch.id, name))


def _write(rt: Runtime, batch: Batch) -> None:
    columns = rt.types.get(batch.type).columns().names
    if batch.status in (Status.ERROR, Status.CLEARED):
        code = batch.error_code or str(batch.status).upper()
        message = batch.error_message or f"the batch was {batch.status}"
        _put(rt, result_key(batch.id), [failure_file(columns, str(batch.status), code, message)])
        return
    results = rt.blobs.writer(result_key(batch.id), CSV)
    refused = rt.blobs.writer(result_key(batch.id, REFUSED_FILE), CSV)
    try:
        for n, part in enumerate(result_parts(rt, batch.id, header_row(columns))):
            results.write(part.encode())
            refused.write((part if n == 0 else rows_of_status(part, len(columns), REFUSED)).encode())
        refused.commit()
        results.commit()
    except BaseException:
        results.abort()
        refused.abort()
        raise


def _put(rt: Runtime, key: str, parts: list[str]) -> None:
    writer: BlobWriter = rt.blobs.writer(key, CSV)
    try:
        for part in parts:
            writer.write(part.encode())
        writer.commit()
    except BaseException:
        writer.abort()
        raise


# removing ----------------------------------------------------------------------------------


def remove_inputs(rt: Runtime, batch_id: int) -> None:
    """Delete the files a batch no longer needs once it takes and reads no more data."""
    rt.blobs.delete_prefix(f"batches/{batch_id}/inputs")
    rt.blobs.delete_prefix(f"batches/{batch_id}/attachments")


def _retention_cutoff(rt: Runtime, now: datetime) -> datetime | None:
    days = rt.settings.retention_days
    return now - timedelta(days=days) if days else None


class Sweeper:
    """One worker's retention passes: at most one a minute, `_SWEEP_BATCHES` batches each."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._due = 0.0  # (time.monotonic) of the next pass

    def run_if_due(self) -> bool:
        """A pass, if one is due; True when it found more than it removed (another pass soon)."""
        cutoff = _retention_cutoff(self._rt, repo.now())
        if cutoff is None or time.monotonic() < self._due:
            return False
        self._due = time.monotonic() + _SWEEP_EVERY
        return sweep(self._rt, cutoff) == _SWEEP_BATCHES


def sweep(rt: Runtime, finished_before: datetime, limit: int = _SWEEP_BATCHES) -> int:
    """Remove the files of up to `limit` batches final since before `finished_before`;
    how many. Each batch's mark is set after its files are gone, so a pass cut short is
    done again by the next; and they are deleted once more after it, for a result-file
    writer may have stored its files and marked them between the two (one that looks after
    the mark deletes its own: `_write_and_mark`)."""
    with rt.db.read() as conn:
        expired = repo.expired_batches(conn, finished_before, limit)
    for batch_id in expired:
        rt.blobs.delete_prefix(f"batches/{batch_id}")
        with rt.db.write() as conn:
            repo.files_removed(conn, batch_id, repo.now())
        for name in (RESULTS_FILE, REFUSED_FILE):
            rt.blobs.delete(result_key(batch_id, name))
    if expired:
        log.info("retention: removed the files of %d batches", len(expired))
    return len(expired)
