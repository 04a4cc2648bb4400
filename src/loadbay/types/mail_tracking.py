"""Mail tracking: loading the daily tracking feed, and reading a batch's tracking events.

The feed is a CSV file with a header row (UTF-8, header names in any letter case):

| column     | required | meaning |
|------------|----------|---------|
| `job_id`   | yes      | the mail job's id (the entity id loadbay gave the job) |
| `at`       | yes      | when it happened: ISO 8601 with an offset (`2024-05-02T08:15:00-04:00`) |
| `status`   | yes      | what happened, at most 40 characters (`Mailed`, `In Transit`, `Delivered`) |
| `location` | no       | where, at most 200 characters |
| `detail`   | no       | free text |

Rows for an unknown job, for a test account's job (test mail is never sent, so it is
never tracked) or with a bad value are refused and reported; the other rows are
stored. A row already stored (same job, time and status) is skipped, so loading the
same feed twice is harmless. A job's status becomes the status of its newest event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any, BinaryIO, TypeVar

from sqlalchemy import Connection, insert, select, update

from loadbay.db.engine import Database
from loadbay.db.tables import accounts, mail_jobs, mail_tracking
from loadbay.domain.models import Batch
from loadbay.readers import Columns, RawRecord, open_reader

__all__ = ["FEED_COLUMNS", "Refusal", "TrackingEvent", "TrackingReport", "load_tracking", "tracking_page"]

FEED_COLUMNS = Columns(
    names=("job_id", "at", "status", "location", "detail"), required=("job_id", "at", "status")
)
_ROWS_PER_TRANSACTION = 500
_KEPT_REFUSALS = 1000
_LIMITS = {"status": 40, "location": 200}
_MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A feed row that was not stored: its number (1 = the first row after the header)."""

    row: int
    job_id: str | None
    code: str
    message: str


@dataclass(slots=True)
class TrackingReport:
    """What a feed load did (only the first refusals are kept; all are counted)."""

    loaded: int = 0
    duplicates: int = 0
    refused_count: int = 0
    refused: list[Refusal] = field(default_factory=list)

    def refuse(self, refusal: Refusal) -> None:
        self.refused_count += 1
        if len(self.refused) < _KEPT_REFUSALS:
            self.refused.append(refusal)


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    id: int
    job_id: int
    at: datetime
    status: str
    location: str | None = None
    detail: str | None = None

    @property
    def identity(self) -> tuple[int, datetime, str]:
        return self.job_id, self.at.astimezone(UTC), self.status


@dataclass(frozen=True, slots=True)
class _Row:
    number: int
    event: TrackingEvent


# loading the feed ----------------------------------------------------------


def load_tracking(db: Database, stream: BinaryIO) -> TrackingReport:
    """Store the feed's events, a few hundred rows per transaction; raises UnreadableData
    (MissingColumn, BadEncoding, MalformedFile) when the file as a whole cannot be read."""
    report = TrackingReport()
    with open_reader(stream, "csv", FEED_COLUMNS) as reader:
        for part in _parts(enumerate(reader, start=1), _ROWS_PER_TRANSACTION):
            rows = [row for row in (_parse(n, raw, report) for n, raw in part) if row is not None]
            with db.write() as conn:
                _store(conn, rows, report)
    report.refused.sort(key=lambda refusal: refusal.row)
    return report


