"""The chunk queue: every statement that claims, leases, finishes or recovers work.

Two kinds of work are claimed, both first in, first out by submission time:
- a batch to validate (`queued`, or `validating` whose lease expired), and
- a chunk to apply (`pending`, or `leased` whose lease expired) of a
  `processing` batch, or of a `validating` one that applies early (its file was
  read through before any chunk was staged).

A claim takes a lease (owner + expiry) and bumps `attempt`; the attempt is the
token every later write must present, so a worker that lost its lease (it
stalled, the lease expired, another worker took over) has its late commit
refused instead of applied twice. On PostgreSQL claims use
`FOR UPDATE SKIP LOCKED`; on SQLite the claim runs in a `BEGIN IMMEDIATE`
transaction (see `Database.write`), which serialises writers.

An attempt given back because its work raised also bumps `failed_attempts`; the
other attempts before the current one were interrupted (the worker was killed,
lost its lease or its connection, or waited too long for a lock). See
`core.processing` for what each count may reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, delete, func, insert, or_, select, update

from loadbay.db.tables import batches, chunk_payloads, chunks, workers
from loadbay.domain.lifecycle import FINAL, Status

__all__ = [
    "Census",
    "ChunkClaim",
    "ValidationClaim",
    "WorkerBeat",
    "applied_chunks",
    "beat",
    "claim_chunk",
    "claim_unread",
    "claim_validation",
    "extend_unread",
    "insert_cancelled_chunk",
    "waits_for_idle_account",
    "delete_chunks",
    "expire_leases_of",
    "extend_validation",
    "give_back_validation",
    "finish_chunk",
    "forget_worker",
    "insert_chunk",
    "insert_chunks",
    "invalid_parts",
    "NewChunk",
    "live_workers",
    "mark_ready",
    "open_chunk_ids",
    "chunk_payload",
    "chunks_without_payload",
    "cancel_chunk",
    "census",
    "stalled_batches",
    "release_chunk",
    "remaining_chunks",
    "result_parts",
    "staged_through",
]

PENDING, LEASED, DONE, SPENT, CANCELLED = "pending", "leased", "done", "failed", "cancelled"


@dataclass(frozen=True, slots=True)
class Census:
    """The queue across all accounts: batches by status and type, chunks by status, records
    with an outcome by type and outcome (of batches past validation: their counts never go
    down), and since when the oldest waiting work waits."""

    batches: dict[tuple[str, str], int]  # (status, type)
    chunks: dict[str, int]
    records: dict[tuple[str, str], int]  # (type, outcome)
    oldest_queued_batch: datetime | None  # could be taken for validation (claim_validation), not yet taken
    oldest_ready_chunk: datetime | None  # could be taken to apply (claim_chunk), not yet taken
    live_workers: list[WorkerBeat]


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """A process that runs workers, as its last heartbeat left it."""

    id: str
    kind: str
    threads: int
    version: str
    started_at: datetime
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class ValidationClaim:
    batch_id: int
    attempt: int
    takeover: bool  # an earlier worker's lease expired mid-validation
    failed: int = 0  # earlier attempts that raised (batches.failed_attempts)


@dataclass(frozen=True, slots=True)
class ChunkClaim:
    id: int
    batch_id: int
    seq: int
    attempt: int
    payload: str
    failed: int = 0  # earlier attempts whose apply raised (chunks.failed_attempts)


def claim_validation(
    conn: Connection,
    owner: str,
    at: datetime,
    lease: timedelta,
    *,
    takeovers_only: bool = False,
    idle_accounts_only: bool = False,
) -> ValidationClaim | None:
    """Take the oldest submitted batch that waits for validation (children after parents);
    `takeovers_only`: only a batch whose validating worker's lease expired;
    `idle_accounts_only`: only a batch of an account with no batch being validated or
    applied (fair share: see `waits_for_idle_account`)."""
    row = conn.execute(_next_waiting(takeovers_only, idle_accounts_only), {"at": at}).first()
    if row is None:
        return None
    attempt = row.attempt + 1
    conn.execute(
        update(batches)
        .where(batches.c.id == row.id)
        .values(status=Status.VALIDATING, lease_owner=owner, lease_expires_at=at + lease, attempt=attempt)
    )
    return ValidationClaim(row.id, attempt, row.status == Status.VALIDATING, row.failed_attempts)


def claim_unread(conn: Connection, owner: str, at: datetime, lease: timedelta) -> ValidationClaim | None:
    """Take a cancelled batch whose records not read yet wait for their outcome (none else
    reads them: its lease ended at the cancel, or its reader's lease expired)."""
    b = batches.c
    free = or_(b.lease_expires_at.is_(None), b.lease_expires_at < at)
    query = select(b.id, b.attempt).where(b.unread_pending, free).order_by(b.finished_at, b.id).limit(1)
    row = conn.execute(query.with_for_update(skip_locked=True)).first()
    if row is None:
        return None
    attempt = row.attempt + 1
    values = {"lease_owner": owner, "lease_expires_at": at + lease, "attempt": attempt}
    conn.execute(update(batches).where(b.id == row.id).values(**values))
    return ValidationClaim(row.id, attempt, takeover=False)


def extend_unread(conn: Connection, batch_id: int, attempt: int, until: datetime | None) -> bool:
    """Renew the lease of a reading of unread records (None: end it now); False when it was lost."""
    b = batches.c
    held = update(batches).where(b.id == batch_id, b.attempt == attempt, b.unread_pending)
    return bool(conn.execute(held.values(lease_expires_at=until)).rowcount == 1)


def waits_for_idle_account(conn: Connection, at: datetime) -> bool:
    """Whether a batch of an account that has no batch being validated or applied waits for
    validation. Workers take such a batch before the next chunk of a busy account, so one
    account's big import cannot keep another's small one waiting (a read: no lock taken)."""
    return conn.execute(_next_waiting(False, True, lock=False), {"at": at}).first() is not None


@cache
def _next_waiting(takeovers_only: bool, idle_accounts_only: bool, *, lock: bool = True) -> Any:
    query = _waiting_batches(takeovers_only, idle_accounts_only).order_by(
        batches.c.submitted_at, batches.c.id
    )
    return query.limit(1).with_for_update(skip_locked=True, of=batches) if lock else query.limit(1)


@cache
def _waiting_batches(takeovers_only: bool, idle_accounts_only: bool) -> Any:
    """The batches waiting for validation at `:at`, as claim_validation takes them (made once:
    building the statement took longer than running it, and fair share runs it before every
    chunk)."""
    parent, other = batches.alias("parent"), batches.alias("other")
    waiting = and_(batches.c.status == Status.VALIDATING, batches.c.lease_expires_at < bindparam("at"))
    if not takeovers_only:
        waiting = or_(batches.c.status == Status.QUEUED, waiting)
    query = (
        select(
            batches.c.id,
            batches.c.attempt,
            batches.c.status,
            batches.c.failed_attempts,
            _waiting_since(parent).label("waiting_since"),
        )
        .outerjoin(parent, parent.c.id == batches.c.parent_id)
        .where(waiting, or_(batches.c.parent_id.is_(None), parent.c.status.in_(list(FINAL))))
    )
    if idle_accounts_only:
        busy = (
            select(other.c.id)
            .where(
                other.c.account_id == batches.c.account_id,
                other.c.status.in_([Status.VALIDATING, Status.PROCESSING]),
            )
            .exists()
        )
        query = query.where(batches.c.status == Status.QUEUED, ~busy)
    return query


def _waiting_since(parent: Any) -> Any:
    """Since when a batch `_waiting_batches` finds could be taken: the end of the lease it was
    taken over from; else its submit, or its parent's end when that came later (a child
    submitted while its parent was open waited for the parent, not for a worker)."""
    b = batches.c
    after_parent = case((parent.c.finished_at > b.submitted_at, parent.c.finished_at), else_=b.submitted_at)
    return case((b.status == Status.VALIDATING, b.lease_expires_at), else_=after_parent)


def extend_validation(conn: Connection, batch_id: int, attempt: int, until: datetime) -> bool:
    """Renew a validation lease; False when the lease was lost (stop working)."""
    result = conn.execute(
        update(batches)
        .where(
            batches.c.id == batch_id,
            batches.c.attempt == attempt,
            batches.c.status == Status.VALIDATING,
        )
        .values(lease_expires_at=until)
    )
    return bool(result.rowcount == 1)


def give_back_validation(
    conn: Connection, batch_id: int, attempt: int, at: datetime, error: str, failed: bool
) -> None:
    """End a validation lease now (another attempt starts at once), keeping the error. A
    `failed` attempt counts in `failed_attempts`, unless it staged a chunk of a batch that
    applies early: that attempt made progress, which the next one keeps."""
    progressed = and_(batches.c.apply_early, batches.c.staged_attempt == attempt)
    counted = case((progressed, 0), else_=1) if failed else 0
    conn.execute(
        update(batches)
        .where(batches.c.id == batch_id, batches.c.attempt == attempt, batches.c.status == Status.VALIDATING)
        .values(
            lease_expires_at=at,
            error_message=error,
            failed_attempts=batches.c.failed_attempts + counted,
            updated_at=at,
        )
    )


@dataclass(frozen=True, slots=True)
class NewChunk:
    """A chunk to stage: its place in the batch, its counts and its payload."""

    seq: int
    first_index: int
    count: int
    valid: int
    payload: str


def insert_chunk(
    conn: Connection, batch_id: int, seq: int, first_index: int, count: int, valid: int, payload: str
) -> None:
    insert_chunks(conn, batch_id, [NewChunk(seq, first_index, count, valid, payload)])


def insert_chunks(conn: Connection, batch_id: int, new: Sequence[NewChunk]) -> None:
    """Stage chunks, pending: their rows in one statement, then their payloads in one."""
    if not new:
        return
    ready = datetime.now(UTC)
    rows = [
        {
            "batch_id": batch_id,
            "seq": c.seq,
            "first_index": c.first_index,
            "record_count": c.count,
            "valid_count": c.valid,
            "status": PENDING,
            "attempt": 0,
            "ready_at": ready,
        }
        for c in new
    ]
    made = insert(chunks).returning(chunks.c.id, sort_by_parameter_order=True)
    ids = conn.execute(made, rows).scalars().all()
    payloads = [{"chunk_id": chunk_id, "payload": c.payload} for chunk_id, c in zip(ids, new, strict=True)]
    conn.execute(insert(chunk_payloads), payloads)


def staged_through(conn: Connection, batch_id: int) -> tuple[int, int]:
    """(seq, first record index) of the batch's next chunk to stage: (0, 0) when none is."""
    query = select(
        func.coalesce(func.max(chunks.c.seq) + 1, 0),
        func.coalesce(func.max(chunks.c.first_index + chunks.c.record_count), 0),
    ).where(chunks.c.batch_id == batch_id)
    seq, index = conn.execute(query).one()
    return int(seq), int(index)


def applied_chunks(conn: Connection, batch_id: int) -> int:
    """How many of the batch's chunks were applied (or settled after their last attempt)."""
    query = select(func.count()).where(chunks.c.batch_id == batch_id, chunks.c.status.in_([DONE, SPENT]))
    return int(conn.execute(query).scalar_one())


def delete_chunks(conn: Connection, batch_id: int) -> None:
    ids = select(chunks.c.id).where(chunks.c.batch_id == batch_id).scalar_subquery()
    conn.execute(delete(chunk_payloads).where(chunk_payloads.c.chunk_id.in_(ids)))
    conn.execute(delete(chunks).where(chunks.c.batch_id == batch_id))


def claim_chunk(conn: Connection, owner: str, at: datetime, lease: timedelta) -> ChunkClaim | None:
    """Take the next chunk to apply: of the batch with the fewest records applied so far
    (fair share: a small batch submitted while a big one applies goes next, and two big
    ones take turns), then the oldest batch; a batch's chunks in order. On PostgreSQL in
    one statement (it runs once per chunk; three were three round trips)."""
    params = {"at": at, "owner": owner, "until": at + lease}
    if conn.dialect.name == "postgresql":
        row = conn.execute(_claim_in_one(), params).first()
        if row is None:
            return None
        return ChunkClaim(row.id, row.batch_id, row.seq, row.attempt, row.payload or "", row.failed_attempts)
    found = conn.execute(_next_chunk(), params).first()
    if found is None:
        return None
    attempt = found.attempt + 1
    conn.execute(_lease_chunk().where(chunks.c.id == found.id), params)
    payload = chunk_payload(conn, found.id) or ""
    return ChunkClaim(found.id, found.batch_id, found.seq, attempt, payload, found.failed_attempts)


@cache
def _next_chunk() -> Any:
    """The chunk `claim_chunk` takes at `:at`, locked (PostgreSQL: skipping locked ones)."""
    applied = batches.c.succeeded + batches.c.failed + batches.c.unprocessed
    return (
        select(chunks.c.id, chunks.c.batch_id, chunks.c.seq, chunks.c.attempt, chunks.c.failed_attempts)
        .join(batches, batches.c.id == chunks.c.batch_id)
        .where(_applicable(), _claimable_chunk())
        .order_by(applied, batches.c.submitted_at, batches.c.id, chunks.c.seq)
        .limit(1)
        .with_for_update(skip_locked=True, of=chunks)
    )


def _claimable_chunk() -> Any:
    """A chunk a worker may take at `:at` (of a batch `_applicable`): pending, or leased by a
    worker whose lease ran out."""
    expired = and_(chunks.c.status == LEASED, chunks.c.lease_expires_at < bindparam("at"))
    return or_(chunks.c.status == PENDING, expired)


@cache
def _lease_chunk() -> Any:
    """Lease a chunk to `:owner` until `:until`, as its next attempt."""
    return update(chunks).values(
        status=LEASED,
        lease_owner=bindparam("owner"),
        lease_expires_at=bindparam("until"),
        attempt=chunks.c.attempt + 1,
    )


@cache
def _claim_in_one() -> Any:
    """PostgreSQL: `_next_chunk` leased by a data-modifying CTE, with its payload."""
    found = _next_chunk().cte("next_chunk")
    claimed = (
        _lease_chunk()
        .where(chunks.c.id == found.c.id)
        .returning(chunks.c.id, chunks.c.batch_id, chunks.c.seq, chunks.c.attempt, chunks.c.failed_attempts)
        .cte("claimed")
    )
    payload = chunk_payloads.c.chunk_id == claimed.c.id
    return select(claimed, chunk_payloads.c.payload).outerjoin(chunk_payloads, payload)


def finish_chunk(
    conn: Connection, chunk_id: int, attempt: int, status: str, outcomes: str | None, result: str
) -> bool:
    """Mark a leased chunk final with its outcomes and result rows; False if the lease was lost.

    `lease_owner` stays: it tells an operator which worker applied the chunk.
    """
    outcome = conn.execute(
        update(chunks)
        .where(chunks.c.id == chunk_id, chunks.c.attempt == attempt, chunks.c.status == LEASED)
        .values(status=status, outcomes=outcomes, result=result, lease_expires_at=None)
    )
    return outcome.rowcount == 1


def extend_chunk(conn: Connection, chunk_id: int, attempt: int, until: datetime) -> bool:
    """Renew a chunk's lease; False when the lease was lost."""
    result = conn.execute(
        update(chunks)
        .where(chunks.c.id == chunk_id, chunks.c.attempt == attempt, chunks.c.status == LEASED)
        .values(lease_expires_at=until)
    )
    return bool(result.rowcount == 1)


# A released lease is dated this long before its release, so that the very next claim takes
# it over (claims take a lease that ended strictly before their time) even on a clock a
# little behind.
_RELEASED_BEFORE = timedelta(seconds=1)


def expire_leases_of(conn: Connection, owner_prefix: str, at: datetime) -> tuple[int, int]:
    """End by `at` every lease whose owner starts with `owner_prefix` (`host:pid:`, a worker
    process known to be dead), so the next claim takes its validations and chunks over, as
    if their leases had run out. Status and attempt stay: the attempt token still refuses a
    late commit of the old attempt. (validations, chunks) whose lease ended."""
    expired = at - _RELEASED_BEFORE
    ended = []
    for table, status in ((batches, Status.VALIDATING), (chunks, LEASED)):
        # (substr, not LIKE: exact, case and all, with no wildcard in a host name to escape)
        owned = func.substr(table.c.lease_owner, 1, len(owner_prefix)) == owner_prefix
        result = conn.execute(
            update(table).where(table.c.status == status, owned).values(lease_expires_at=expired)
        )
        ended.append(int(result.rowcount))
    return ended[0], ended[1]


def chunk_valid_count(conn: Connection, chunk_id: int) -> int:
    return int(conn.execute(select(chunks.c.valid_count).where(chunks.c.id == chunk_id)).scalar_one())


def release_chunk(conn: Connection, chunk_id: int, attempt: int, error: str, failed: bool = True) -> None:
    """Give a chunk back after an attempt that did not apply it, so it is retried at once;
    `failed`: its apply raised (counted in `failed_attempts`), else it was interrupted."""
    conn.execute(
        update(chunks)
        .where(chunks.c.id == chunk_id, chunks.c.attempt == attempt, chunks.c.status == LEASED)
        .values(
            status=PENDING,
            lease_owner=None,
            lease_expires_at=None,
            last_error=error,
            failed_attempts=chunks.c.failed_attempts + int(failed),
        )
    )


def insert_cancelled_chunk(
    conn: Connection, batch_id: int, chunk: NewChunk, outcomes: str, result: str
) -> None:
    """Stage a chunk already final (cancelled) with its outcomes and result rows."""
    values = {"status": CANCELLED, "outcomes": outcomes, "result": result}
    insert_chunks(conn, batch_id, [chunk])
    conn.execute(
        update(chunks).where(chunks.c.batch_id == batch_id, chunks.c.seq == chunk.seq).values(**values)
    )


def cancel_chunk(conn: Connection, chunk_id: int, outcomes: str | None, result: str) -> None:
    conn.execute(
        update(chunks)
        .where(chunks.c.id == chunk_id, chunks.c.status.in_([PENDING, LEASED]))
        .values(status=CANCELLED, outcomes=outcomes, result=result, lease_owner=None, lease_expires_at=None)
    )


def remaining_chunks(conn: Connection, batch_id: int) -> int:
    query = select(func.count()).where(chunks.c.batch_id == batch_id, chunks.c.status.in_([PENDING, LEASED]))
    return int(conn.execute(query).scalar_one())


def open_chunk_ids(conn: Connection, batch_id: int) -> list[int]:
    """Ids of the batch's chunks not yet final, in order."""
    query = (
        select(chunks.c.id)
        .where(chunks.c.batch_id == batch_id, chunks.c.status.in_([PENDING, LEASED]))
        .order_by(chunks.c.seq)
    )
    return [row.id for row in conn.execute(query)]


def chunk_payload(conn: Connection, chunk_id: int) -> str | None:
    query = select(chunk_payloads.c.payload).where(chunk_payloads.c.chunk_id == chunk_id)
    payload: str | None = conn.execute(query).scalar_one_or_none()
    return payload


def chunk_records(
    conn: Connection, batch_id: int, after_seq: int, limit: int
) -> list[tuple[int, str | None, str | None]]:
    """(seq, payload, outcomes) of the batch's chunks in order, from `after_seq` on."""
    query = (
        select(chunks.c.seq, chunk_payloads.c.payload, chunks.c.outcomes)
        .outerjoin(chunk_payloads, chunk_payloads.c.chunk_id == chunks.c.id)
        .where(chunks.c.batch_id == batch_id, chunks.c.seq > after_seq)
        .order_by(chunks.c.seq)
        .limit(limit)
    )
    return [(row.seq, row.payload, row.outcomes) for row in conn.execute(query)]


def chunks_without_payload(conn: Connection, batch_id: int) -> bool:
    """Whether some of the batch's chunks have lost their staged records."""
    lost = (
        select(chunks.c.id)
        .outerjoin(chunk_payloads, chunk_payloads.c.chunk_id == chunks.c.id)
        .where(chunks.c.batch_id == batch_id, chunk_payloads.c.chunk_id.is_(None))
    )
    return conn.execute(select(lost.exists())).scalar_one()


def result_parts(conn: Connection, batch_id: int, after_seq: int, limit: int) -> list[tuple[int, str | None]]:
    """(seq, result rows) of the batch's chunks in order, from `after_seq` on."""
    query = (
        select(chunks.c.seq, chunks.c.result)
        .where(chunks.c.batch_id == batch_id, chunks.c.seq > after_seq)
        .order_by(chunks.c.seq)
        .limit(limit)
    )
    return [(row.seq, row.result) for row in conn.execute(query)]


def invalid_parts(
    conn: Connection, batch_id: int, after_seq: int, limit: int
) -> list[tuple[int, str | None, str | None]]:
    """(seq, result rows, payload) of the batch's chunks that hold invalid records, in order,
    from `after_seq` on: a settled chunk's result rows (payload None), or the staged payload
    of a chunk not yet settled (result rows None)."""
    unsettled = chunks.c.status.in_([PENDING, LEASED])
    query = (
        select(
            chunks.c.seq,
            case((unsettled, None), else_=chunks.c.result).label("result"),
            case((unsettled, chunk_payloads.c.payload), else_=None).label("payload"),
        )
        .outerjoin(chunk_payloads, chunk_payloads.c.chunk_id == chunks.c.id)
        .where(
            chunks.c.batch_id == batch_id,
            chunks.c.seq > after_seq,
            chunks.c.valid_count < chunks.c.record_count,
        )
        .order_by(chunks.c.seq)
        .limit(limit)
    )
    return [(row.seq, row.result, row.payload) for row in conn.execute(query)]


def stalled_batches(conn: Connection) -> list[int]:
    """Processing batches with no chunk left to apply (a finisher died before completing)."""
    open_chunk = (
        select(chunks.c.id)
        .where(chunks.c.batch_id == batches.c.id, chunks.c.status.in_([PENDING, LEASED]))
        .exists()
    )
    query = select(batches.c.id).where(batches.c.status == Status.PROCESSING, ~open_chunk).limit(20)
    return [row.id for row in conn.execute(query)]


_OUTCOMES = ("succeeded", "failed", "invalid", "unprocessed")
# Batches whose outcome counts only grow: their validation is over, and no status they may
# move to comes before it. A validating batch's counts may be taken back (a worker that takes
# over a validation starts it again from nothing, one that fails resets them), so the census
# counts its records once its validation ends.
_COUNTED = sorted({Status.VALIDATED, Status.PROCESSING, *FINAL})


def census(conn: Connection, at: datetime, alive_since: datetime) -> Census:
    """The queue at `at`; workers are live if their last heartbeat is after `alive_since`.
    Its waiting work is what a worker could claim at `at`, by the claims' own filters."""
    b = batches.c
    by_batch = conn.execute(select(b.status, b.type, func.count()).group_by(b.status, b.type)).all()
    by_chunk = conn.execute(select(chunks.c.status, func.count()).group_by(chunks.c.status)).all()
    sums = [func.coalesce(func.sum(b[name]), 0) for name in _OUTCOMES]
    by_type = conn.execute(select(b.type, *sums).where(b.status.in_(_COUNTED)).group_by(b.type)).all()
    waiting = _waiting_batches(False, False).subquery()
    queued = conn.execute(select(func.min(waiting.c.waiting_since)), {"at": at}).scalar()
    since = case((chunks.c.status == LEASED, chunks.c.lease_expires_at), else_=chunks.c.ready_at)
    ready = conn.execute(
        select(func.min(since))
        .join(batches, b.id == chunks.c.batch_id)
        .where(_applicable(), _claimable_chunk()),
        {"at": at},
    ).scalar()
    return Census(
        batches={(str(status), str(type_)): int(n) for status, type_, n in by_batch},
        chunks={str(status): int(n) for status, n in by_chunk},
        records={(str(row[0]), name): int(row[i + 1]) for row in by_type for i, name in enumerate(_OUTCOMES)},
        oldest_queued_batch=_utc(queued),
        oldest_ready_chunk=_utc(ready),
        live_workers=live_workers(conn, alive_since),
    )


def _applicable() -> Any:
    """Batches whose chunks a worker may apply now."""
    return or_(
        batches.c.status == Status.PROCESSING,
        and_(batches.c.status == Status.VALIDATING, batches.c.apply_early),
    )


def _utc(at: datetime | None) -> datetime | None:
    """min() over a UTC column answers a naive datetime on SQLite."""
    return at if at is None or at.tzinfo is not None else at.replace(tzinfo=UTC)


def mark_ready(conn: Connection, batch_id: int, at: datetime) -> None:
    """The batch's pending chunks can be applied from `at` on (its two-phase batch was processed)."""
    conn.execute(
        update(chunks).where(chunks.c.batch_id == batch_id, chunks.c.status == PENDING).values(ready_at=at)
    )


# worker heartbeats -------------------------------------------------------------


def beat(conn: Connection, worker: WorkerBeat) -> None:
    """Record a heartbeat of a process that runs workers (its row made on the first)."""
    found = conn.execute(update(workers).where(workers.c.id == worker.id).values(seen_at=worker.seen_at))
    if found.rowcount == 0:
        conn.execute(insert(workers).values(asdict(worker)))


def forget_worker(conn: Connection, worker_id: str, older_than: datetime) -> None:
    """Remove a stopped process's row, and those of processes silent since `older_than`."""
    conn.execute(delete(workers).where(or_(workers.c.id == worker_id, workers.c.seen_at < older_than)))


def live_workers(conn: Connection, since: datetime) -> list[WorkerBeat]:
    rows = conn.execute(select(workers).where(workers.c.seen_at > since).order_by(workers.c.id))
    return [WorkerBeat(**row._mapping) for row in rows]
