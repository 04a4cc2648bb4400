"""PostgreSQL: a worker's session is set so that a vanished client's backend stops within
seconds, and the staging keys are deleted by index ranges even when the statistics predate
them (a nested loop there cost the square of the keys)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, text

from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.db import repository as repo
from loadbay.db.engine import WORKER_PING_AFTER, Database
from loadbay.types import default_registry
from tests.support.servers import start_server


@pytest.fixture
def pg_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    return database_url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def runtime(pg_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """What `loadbay worker` builds, with LOADBAY_LOCK_TIMEOUT=2.5."""
    settings = Settings(data_dir=tmp_path, database_url=pg_url, secret_key="test", lock_timeout=2.5)
    rt = Runtime.build(settings, default_registry(), base_url="http://loadbay.test")
    yield rt
    rt.close()


def test_worker_sessions_are_set(runtime: Runtime) -> None:
    names = [
        "client_connection_check_interval",
        "idle_in_transaction_session_timeout",
        "lock_timeout",
        "tcp_keepalives_idle",
        "tcp_keepalives_interval",
        "tcp_keepalives_count",
    ]
    with runtime.db.write() as conn:
        shown = {name: conn.exec_driver_sql(f"SHOW {name}").scalar_one() for name in names}
        libpq = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
    assert shown == {
        "client_connection_check_interval": "2s",
        "idle_in_transaction_session_timeout": "1min",
        "lock_timeout": "2500ms",
        "tcp_keepalives_idle": "10",
        "tcp_keepalives_interval": "5",
        "tcp_keepalives_count": "3",
    }
    assert {
        k: libpq[k] for k in ("keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count")
    } == {
        "keepalives": "1",
        "keepalives_idle": "10",
        "keepalives_interval": "5",
        "keepalives_count": "3",
    }


SLEEPER = """
import sys
from loadbay.db.engine import Database
db = Database(sys.argv[1])
with db.write() as conn:
    print(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one(), flush=True)
    conn.exec_driver_sql("SELECT pg_sleep(120)")
"""


def test_a_killed_clients_statement_stops_within_seconds(pg_url: str) -> None:
    """SIGKILL a process in the middle of a long statement: its backend ends (and lets go of
    its locks) within the 2 s connection check, not when the statement would have ended."""
    sleeper = subprocess.Popen([sys.executable, "-c", SLEEPER, pg_url], stdout=subprocess.PIPE)
    assert sleeper.stdout is not None
    backend = int(sleeper.stdout.readline())
    time.sleep(0.5)
    db = Database(pg_url)
    try:
        assert backend_alive(db, backend)
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()
        sleeper.stdout.close()
        killed = time.monotonic()
        while backend_alive(db, backend):
            assert time.monotonic() - killed < 6, "the killed client's backend is still running"
            time.sleep(0.1)
    finally:
        db.dispose()


def backend_alive(db: Database, pid: int) -> bool:
    with db.read() as conn:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
        return bool(conn.execute(query, {"pid": pid}).scalar_one())


ROWS = 120_000  # (on SQLite: three slices of 50,000)


def stale_statistics(conn: Connection, table: str, rows: str) -> int:
    """A batch whose `table` rows were all added after the table's last ANALYZE (which saw
    a hundred rows of another batch); autovacuum kept off the table. The new batch's id."""
    conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = off)"))
    conn.execute(text("INSERT INTO accounts (name, test, created_at) VALUES ('a', false, now())"))
    batch = """INSERT INTO batches (account_id, ref, type, fingerprint, test, process_mode, options, status,
        warnings, total, valid, invalid, succeeded, failed, unprocessed, attempt, created_at, updated_at)
        SELECT max(id), :ref, 't', 'f', false, 'auto', '{}', 'validating', '[]', 0, 0, 0, 0, 0, 0, 1, now(),
        now() FROM accounts RETURNING id"""
    old, new = (conn.execute(text(batch), {"ref": ref}).scalar_one() for ref in ("old", "new"))
    conn.execute(text(f"INSERT INTO {table} SELECT :b, {rows} FROM generate_series(1, 100) g"), {"b": old})
    conn.execute(text(f"ANALYZE {table}"))
    conn.execute(
        text(f"INSERT INTO {table} SELECT :b, {rows} FROM generate_series(1, :n) g"), {"b": new, "n": ROWS}
    )
    return int(new)


CASES = {
    "keys": ("batch_keys", "'K' || lpad(g::text, 7, '0')", repo.delete_keys),
    "shares": ("child_shares", "'P' || (g % 1000), 'C' || g, 0, '1.00'", repo.delete_shares),
}


