"""Chunks of the column path are staged several to a transaction (`processing.STAGED_TOGETHER`,
`STAGED_RECORDS`): what a run keeps of staging a chunk at a time. Through the core on SQLite
and PostgreSQL, with a CSV file of customers (the column path) in chunks of 10."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from loadbay.config import Settings
from loadbay.core import processing
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.types import TypeRegistry
from loadbay.core.worker import Worker
from loadbay.db.engine import migrate
from loadbay.db.tables import chunks
from loadbay.domain.models import Account, Batch, NewBatch
from loadbay.domain.records import FieldError
from loadbay.types.billing import CustomerType

RECORDS = 100
POISONED = 65  # checking this record raises: chunks 0-3 are one run, 4 and 5 are read before it


class PoisonedCustomers(CustomerType):
    """Customers whose per-record check breaks (a bug, not bad data) on a record without a
    name: the vector checks send such a record to it."""

    def validate_many(
        self, raws: Sequence[Mapping[str, Any]]
    ) -> list[tuple[dict[str, Any] | None, tuple[FieldError, ...]]]:
        if any(not raw.get("name") for raw in raws):
            raise RuntimeError("validation bug")
        return super().validate_many(raws)


@pytest.fixture
def service(tmp_path: Path, database_url: str) -> Iterator[BatchService]:
    migrate(database_url)
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="test",
        chunk_size=10,
        max_attempts=2,
        lease_seconds=30,
    )
    rt = Runtime.build(settings, TypeRegistry([PoisonedCustomers()]), base_url="http://loadbay.test")
    yield BatchService(rt)
    rt.close()


def submitted(service: BatchService, rows: list[str], process: str = "auto") -> tuple[Account, Batch]:
    account, _ = service.create_account("acme")
    batch, _ = service.create(account, NewBatch("billing.customer", process=process))
    upload = service.start_upload(account, batch.id, "customers.csv", "text/csv")
    upload.write(("customer_number,name\n" + "".join(rows)).encode())
    upload.finish()
    service.submit(account, batch.id)
    return account, batch


def drain(service: BatchService) -> None:
    worker = Worker(service.rt, "test", threading.Event(), threading.Event())
    while worker.run_once():
        pass


def chunk_sizes(service: BatchService, batch_id: int) -> list[int]:
    """The records of each staged chunk, in order."""
    with service.rt.db.read() as conn:
        query = select(chunks.c.record_count).where(chunks.c.batch_id == batch_id).order_by(chunks.c.seq)
        return list(conn.execute(query).scalars())


def test_chunks_read_before_a_failing_one_are_staged_and_applied(service: BatchService) -> None:
    rows = [f"C{i},{'' if i == POISONED else f'N{i}'}\n" for i in range(RECORDS)]
    account, batch = submitted(service, rows)
    drain(service)
    done = service.get(account, batch.id)
    assert (done.status, done.error_code) == ("cancelled", "RETRIES_EXHAUSTED"), done
    # chunks 4 and 5 were read in the run that chunk 6 broke: staged all the same
    assert (done.counts.total, done.counts.succeeded) == (60, 60), done.counts
    assert chunk_sizes(service, batch.id) == [10] * 6


def test_a_key_repeated_across_a_run_and_the_next_keeps_its_first_record(service: BatchService) -> None:
    names = [f"C{i}" for i in range(RECORDS)]
    names[15] = "C3"  # in the same run as C3 (chunk 1 of 0-3)
    names[55] = "C12"  # in the next run (chunk 5 of 4-7)
    rows = [f"{number},N{i}\n" for i, number in enumerate(names)]
    account, batch = submitted(service, rows, process="manual")
    drain(service)
    done = service.get(account, batch.id)
    counts = done.counts
    assert (done.status, counts.total, counts.valid, counts.invalid) == ("validated", 100, 98, 2)
    refused = {e.record_index: e.code for e in service.errors(account, batch.id, None, 100)}
    assert refused == {15: "DUPLICATE_KEY", 55: "DUPLICATE_KEY"}


def test_a_run_holds_at_most_staged_records(service: BatchService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processing, "STAGED_RECORDS", 25)  # two chunks of 10 a run, not four
    written: list[int] = []
    store = processing._store_columns

    def spied(rt: Runtime, claim: Any, run: list[Any], *args: Any, **kwargs: Any) -> None:
        written.append(sum(len(chunk.columns) for chunk in run))
        store(rt, claim, run, *args, **kwargs)

    monkeypatch.setattr(processing, "_store_columns", spied)
    account, batch = submitted(service, [f"C{i},N{i}\n" for i in range(50)], process="manual")
    drain(service)
    assert written == [20, 20, 10]
    assert service.get(account, batch.id).counts.valid == 50
