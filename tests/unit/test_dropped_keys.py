"""The keys a batch's staging claimed (to find duplicates) are deleted once every record is
staged (after the batch is past validation), a slice per transaction, and none is left
behind: what a stopped deletion leaves, a worker's sweep deletes, never the keys of a batch
still being validated. Through the core, on each database (PostgreSQL deletes a batch's
keys in one statement, so a stopped deletion there leaves all of them or none)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.worker import Worker
from loadbay.db import repository
from loadbay.db.repository import Slice
from loadbay.db.tables import batch_keys, batches
from loadbay.domain.models import Account, Batch, NewBatch
from loadbay.types import default_registry


@pytest.fixture
def service(tmp_path: Path, database_url: str) -> Iterator[BatchService]:
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_key="test", chunk_size=10)
    rt = Runtime.build(settings, default_registry(), base_url="http://loadbay.test")
    yield BatchService(rt)
    rt.close()


def keys_left(service: BatchService, batch_id: int) -> int:
    with service.rt.db.read() as conn:
        return int(conn.execute(select(func.count()).where(batch_keys.c.batch_id == batch_id)).scalar_one())


@pytest.mark.parametrize("process", ["auto", "manual"])
def test_no_key_is_left_after_validation(
    service: BatchService, monkeypatch: pytest.MonkeyPatch, process: str
) -> None:
    monkeypatch.setattr(repository, "_DELETE_SLICE", 7)  # 120 keys: 18 slices
    account, _ = service.create_account("acme")
    items = [{"customer_number": f"C{i}", "name": f"Customer {i}"} for i in range(120)]
    items.append({"customer_number": "C5", "name": "a duplicate"})
    batch, _ = service.create(
        account, NewBatch("billing.customer", process=process), items=items, submit=True
    )
    worker = Worker(service.rt, "test", threading.Event(), threading.Event())
    while worker.run_once():
        pass
    done = service.get(account, batch.id)
    assert done.status == ("completed" if process == "auto" else "validated"), done
    assert (done.counts.valid, done.counts.invalid) == (120, 1), done.counts
    assert keys_left(service, batch.id) == 0


def imported(service: BatchService, name: str) -> tuple[Account, Batch, Worker]:
    account, _ = service.create_account(name)
    items = [{"customer_number": f"C{i}", "name": f"Customer {i}"} for i in range(30)]
    batch, _ = service.create(account, NewBatch("billing.customer"), items=items, submit=True)
    return account, batch, Worker(service.rt, "test", threading.Event(), threading.Event())


def test_keys_a_stopped_deletion_left_are_swept(
    service: BatchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repository, "_DELETE_SLICE", 7)
    deleted = repository.delete_some_keys
    slices = service.rt.db.is_sqlite  # (PostgreSQL deletes them all in one statement)
    calls = 0

    def stops_after_one_slice(conn: object, batch_id: int, after: Slice | None = None) -> Slice | None:
        nonlocal calls
        calls += 1
        if calls == (2 if slices else 1):
            raise ConnectionError("the worker stopped here")
        return deleted(conn, batch_id, after)  # type: ignore[arg-type]

    monkeypatch.setattr(repository, "delete_some_keys", stops_after_one_slice)
    account, batch, worker = imported(service, "acme")
    worker._next_staging_sweep = float("inf")  # (a worker's first sweep comes at once)
    while worker.run_once():
        pass
    assert service.get(account, batch.id).status == "completed"
    assert keys_left(service, batch.id) == (30 - 7 if slices else 30)  # the slice before the stop went
    monkeypatch.setattr(repository, "delete_some_keys", deleted)
    worker._next_staging_sweep = 0.0  # a minute later
    assert worker.run_once()
    assert keys_left(service, batch.id) == 0
    assert not worker.run_once()  # nothing left to sweep


def test_the_sweep_leaves_the_keys_of_a_batch_being_validated(service: BatchService) -> None:
    account, batch, worker = imported(service, "acme")
    with service.rt.db.write() as conn:
        validating = batches.update().where(batches.c.id == batch.id).values(status="validating")
        conn.execute(validating)
        conn.execute(insert(batch_keys), [{"batch_id": batch.id, "key": f"C{i}"} for i in range(5)])
    with service.rt.db.read() as conn:
        assert repository.staging_left(conn) == []
    worker._next_staging_sweep = 0.0
    worker._drop_left_staging()
    assert keys_left(service, batch.id) == 5


def test_claimed_keys_are_those_not_seen_before(service: BatchService) -> None:
    """claim_keys answers the keys the batch had not seen: all of them, some, or none."""
    account, batch, _ = imported(service, "acme")
    with service.rt.db.write() as conn:
        assert repository.claim_keys(conn, batch.id, ["A", "B", "C"]) == {"A", "B", "C"}
    with service.rt.db.write() as conn:
        assert repository.claim_keys(conn, batch.id, ["D", "B", "E", "A"]) == {"D", "E"}
        assert repository.claim_keys(conn, batch.id, ["E", "C"]) == set()
        assert repository.claim_keys(conn, batch.id, []) == set()
    other, _ = service.create(account, NewBatch("billing.customer"))
    with service.rt.db.write() as conn:  # another batch's keys are its own
        assert repository.claim_keys(conn, other.id, ["A", "Z"]) == {"A", "Z"}
