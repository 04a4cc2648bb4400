"""The retention sweep against a result-file writer at the retention's cutoff: whatever the
order of their steps, a batch whose files were removed keeps none. Through the core, on each
database, with the local blob store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from loadbay.config import Settings
from loadbay.core import files
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.worker import Worker
from loadbay.db import repository as repo
from loadbay.db.tables import batches
from loadbay.domain.models import NewBatch
from loadbay.errors import NotFound
from loadbay.types import default_registry


@pytest.fixture
def service(tmp_path: Path, database_url: str) -> Iterator[BatchService]:
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_key="test", retention_days=1)
    rt = Runtime.build(settings, default_registry(), base_url="http://loadbay.test")
    yield BatchService(rt)
    rt.close()


def stored(service: BatchService, batch_id: int) -> list[str]:
    """The batch's result files in the store."""
    found = []
    for name in (files.RESULTS_FILE, files.REFUSED_FILE):
        try:
            service.rt.blobs.open(files.result_key(batch_id, name)).close()
            found.append(name)
        except NotFound:
            pass
    return found


def test_a_writer_that_marks_between_the_sweeps_delete_and_mark_leaves_no_file(
    service: BatchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer commits its files and marks them stored after the sweep deleted the
    batch's files and before it marked them removed: the files stayed in the store for good,
    behind a batch that answers 410 FILES_REMOVED."""
    rt = service.rt
    account, _ = service.create_account("acme")
    items = [{"customer_number": "C1", "name": "Ann"}, {"customer_number": "C2", "name": ""}]
    batch, _ = service.create(account, NewBatch("billing.customer"), items=items, submit=True)
    worker = Worker(rt, "test", threading.Event(), threading.Event())
    while worker.run_once():
        pass
    # the batch finished two days ago, and its result files are not written yet
    with rt.db.write() as conn:
        at = repo.now() - timedelta(days=2)
        conn.execute(update(batches).where(batches.c.id == batch.id).values(finished_at=at, results_at=None))
    for name in (files.RESULTS_FILE, files.REFUSED_FILE):
        rt.blobs.delete(files.result_key(batch.id, name))
    final = service.get(account, batch.id)
    assert final.status == "completed" and stored(service, batch.id) == []

    deleting = rt.blobs.delete_prefix
    wrote: list[bool] = []

    def delete_then_the_writer_runs(prefix: str) -> None:
        deleting(prefix)
        if not wrote:
            wrote.append(True)
            files._write_and_mark(rt, final)  # (the writer, in another worker, right now)
            assert stored(service, batch.id) == [files.RESULTS_FILE, files.REFUSED_FILE]

    monkeypatch.setattr(rt.blobs, "delete_prefix", delete_then_the_writer_runs)
    assert files.sweep(rt, repo.now() - timedelta(days=1)) == 1
    assert wrote and stored(service, batch.id) == []
    assert service.get(account, batch.id).files_removed_at is not None