def _parts(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while part := list(islice(iterator, size)):
        yield part


def _parse(number: int, raw: RawRecord, report: TrackingReport) -> _Row | None:
    job_id = raw.values.get("job_id")
    problem = raw.problem[1] if raw.problem else _problem(raw.values)
    if problem is not None:
        report.refuse(Refusal(number, job_id, "INVALID_ROW", problem))
        return None
    values = raw.values
    at = datetime.fromisoformat(values["at"].strip())
    location = (values.get("location") or "").strip() or None
    event = TrackingEvent(
        0, int(values["job_id"]), at, values["status"].strip(), location, values.get("detail")
    )
    return _Row(number, event)


def _problem(values: dict[str, Any]) -> str | None:
    """Why the row's values cannot be stored, or None."""
    for name in FEED_COLUMNS.required:
        if not str(values.get(name) or "").strip():
            return f"{name} is required"
    if not _DIGITS.fullmatch(values["job_id"].strip()) or not 0 < int(values["job_id"]) <= _MAX_ID:
        return f"job_id {values['job_id']!r} is not a job id"
    for name, limit in _LIMITS.items():
        if len(values.get(name) or "") > limit:
            return f"{name} is longer than {limit} characters"
    return _timestamp_problem(values["at"])


def _timestamp_problem(value: str) -> str | None:
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        return f"at {value!r} is not an ISO 8601 timestamp"
    return None if at.tzinfo is not None else f"at {value!r} has no offset (e.g. -04:00 or Z)"


def _store(conn: Connection, rows: Sequence[_Row], report: TrackingReport) -> None:
    tests = _test_flags(conn, {row.event.job_id for row in rows})
    accepted = [row for row in rows if _accepted(row, tests, report)]
    fresh = _fresh(conn, [row.event for row in accepted])
    report.duplicates += len(accepted) - len(fresh)
    report.loaded += len(fresh)
    if fresh:
        conn.execute(insert(mail_tracking), [_values(event) for event in fresh])
        _update_statuses(conn, {event.job_id for event in fresh})


def _test_flags(conn: Connection, job_ids: set[int]) -> dict[int, bool]:
    """Whether each existing job belongs to a test account, by job id."""
    if not job_ids:
        return {}
    query = (
        select(mail_jobs.c.id, accounts.c.test)
        .join(accounts, accounts.c.id == mail_jobs.c.account_id)
        .where(mail_jobs.c.id.in_(sorted(job_ids)))
    )
    return {job_id: bool(test) for job_id, test in conn.execute(query)}


def _accepted(row: _Row, tests: dict[int, bool], report: TrackingReport) -> bool:
    job_id = row.event.job_id
    if job_id not in tests:
        report.refuse(Refusal(row.number, str(job_id), "UNKNOWN_JOB", f"no mail job {job_id}"))
        return False
    if tests[job_id]:
        message = f"mail job {job_id} belongs to a test account: test mail is never sent or tracked"
        report.refuse(Refusal(row.number, str(job_id), "TEST_ACCOUNT", message))
        return False
    return True


def _fresh(conn: Connection, events: list[TrackingEvent]) -> list[TrackingEvent]:
    """The events neither stored already nor repeated earlier in `events`."""
    if not events:
        return []
    t = mail_tracking.c
    query = select(t.job_id, t.at, t.status).where(t.job_id.in_(sorted({e.job_id for e in events})))
    seen = {(job_id, at.astimezone(UTC), status) for job_id, at, status in conn.execute(query)}
    fresh = []
    for event in events:
        if event.identity not in seen:
            seen.add(event.identity)
            fresh.append(event)
    return fresh


def _values(event: TrackingEvent) -> dict[str, Any]:
    return {
        "job_id": event.job_id,
        "at": event.at,
        "status": event.status,
        "location": event.location,
        "detail": event.detail,
    }


def _update_statuses(conn: Connection, job_ids: set[int]) -> None:
    """Each job's status becomes its newest event's status."""
    t = mail_tracking.c
    newest = (
        select(t.status)
        .where(t.job_id == mail_jobs.c.id)
        .order_by(t.at.desc(), t.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    statement = update(mail_jobs).where(mail_jobs.c.id.in_(sorted(job_ids)))
    conn.execute(statement.values(status=newest, updated_at=datetime.now(UTC)))


# reading a batch's tracking ------------------------------------------------


def tracking_page(conn: Connection, batch: Batch, after_id: int, limit: int) -> list[TrackingEvent]:
    """The tracking events of the batch's jobs after event `after_id`, in load order.
    A test batch has none, ever: its mail is never sent."""
    if batch.test:
        return []
    t = mail_tracking.c
    query = (
        select(t.id, t.job_id, t.at, t.status, t.location, t.detail)
        .join(mail_jobs, mail_jobs.c.id == t.job_id)
        .where(mail_jobs.c.batch_id == batch.id, t.id > after_id)
        .order_by(t.id)
        .limit(limit)
    )
    return [TrackingEvent(*row) for row in conn.execute(query)]
