"""Attempts that were interrupted (a killed worker's lease ran out, a lock was waited for too
long) do not spend a chunk's or a validation's tries; attempts whose work raised do, and
interruptions have a cap of their own. Through the core, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy import Connection, create_engine, select, text, update

from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.types import ApplyContext, BatchType, TypeRegistry
from loadbay.core.worker import Worker
from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.db.tables import chunks
from loadbay.domain.models import Account, NewBatch
from loadbay.domain.records import Action, Applied, StagedRecord

RECORDS = 30  # three chunks of ten
MAX_ATTEMPTS = 2
MAX_INTERRUPTIONS = 5
LEASE = timedelta(seconds=1)


class Item(BaseModel):
    key: str


class FlakyType(BatchType):
    """Applies by writing nothing; raises while `broken` is set."""

    name = "test.flaky"
    key = "key"
    model = Item
    broken = False

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        if FlakyType.broken:
            raise RuntimeError("apply bug")
        return [Applied(r.index, Action.CREATED, str(r.index)) for r in records]


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[BatchService]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="test",
        chunk_size=10,
        lease_seconds=30,
        max_attempts=MAX_ATTEMPTS,
        max_interruptions=MAX_INTERRUPTIONS,
        lock_timeout=0.5,
    )
    rt = Runtime.build(settings, TypeRegistry([FlakyType()]), base_url="http://loadbay.test")
    yield BatchService(rt)
    FlakyType.broken = False
    rt.close()


def drain(service: BatchService) -> None:
    worker = Worker(service.rt, "test", threading.Event(), threading.Event())
    while worker.run_once():
        pass


def create(service: BatchService, process: str = "manual") -> tuple[Account, int]:
    account, _ = service.create_account("acme")
    items = [{"key": f"K{i}"} for i in range(RECORDS)]
    batch, _ = service.create(account, NewBatch(FlakyType.name, process=process), items=items, submit=True)
    return account, batch.id


def processing(service: BatchService) -> tuple[Account, int]:
    """A batch validated into three pending chunks and told to process."""
    account, batch_id = create(service)
    drain(service)
    service.process(account, batch_id)
    return account, batch_id


def interrupt(service: BatchService, times: int, claim: str = "chunk") -> None:
    """Claim every open chunk (or the batch's validation) `times` in a row, as workers that
    are killed at once: each lease runs out (the claims are dated a day ago)."""
    start = repo.now() - timedelta(days=1)
    for n in range(times):
        at = start + n * 2 * LEASE
        with service.rt.db.write() as conn:
            if claim == "chunk":
                while queue.claim_chunk(conn, f"killed-{n}", at, LEASE):
                    pass
            else:
                assert queue.claim_validation(conn, f"killed-{n}", at, LEASE)


def chunk_attempts(service: BatchService, batch_id: int) -> list[tuple[int, int]]:
    """(attempt, failed_attempts) of the batch's chunks in order."""
    query = select(chunks.c.attempt, chunks.c.failed_attempts).where(chunks.c.batch_id == batch_id)
    with service.rt.db.read() as conn:
        return [(a, f) for a, f in conn.execute(query.order_by(chunks.c.seq))]


def test_interrupted_attempts_spend_no_tries(service: BatchService) -> None:
    account, batch_id = processing(service)
    interrupt(service, MAX_ATTEMPTS + 2)  # every chunk: more interruptions than tries
    drain(service)
    done = service.get(account, batch_id)
    assert (done.status, done.outcome) == ("completed", "succeeded"), done
    assert (done.counts.succeeded, done.counts.unprocessed) == (RECORDS, 0), done.counts
    assert chunk_attempts(service, batch_id) == [(MAX_ATTEMPTS + 3, 0)] * 3


def test_a_chunk_interrupted_on_every_attempt_ends_at_its_own_cap(service: BatchService) -> None:
    """A chunk that kills every worker that takes it (out of memory, say) still ends."""
    account, batch_id = processing(service)
    interrupt(service, MAX_INTERRUPTIONS)
    drain(service)
    done = service.get(account, batch_id)
    assert (done.status, done.outcome) == ("completed", "failed"), done
    assert done.counts.unprocessed == RECORDS, done.counts
    errors = service.errors(account, batch_id, None, 100)
    assert {(e.code, e.message) for e in errors} == {
        ("RETRIES_EXHAUSTED", "not applied: every attempt at the chunk was interrupted (its worker stopped)")
    }


def test_attempts_whose_apply_raised_spend_the_tries(service: BatchService) -> None:
    account, batch_id = processing(service)
    interrupt(service, 1)  # an interruption first: it is not one of the failures
    FlakyType.broken = True
    drain(service)
    done = service.get(account, batch_id)
    assert done.status == "completed" and done.counts.unprocessed == RECORDS, done
    assert {e.message for e in service.errors(account, batch_id, None, 100)} == {
        "not applied: the chunk failed on every attempt"
    }
    assert chunk_attempts(service, batch_id) == [(MAX_ATTEMPTS + 2, MAX_ATTEMPTS)] * 3


def test_validation_taken_over_more_times_than_its_tries(service: BatchService) -> None:
    account, batch_id = create(service, process="manual")
    interrupt(service, MAX_ATTEMPTS + 2, claim="validation")
    drain(service)
    done = service.get(account, batch_id)
    assert (done.status, done.counts.valid) == ("validated", RECORDS), done
    starts = [e.detail for e in service.events(account, batch_id) if e.event == "start"]
    assert starts == [f"attempt {MAX_ATTEMPTS + 3}"]


def test_validation_interrupted_on_every_attempt_ends_at_its_own_cap(service: BatchService) -> None:
    account, batch_id = create(service, process="manual")
    interrupt(service, MAX_INTERRUPTIONS, claim="validation")
    drain(service)
    done = service.get(account, batch_id)
    assert (done.status, done.error_code) == ("error", "RETRIES_EXHAUSTED"), done
    assert (
        done.error_message
        == f"validation was interrupted {MAX_INTERRUPTIONS} times (its worker stopped or lost its lease)"
    )


def test_a_lock_waited_for_too_long_is_an_interruption(service: BatchService, database_url: str) -> None:
    """A settle that cannot lock its batch's row within LOADBAY_LOCK_TIMEOUT gives the chunk
    back at once, not counted as a failure; the chunk is applied once the row is free."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: there is no row lock to wait for")
    account, batch_id = processing(service)
    holder = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    worker = Worker(service.rt, "test", threading.Event(), threading.Event())
    with holder.connect() as conn, conn.begin():
        conn.execute(text("SELECT id FROM batches WHERE id = :id FOR UPDATE"), {"id": batch_id})
        assert worker.run_once()  # claims the first chunk, waits 0.5 s for the batch row, gives it back
    holder.dispose()
    with service.rt.db.read() as conn:
        first = conn.execute(select(chunks).where(chunks.c.batch_id == batch_id, chunks.c.seq == 0)).one()
    assert (first.status, first.attempt, first.failed_attempts) == ("pending", 1, 0)
    assert first.last_error == "LockNotAvailable from the database (SQLSTATE 55P03)"  # no SQL in it
    drain(service)
    done = service.get(account, batch_id)
    assert (done.status, done.counts.succeeded) == ("completed", RECORDS), done
    assert chunk_attempts(service, batch_id) == [(2, 0), (1, 0), (1, 0)]


def test_a_validation_whose_worker_died_is_taken_over_before_older_chunks(service: BatchService) -> None:
    """The chunks of older batches could keep every worker busy for long; the batch whose
    validation was cut short started already, and makes no progress until it is resumed."""
    _first, older = processing(service)
    account, batch_id = create(service)
    interrupt(service, 1, claim="validation")
    worker = Worker(service.rt, "test", threading.Event(), threading.Event())
    assert worker.run_once()
    assert service.get(account, batch_id).status == "validated"
    assert chunk_attempts(service, older) == [(0, 0)] * 3  # not one applied yet


def test_a_lock_timeout_while_a_spent_chunk_is_settled_gives_it_back(
    service: BatchService, database_url: str
) -> None:
    """A chunk whose tries are spent, whose settle waits too long for the batch row, is given
    back (not closed without its records' outcomes); the next attempt settles it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: there is no row lock to wait for")
    account, batch_id = processing(service)
    with service.rt.db.write() as conn:
        conn.execute(update(chunks).where(chunks.c.batch_id == batch_id).values(failed_attempts=MAX_ATTEMPTS))
    holder = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    worker = Worker(service.rt, "test", threading.Event(), threading.Event())
    with holder.connect() as conn, conn.begin():
        conn.execute(text("SELECT id FROM batches WHERE id = :id FOR UPDATE"), {"id": batch_id})
        assert worker.run_once()
    holder.dispose()
    assert chunk_attempts(service, batch_id)[0] == (1, MAX_ATTEMPTS)
    drain(service)
    done = service.get(account, batch_id)
    assert (done.status, done.counts.unprocessed) == ("completed", RECORDS), done
    assert len(service.errors(account, batch_id, None, 100)) == RECORDS  # every record's outcome
