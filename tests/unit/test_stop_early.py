"""A batch applied while validated whose validation keeps failing after some chunks were
applied stops as a cancel does; one applied nothing still ends in `error`. Run through the
core on SQLite with a type whose validation breaks on one record (a bug, not bad data)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import Connection

from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.types import ApplyContext, BatchType, TypeRegistry
from loadbay.core.worker import Worker
from loadbay.db.engine import migrate
from loadbay.domain.models import NewBatch
from loadbay.domain.records import Action, Applied, FieldError, StagedRecord
from loadbay.errors import Conflict

RECORDS = 50
POISONED = 35  # validating this record raises: chunks 0-2 (records 0-29) are staged before it


class Item(BaseModel):
    key: str
    name: str


class PoisonedType(BatchType):
    name = "test.poisoned"
    key = "key"
    model = Item
    validates_in_bulk = False  # its validate, called per record, is what breaks

    def validate(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any] | None, tuple[FieldError, ...]]:
        if raw.get("name") == "poison":
            raise RuntimeError("validation bug")
        return super().validate(raw)

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        return [Applied(r.index, Action.CREATED, str(r.index)) for r in records]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[BatchService]:
    migrate(f"sqlite:///{tmp_path / 'loadbay.db'}")
    settings = Settings(data_dir=tmp_path, secret_key="test", chunk_size=10, max_attempts=2, lease_seconds=30)
    rt = Runtime.build(settings, TypeRegistry([PoisonedType()]), base_url="http://loadbay.test")
    yield BatchService(rt)
    rt.close()


def drain(service: BatchService) -> None:
    """Run a worker in this thread until no work is left (it applies before it validates)."""
    worker = Worker(service.rt, "test", threading.Event(), threading.Event())
    while worker.run_once():
        pass


def items() -> list[dict[str, str]]:
    return [{"key": f"K{i}", "name": "poison" if i == POISONED else f"N{i}"} for i in range(RECORDS)]


def test_failing_after_chunks_were_applied_stops_the_batch_as_a_cancel(service: BatchService) -> None:
    account, _ = service.create_account("acme")
    batch, _ = service.create(account, NewBatch(PoisonedType.name), items=items(), submit=True)
    drain(service)
    done = service.get(account, batch.id)
    assert (done.status, done.error_code) == ("cancelled", "RETRIES_EXHAUSTED"), done
    assert done.error_message and "validation bug" in done.error_message
    assert (done.counts.total, done.counts.succeeded, done.counts.unprocessed) == (30, 30, 0), done.counts
    starts = [e.detail for e in service.events(account, batch.id) if e.event == "start"]
    assert starts == ["attempt 1", "attempt 2, resuming at record 30", "attempt 3, resuming at record 30"]
    cancel = [e.detail or "" for e in service.events(account, batch.id) if e.event == "cancel"]
    assert cancel and cancel[0].startswith("validation failed after 30 records were staged"), cancel
    rows = "".join(service.results(account, batch.id)).splitlines()[1:]
    assert len(rows) == 30 and all(",succeeded,created," in row for row in rows), rows[:3]
    with pytest.raises(Conflict):
        service.clear(account, batch.id)  # the applied records' outcomes stay


def test_a_two_phase_batch_that_cannot_be_validated_ends_in_error(service: BatchService) -> None:
    account, _ = service.create_account("acme")
    batch, _ = service.create(
        account, NewBatch(PoisonedType.name, process="manual"), items=items(), submit=True
    )
    drain(service)
    done = service.get(account, batch.id)
    assert (done.status, done.error_code) == ("error", "RETRIES_EXHAUSTED"), done
    assert done.counts.total == 0 and not done.apply_early, done
