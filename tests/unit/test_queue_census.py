"""The census's waiting work (loadbay_queue_lag_seconds) is what a worker could claim: a
validation or a chunk whose worker's lease ran out waits again, from the lease's end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.types import TypeRegistry
from loadbay.db import queue
from loadbay.db import repository as repo
from tests.integration.test_attempts import FlakyType, create, drain

LEASE = timedelta(seconds=60)


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[BatchService]:
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_key="test", chunk_size=10)
    rt = Runtime.build(settings, TypeRegistry([FlakyType()]), base_url="http://loadbay.test")
    yield BatchService(rt)
    rt.close()


def census(service: BatchService) -> queue.Census:
    now = repo.now()
    with service.rt.db.read() as conn:
        return queue.census(conn, now, now)


def test_a_validation_whose_lease_ran_out_waits_from_the_lease_end(service: BatchService) -> None:
    create(service)
    taken = repo.now() - timedelta(hours=1)
    with service.rt.db.write() as conn:
        assert queue.claim_validation(conn, "killed", taken, LEASE)
    assert census(service).oldest_queued_batch == taken + LEASE


def test_a_chunk_whose_lease_ran_out_waits_from_the_lease_end(service: BatchService) -> None:
    account, batch_id = create(service)
    drain(service)
    service.process(account, batch_id)
    taken = repo.now() - timedelta(hours=1)
    with service.rt.db.write() as conn:
        while queue.claim_chunk(conn, "killed", taken, LEASE):
            pass
    assert census(service).oldest_ready_chunk == taken + LEASE
