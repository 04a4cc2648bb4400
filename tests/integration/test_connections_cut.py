"""PostgreSQL: every connection of `loadbay serve` and its worker processes cut
(pg_terminate_backend), again and again while a batch is validated and applied, loses no
record and applies none twice; the API keeps answering through it.

A cut that lands while a worker's transaction runs reaches its work as an interruption,
given back and taken again; one that lands between two is noticed when the connection is
next taken from the pool (`WORKER_PING_AFTER`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.integration.test_crash_safety import (
    ENV,
    ROWS,
    assert_exactly_once,
    customer_csv,
    submit_file,
    wait_for_progress,
)
from tests.support.servers import Server, start_server

CUTS = 4


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    started = start_server(database_url, tmp_path / "data", workers=0, processes=2, env=ENV)
    yield started
    started.stop()


def cut_every_connection(database_url: str) -> int:
    """Terminate every other backend connected to the test's database; how many there were."""
    plain = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_connections_cut_while_a_batch_is_validated_and_applied(server: Server, database_url: str) -> None:
    with server.client(server.account("cuts")) as client:
        batch_id = submit_file(client, customer_csv(ROWS))
        cut = []
        for _ in range(CUTS):
            seen = wait_for_progress(client, batch_id, more=800)
            assert seen["status"] in ("validating", "processing"), "each cut must land mid-batch"
            cut.append(cut_every_connection(database_url))
            answered = status_right_after(client, batch_id)
            assert answered.status_code == 200, answered.text
        # The server's and both workers' connections, at least once (a worker backing off after
        # the cut before holds none for a moment); some connection every time.
        assert max(cut) >= 3 and min(cut) >= 1, cut
        assert_exactly_once(client, batch_id, database_url)
    assert "interrupted" in server.log.read_text(), "no cut landed on work in progress"


def status_right_after(client: httpx.Client, batch_id: int) -> httpx.Response:
    """The status, asked at once: the API server's pooled connections were all cut."""
    time.sleep(0.05)
    return client.get(f"/v1/batches/{batch_id}")
