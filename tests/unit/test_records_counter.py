"""loadbay_records_total is a counter: it never goes down, even when a validation starts again
from nothing (its worker was killed, another took it over and reset the batch's counts).
Through the core and the metrics collector, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from pydantic import BaseModel
from sqlalchemy import Connection

from loadbay.config import Settings
from loadbay.core import metrics
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.types import ApplyContext, BatchType, TypeRegistry
from loadbay.domain.models import NewBatch
from loadbay.domain.records import Action, Applied, StagedRecord
from tests.integration.test_attempts import drain
from tests.integration.test_metrics import sample

LEASE_SECONDS = 0.3
RECORDS = 30  # three chunks of ten; every third record has no key (invalid): 10 invalid


class Item(BaseModel):
    key: str


class Killed(BaseException):
    """The worker process died (kill -9): nothing after this runs, its lease is left to expire."""


class DyingType(BatchType):
    """Its worker dies while staging the chunk that starts at record `dies_at` (None: never)."""

    name = "test.dying"
    key = "key"
    model = Item
    applies_while_validating = False  # (a takeover starts from nothing, as in `_reset_staging`)
    dies_at: int | None = None

    def check(
        self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
    ) -> list[StagedRecord]:
        if records and records[0].index == DyingType.dies_at:
            raise Killed()
        return list(records)

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        return [Applied(r.index, Action.CREATED, str(r.index)) for r in records]


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[BatchService]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="test",
        chunk_size=10,
        lease_seconds=LEASE_SECONDS,
    )
    rt = Runtime.build(settings, TypeRegistry([DyingType()]), base_url="http://loadbay.test")
    yield BatchService(rt)
    rt.close()
    DyingType.dies_at = None


def records(service: BatchService, outcome: str) -> float:
    """loadbay_records_total of the type and outcome, as a scrape reads it (0: absent)."""
    text = generate_latest(metrics.registry_for(service.rt.db, heartbeat_seconds=5)).decode()
    return sample(text, "loadbay_records_total", type=DyingType.name, outcome=outcome) or 0.0


def killed_while_staging(service: BatchService, at: int) -> None:
    """A worker takes the batch and dies staging the chunk from record `at`; its lease expires."""
    DyingType.dies_at = at
    with pytest.raises(Killed):
        drain(service)
    DyingType.dies_at = None
    time.sleep(LEASE_SECONDS * 2)


def test_a_validation_restarted_from_nothing_never_lowers_the_count(service: BatchService) -> None:
    account, _ = service.create_account("acme")
    items = [{"key": f"K{i}"} if i % 3 else {"other": i} for i in range(RECORDS)]
    batch, _ = service.create(account, NewBatch(DyingType.name), items=items, submit=True)
    seen = [records(service, "invalid")]

    killed_while_staging(service, at=10)  # the first chunk (4 invalid) staged and counted
    assert service.get(account, batch.id).counts.invalid == 4
    seen.append(records(service, "invalid"))
    killed_while_staging(service, at=0)  # taken over: the counts start again from 0
    assert service.get(account, batch.id).counts.invalid == 0
    seen.append(records(service, "invalid"))
    drain(service)  # taken over again, to the end

    done = service.get(account, batch.id)
    assert (done.status, done.counts.invalid, done.counts.succeeded) == ("completed", 10, 20)
    seen.append(records(service, "invalid"))
    assert seen == sorted(seen), f"the counter went down: {seen}"
    assert seen[-1] == 10
    assert records(service, "succeeded") == 20
