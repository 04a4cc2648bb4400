"""The keys a batch's staging claimed (to find duplicates) are deleted once every record is
staged, a slice per transaction, and none is left behind. Through the core on SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.worker import Worker
from loadbay.db import repository
from loadbay.db.tables import batch_keys
from loadbay.domain.models import NewBatch
from loadbay.types import default_registry


@pytest.fixture
def service(tmp_path: Path) -> Iterator[BatchService]:
    settings = Settings(data_dir=tmp_path, secret_key="test", chunk_size=10)
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
