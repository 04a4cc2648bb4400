"""Several worker processes share the queue: no chunk claimed twice, first in first out."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.integration.test_crash_safety import customer_csv, submit_file
from tests.support.servers import start_server, start_worker, wait_final

ENV = {"LOADBAY_CHUNK_SIZE": "50"}


def chunk_owners(database_url: str, batch_id: int) -> tuple[int, set[str], int]:
    """(highest attempt, worker processes that applied chunks, chunks)."""
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT attempt, lease_owner FROM chunks WHERE batch_id = :b AND status = 'done'"),
            {"b": batch_id},
        ).all()
    engine.dispose()
    processes = {owner.rsplit(":", 1)[0] for _attempt, owner in rows}
    return max(attempt for attempt, _owner in rows), processes, len(rows)


def test_two_worker_processes_share_a_batch(database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    api = start_server(database_url, data, workers=0, env=ENV)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with api.client(api.account("acme")) as client:
            batch_id = submit_file(client, customer_csv(6000))
            workers = [start_worker(database_url, data, concurrency=2, env=ENV) for _ in range(2)]
            batch = wait_final(client, batch_id, timeout=180)
        assert batch["status"] == "completed"
        assert batch["counts"]["succeeded"] + batch["counts"]["invalid"] == 6000
        highest_attempt, processes, chunks = chunk_owners(database_url, batch_id)
        assert chunks == 120
        assert highest_attempt == 1, "a chunk was claimed more than once"
        assert len(processes) == 2, f"the work was not shared: {processes}"
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(15)
        api.stop()


def test_batches_are_processed_first_in_first_out(database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    api = start_server(database_url, data, workers=0, env=ENV)
    worker = None
    try:
        with api.client(api.account("acme")) as client:
            first = submit_file(client, customer_csv(1000))
            second = submit_file(client, customer_csv(1000))
            worker = start_worker(database_url, data, concurrency=1, env=ENV)
            done_first = wait_final(client, first)
            done_second = wait_final(client, second)
            second_started = client.get(f"/v1/batches/{second}/events").json()["data"]
        start = next(e["at"] for e in second_started if e["event"] == "start")
        assert done_first["finished_at"] <= start <= done_second["finished_at"]
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(15)
        api.stop()
