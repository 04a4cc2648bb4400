"""An automatic batch's chunks are applied while the rest of its file is still validated,
and an unreadable file still applies nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.integration.test_crash_safety import (
    ROWS,
    assert_exactly_once,
    customer_csv,
    events,
    expected_invalid,
    submit_file,
    wait_until,
)
from tests.support.servers import Server, start_server, start_worker

ENV = {"LOADBAY_CHUNK_SIZE": "100", "LOADBAY_POLL_INTERVAL": "0.05"}


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """An API server and two single-thread worker processes: one validates, one applies."""
    server = start_server(database_url, tmp_path / "data", workers=0, env=ENV)
    workers = [start_worker(database_url, tmp_path / "data", env=ENV) for _ in range(2)]
    yield server
    stop(workers)
    server.stop()


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(15)


def test_chunks_are_applied_while_the_file_is_still_validated(api: Server) -> None:
    rows = 4 * ROWS
    with api.client(api.account("acme")) as client:
        batch_id = submit_file(client, customer_csv(rows), process="auto")
        seen = wait_until(
            client, batch_id, lambda b: b["status"] == "validating" and b["counts"]["succeeded"] > 0
        )
        assert seen["counts"]["total"] < rows, seen
        done = wait_until(client, batch_id, lambda b: b["status"] == "completed")
        assert done["counts"]["succeeded"] == rows - expected_invalid(rows), done


def test_every_record_applied_once_with_its_events(api: Server, database_url: str) -> None:
    with api.client(api.account("acme")) as client:
        batch_id = submit_file(client, customer_csv(ROWS), process="auto")
        assert_exactly_once(client, batch_id, database_url)
        found = events(client, batch_id)
        names = [e["event"] for e in found]
        assert names[-5:] == ["start", "read", "chunked", "apply", "complete"], names
        detail = f"{ROWS} records in 1 file read through; chunks are applied as they are staged"
        assert found[-4]["detail"] == detail


def test_a_two_phase_batch_applies_nothing_before_it_is_told_to(api: Server) -> None:
    with api.client(api.account("acme")) as client:
        batch_id = submit_file(client, customer_csv(ROWS), process="manual")
        validated = wait_until(client, batch_id, lambda b: b["status"] not in ("queued", "validating"))
        assert validated["status"] == "validated" and validated["counts"]["succeeded"] == 0, validated
        assert "read" not in [e["event"] for e in events(client, batch_id)]


def test_a_file_unreadable_after_many_chunks_applies_nothing(api: Server, database_url: str) -> None:
    good = customer_csv(5_000)
    body = good + b'K999998,"Broken quote"x,a@example.com,1.00\r\n' + customer_csv(300).split(b"\n", 1)[1]
    with api.client(api.account("acme")) as client:
        batch_id = submit_file(client, body, process="auto")
        done = wait_until(client, batch_id, lambda b: b["status"] in ("error", "completed"))
        assert done["status"] == "error" and done["error"]["code"] == "MALFORMED_FILE", done
        assert "line 5002" in done["error"]["message"], done
        assert done["counts"] == dict.fromkeys(done["counts"], 0), done
        assert "read" not in [e["event"] for e in events(client, batch_id)]
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM billing_customers")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM chunks")).scalar_one() == 0
    engine.dispose()