@pytest.mark.parametrize("case", CASES)
def test_staging_rows_are_deleted_by_one_index_scan_on_stale_statistics(runtime: Runtime, case: str) -> None:
    table, rows, delete_all = CASES[case]
    with runtime.db.write() as conn:
        batch_id = stale_statistics(conn, table, rows)
    plans: list[list[str]] = []
    with runtime.db.write() as conn:
        with explained(conn, table, plans):
            started = time.perf_counter()
            delete_all(conn, batch_id)
            took = time.perf_counter() - started
        left = conn.execute(text(f"SELECT count(*) FROM {table} WHERE batch_id = :b"), {"b": batch_id})
        assert left.scalar_one() == 0
    assert len(plans) == 1  # one DELETE of the batch's rows (SQLite deletes them a slice at a time)
    for plan in plans:
        scans = [line.strip(" ->") for line in plan if "Scan" in line]
        assert scans and all(s.startswith(INDEX_SCANS) for s in scans), plan
        assert any("Index Cond" in line for line in plan), plan
        assert not any("Nested Loop" in line for line in plan), plan
    assert took < 15, f"{ROWS} rows took {took:.1f} s"


INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan")


class explained:
    """EXPLAIN every statement on `table` the connection runs, just before it runs."""

    def __init__(self, conn: Connection, table: str, plans: list[list[str]]) -> None:
        self.engine = conn.engine
        self.table = table
        self.plans = plans

    def __enter__(self) -> None:
        event.listen(self.engine, "before_cursor_execute", self._explain)

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._explain)

    def _explain(self, _conn: Any, cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if f"FROM {self.table}" in statement:
            cursor.execute("EXPLAIN " + statement, parameters)
            self.plans.append([row[0] for row in cursor.fetchall()])


def test_a_request_that_waits_too_long_for_a_lock_is_503_busy(database_url: str, tmp_path: Path) -> None:
    """An API request whose statement waits longer than LOADBAY_LOCK_TIMEOUT for a lock is
    answered 503 with Retry-After, in the API's own error format, and changes nothing: here
    another session holds the account's row, which a Fusebill create locks."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    server = start_server(database_url, tmp_path, env={"LOADBAY_LOCK_TIMEOUT": "1"})
    try:
        key = server.account("busy")
        holder = Database(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
        body = {"accountUploadType": "BulkWriteOff", "data": [1]}
        with holder.write() as conn, server.client(key) as client:
            conn.execute(text("SELECT id FROM accounts WHERE name = 'busy' FOR UPDATE"))
            answer = client.post(
                "/compat/fusebill/v1/BulkApi", json=body, headers={"Authorization": f"Basic {key}"}
            )
        holder.dispose()
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
        assert answer.json()["Errors"][0]["Value"].startswith("The database is busy")
        assert server.query("SELECT count(*) FROM batches")[0][0] == 0
        assert "Traceback" not in server.log.read_text()
    finally:
        server.stop()


def backend_of(db: Database) -> int:
    with db.read() as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def terminate(db: Database, pid: int) -> None:
    with db.read() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


@pytest.mark.parametrize("ping_after", [0.0, 0.5])
def test_a_pooled_connection_the_server_ended_is_replaced_before_use(pg_url: str, ping_after: float) -> None:
    """A pooled connection whose backend was terminated is replaced without an error, used
    again at once (the server wrote to it and closed it: `ping_after`'s poll sees that) or
    after an idle time (tested by a round trip)."""
    db, other = Database(pg_url, pool_size=1, ping_after=ping_after), Database(pg_url)
    try:
        for pause in (0.05, ping_after + 0.1):
            first = backend_of(db)
            terminate(other, first)
            time.sleep(pause)
            assert backend_of(db) != first
    finally:
        db.dispose()
        other.dispose()


def test_a_worker_tests_a_connection_by_a_round_trip_only_once_it_was_idle(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1, ping_after=0.5)
    pings = count_pings(db)
    try:
        for _ in range(3):
            backend_of(db)
        assert pings == [], "a connection used a moment ago is not pinged"
        time.sleep(0.6)
        backend_of(db)
        assert len(pings) == 1
    finally:
        db.dispose()


def test_the_runtime_of_worker_processes_pings_only_after_idle(pg_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=pg_url, secret_key="test")
    rt = Runtime.for_workers(settings, default_registry(), base_url="http://loadbay.test")
    pings = count_pings(rt.db)
    try:
        assert rt.db.ping_after == WORKER_PING_AFTER > 0
        for _ in range(3):
            backend_of(rt.db)
        assert pings == [], "a connection used a moment ago is not pinged"
    finally:
        rt.close()


def test_the_api_server_tests_every_connection_by_a_round_trip(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1)
    pings = count_pings(db)
    try:
        for _ in range(3):
            backend_of(db)
        assert len(pings) >= 2  # (the first checkout opens the connection)
    finally:
        db.dispose()


def count_pings(db: Database) -> list[object]:
    """The round-trip tests the pool makes from now on, one item each."""
    dialect, pings = db.engine.dialect, []
    ping = dialect.do_ping

    def counted(dbapi_conn: Any) -> bool:
        pings.append(dbapi_conn)
        return bool(ping(dbapi_conn))

    dialect.do_ping = counted  # type: ignore[method-assign,assignment]
    return pings
