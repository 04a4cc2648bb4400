"""Killing workers (SIGKILL) mid-batch loses no record and applies none twice."""

from __future__ import annotations

import csv
import io
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.servers import Server, start_server, start_worker, wait_final

ROWS = 12_000
BAD_EVERY = 97  # every 97th row has a bad email
ENV = {"LOADBAY_CHUNK_SIZE": "100", "LOADBAY_LEASE_SECONDS": "2"}


def customer_csv(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["customer_number", "name", "email", "balance"])
    for i in range(rows):
        email = "not-an-email" if i % BAD_EVERY == 0 else f"c{i}@example.com"
        writer.writerow([f"K{i:06d}", f"Customer {i}", email, f"{i % 1000}.{i % 100:02d}"])
    return out.getvalue().encode()


def expected_invalid(rows: int) -> int:
    return len(range(0, rows, BAD_EVERY))


def submit_file(client: httpx.Client, body: bytes, process: str = "auto") -> int:
    created = client.post("/v1/batches", json={"type": "billing.customer", "process": process})
    batch_id: int = created.json()["id"]
    response = client.put(f"/v1/batches/{batch_id}/data", content=body, headers={"Content-Type": "text/csv"})
    response.raise_for_status()
    client.post(f"/v1/batches/{batch_id}/submit").raise_for_status()
    return batch_id


def wait_until(
    client: httpx.Client, batch_id: int, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        if condition(batch):
            return batch
        time.sleep(0.01)
    raise AssertionError(f"condition never met: {batch}")


def assert_exactly_once(client: httpx.Client, batch_id: int, database_url: str) -> None:
    """Every record has one outcome, counts are exact, and no customer was written twice."""
    batch = wait_final(client, batch_id, timeout=180)
    valid = ROWS - expected_invalid(ROWS)
    assert batch["status"] == "completed", batch
    assert batch["counts"] == {
        "total": ROWS,
        "valid": valid,
        "invalid": ROWS - valid,
        "succeeded": valid,
        "failed": 0,
        "unprocessed": 0,
    }
    rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/batches/{batch_id}/results").text)))
    assert [r["customer_number"] for r in rows] == [f"K{i:06d}" for i in range(ROWS)]
    statuses = [r["loadbay_status"] for r in rows]
    assert statuses == ["invalid" if i % BAD_EVERY == 0 else "succeeded" for i in range(ROWS)]
    assert {r["loadbay_action"] for r in rows if r["loadbay_status"] == "succeeded"} == {"created"}
    errors = client.get(f"/v1/batches/{batch_id}/errors", params={"limit": 1000}).json()["data"]
    assert sorted(e["index"] for e in errors) == list(range(0, ROWS, BAD_EVERY))
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        count, revisions = conn.execute(
            text("SELECT count(*), max(revision) FROM billing_customers WHERE customer_number LIKE 'K%'")
        ).one()
    engine.dispose()
    assert count == valid
    assert revisions == 1  # a record applied twice would have bumped its revision


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """An API server without workers: the work is done by `loadbay worker` processes."""
    server = start_server(database_url, tmp_path / "data", workers=0, env=ENV)
    yield server
    server.stop()


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts `loadbay worker` processes; any still running at the end are stopped."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        started.append(start_worker(database_url, tmp_path / "data", concurrency=2, env=ENV))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
        process.wait(15)


def test_worker_killed_while_applying(api: Server, workers: Any, database_url: str) -> None:
    with api.client(api.account("acme")) as client:
        batch_id = submit_file(client, customer_csv(ROWS))
        for _ in range(2):  # kill two workers in a row, each in the middle of applying
            worker = workers()
            seen = wait_for_progress(client, batch_id, more=500)
            worker.kill()
            after = client.get(f"/v1/batches/{batch_id}").json()
            # (chunks are applied while the rest of the file is still validated)
            assert after["status"] in ("validating", "processing"), "the kill must land mid-batch"
            assert after["counts"]["succeeded"] < ROWS - expected_invalid(ROWS), seen
        workers()
        assert_exactly_once(client, batch_id, database_url)


def wait_for_progress(client: httpx.Client, batch_id: int, more: int) -> dict[str, Any]:
    """Wait until `more` further records have been applied."""
    start: int = client.get(f"/v1/batches/{batch_id}").json()["counts"]["succeeded"]
    return wait_until(client, batch_id, lambda b: b["counts"]["succeeded"] > start + more)


@pytest.mark.parametrize("process", ["auto", "manual"])
def test_worker_killed_while_validating(api: Server, workers: Any, database_url: str, process: str) -> None:
    """An automatic batch applies chunks while it is validated: the next worker resumes after
    the last staged chunk. A two-phase batch applies nothing yet: its validation starts over."""
    with api.client(api.account("acme")) as client:
        batch_id = submit_file(client, customer_csv(ROWS), process)
        worker = workers()
        wait_until(client, batch_id, lambda b: b["status"] == "validating" and b["counts"]["total"] > 1000)
        worker.kill()
        after = client.get(f"/v1/batches/{batch_id}").json()
        assert after["status"] == "validating" and after["counts"]["total"] < ROWS, after
        workers()
        if process == "manual":
            wait_until(client, batch_id, lambda b: b["status"] == "validated")
            client.post(f"/v1/batches/{batch_id}/process").raise_for_status()
        assert_exactly_once(client, batch_id, database_url)
        starts = [e["detail"] for e in events(client, batch_id) if e["event"] == "start"]
        assert len(starts) == 2, starts
        if process == "auto":
            resumed = int(starts[1].rsplit(" ", 1)[1])
            assert starts[1].startswith("attempt 2, resuming at record ")
            assert resumed == after["counts"]["total"] and resumed % 100 == 0, (starts, after)
        else:
            assert starts[1] == "attempt 2", starts


def events(client: httpx.Client, batch_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(f"/v1/batches/{batch_id}/events").json()["data"]
    return found


def test_server_with_embedded_workers_killed_and_restarted(database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(database_url, data, workers=2, env=ENV)
    key = first.account("acme")
    with first.client(key) as client:
        batch_id = submit_file(client, customer_csv(ROWS))
        wait_until(client, batch_id, lambda b: b["counts"]["succeeded"] > 1000)
    first.kill()
    second = start_server(database_url, data, workers=2, env=ENV)
    try:
        with second.client(key) as client:
            assert client.get(f"/v1/batches/{batch_id}").json()["status"] in ("validating", "processing")
            assert_exactly_once(client, batch_id, database_url)
    finally:
        second.stop()
