"""Workers SIGKILLed in the middle of a chunk, more times than LOADBAY_MAX_ATTEMPTS: the
chunks they held are applied by the next worker, every record once, none `unprocessed`."""

from __future__ import annotations

import csv
import io
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.integration.test_crash_safety import customer_csv, expected_invalid, submit_file
from tests.support.servers import Server, start_server, start_worker, wait_final

ROWS = 3000
ENV = {"LOADBAY_CHUNK_SIZE": "100", "LOADBAY_LEASE_SECONDS": "2", "LOADBAY_MAX_ATTEMPTS": "1"}
KILLS = 3  # that land mid-chunk: more than LOADBAY_MAX_ATTEMPTS


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Server]:
    server = start_server(database_url, tmp_path / "data", workers=0, env=ENV)
    yield server
    server.stop()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield engine
    engine.dispose()


def test_workers_killed_mid_chunk_more_often_than_max_attempts(
    api: Server, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    with api.client(api.account("acme")) as client:
        batch_id = submit_file(client, customer_csv(ROWS))
        landed = 0
        for _ in range(4 * KILLS):
            worker = start_worker(database_url, tmp_path / "data", concurrency=2, env=ENV)
            try:
                landed += kill_mid_chunk(engine, worker)
            finally:
                worker.kill()
                worker.wait()
            if landed == KILLS:
                break
        assert landed == KILLS, "the kills did not land while a chunk was being applied"
        last = start_worker(database_url, tmp_path / "data", concurrency=2, env=ENV)
        try:
            batch = wait_final(client, batch_id, timeout=120)
        finally:
            last.terminate()
            last.wait(15)
        results = client.get(f"/v1/batches/{batch_id}/results").text
    valid = ROWS - expected_invalid(ROWS)
    assert batch["status"] == "completed", batch
    counts = {"total": ROWS, "valid": valid, "invalid": ROWS - valid, "succeeded": valid, "failed": 0}
    assert batch["counts"] == counts | {"unprocessed": 0}
    rows = list(csv.DictReader(io.StringIO(results)))
    assert [r["customer_number"] for r in rows] == [f"K{i:06d}" for i in range(ROWS)]
    assert {r["loadbay_status"] for r in rows} == {"succeeded", "invalid"}
    with engine.connect() as conn:
        customers = "SELECT count(*), max(revision) FROM billing_customers WHERE customer_number LIKE 'K%'"
        assert tuple(conn.execute(text(customers)).one()) == (valid, 1)  # each applied once
        attempts = "SELECT sum(attempt - 1), sum(failed_attempts) FROM chunks WHERE batch_id = :b"
        interrupted, failed = conn.execute(text(attempts), {"b": batch_id}).one()
    assert interrupted >= KILLS and failed == 0, (interrupted, failed)


def kill_mid_chunk(engine: Engine, worker: subprocess.Popen[bytes]) -> int:
    """SIGKILL the worker as soon as it holds a chunk; 1 if it still held it when it died."""
    held = text("SELECT count(*) FROM chunks WHERE status = 'leased' AND lease_owner LIKE :owner")
    owner = {"owner": f"%:{worker.pid}:%"}
    deadline = time.monotonic() + 60
    with engine.connect() as conn:
        while not conn.execute(held, owner).scalar_one():
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never took a chunk"
            conn.rollback()
            time.sleep(0.002)
        worker.kill()
        worker.wait()
        conn.rollback()
        return 1 if conn.execute(held, owner).scalar_one() else 0
