"""`loadbay serve --workers N` runs N worker processes: they share the server's batches and
database (SQLite and PostgreSQL), show in /healthz, the workers table and the metrics, are
started again when one dies, and never outlive the server (SIGTERM, SIGINT or SIGKILL)."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from loadbay import supervisor
from loadbay.db.engine import migrate
from loadbay.supervisor import WorkerProcesses
from tests.integration.test_crash_safety import (
    ROWS,
    assert_exactly_once,
    customer_csv,
    expected_invalid,
    submit_file,
    wait_until,
)
from tests.integration.test_metrics import sample
from tests.support.servers import Server, start_server, wait_final

ENV = {"LOADBAY_CHUNK_SIZE": "100", "LOADBAY_LEASE_SECONDS": "2", "LOADBAY_HEARTBEAT_SECONDS": "0.5"}


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # (gone meanwhile)
            continue
        state, parent = fields[0], int(fields[1])
        if parent == pid and state not in "ZX":
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie no longer does)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in "ZX"


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def worker_processes(server: Server, count: int) -> set[int]:
    """Wait until the server has `count` worker processes, each with its heartbeat; their pids."""

    def started() -> bool:  # (a child between fork and exec has the server's command line)
        found = children(server.process.pid)
        return len(found) == count and all("loadbay.supervisor" in cmdline(child) for child in found)

    wait_for(started, f"{count} worker processes")
    found = children(server.process.pid)
    wait_for(lambda: found <= set(heartbeats(server)), "a heartbeat of each worker process")
    return found


def heartbeats(server: Server) -> dict[int, str]:
    """The workers table: pid -> kind (rows of processes that stopped gracefully are removed)."""
    return {int(id_.split(":")[1]): kind for id_, kind in server.query("SELECT id, kind FROM workers")}


def appliers(server: Server, batch_id: int) -> set[int]:
    """The pids of the processes that applied the batch's chunks (chunks keep their owner)."""
    owners = server.query("SELECT DISTINCT lease_owner FROM chunks WHERE batch_id = :b", b=batch_id)
    return {int(owner.split(":")[1]) for (owner,) in owners if owner}


def applied_once(server: Server, prefix: str) -> tuple[int, int]:
    """(customers whose number starts with `prefix`, the highest revision among them)."""
    sql = "SELECT count(*), max(revision) FROM billing_customers WHERE customer_number LIKE :p"
    count, revision = server.query(sql, p=prefix + "%")[0]
    return int(count), int(revision)


def test_worker_processes_share_the_work_and_are_started_again(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path / "data", workers=0, processes=2, env=ENV)
    valid = ROWS - expected_invalid(ROWS)
    first: set[int] = set()
    second: set[int] = set()
    try:
        first = worker_processes(server, 2)
        assert set(heartbeats(server).values()) == {"serve"}
        with server.client() as anonymous:
            assert anonymous.get("/healthz").json()["workers"] == 2
            metrics = anonymous.get("/metrics").text
            assert sample(metrics, "loadbay_workers_alive", kind="serve") == 2
            assert sample(metrics, "loadbay_worker_threads_alive") == 2
        with server.client(server.account("acme")) as client:
            batch_id = submit_file(client, customer_csv(ROWS))
            assert_exactly_once(client, batch_id, database_url)
            assert appliers(server, batch_id) == first, "both worker processes applied chunks"

            again = submit_file(client, customer_csv(ROWS).replace(b"K", b"L"))
            wait_until(client, again, lambda b: b["counts"]["succeeded"] > 1000)
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            after = client.get(f"/v1/batches/{again}").json()
            assert after["counts"]["succeeded"] < valid, "the kill must land mid-batch"
            wait_for(lambda: victim not in children(server.process.pid), "the killed worker gone")
            second = worker_processes(server, 2)
            assert victim not in second and second & first == first - {victim}, (first, second)
            batch = wait_final(client, again, timeout=180)
            counts = batch["counts"]
            assert batch["status"] == "completed", batch
            assert (counts["total"], counts["succeeded"], counts["failed"]) == (ROWS, valid, 0), batch
            assert counts["invalid"] + counts["succeeded"] == ROWS, "every record has one outcome"
            assert applied_once(server, "L") == (valid, 1), "no record applied twice"
        log = server.log.read_text()
        restarted = rf"WARNING loadbay.supervisor: worker process \d \(pid {victim}\) was killed by SIGKILL"
        assert re.search(restarted, log), log
        assert "Traceback" not in log
    finally:
        server.stop()
    assert "Application shutdown complete" in server.log.read_text(), "SIGTERM: a graceful stop"
    wait_for(lambda: not any(alive(pid) for pid in first | second), "worker processes stopped", timeout=5)
    assert not set(heartbeats(server)) & second, "they removed their heartbeats as they stopped"


def held_by(server: Server, pid: int) -> list[str]:
    """The claims whose lease the process's workers hold ('chunk', 'validation'), running or
    not (until another worker takes them over)."""
    sql = (
        "SELECT 'validation' FROM batches WHERE status = 'validating' AND lease_owner LIKE :owner"
        " UNION ALL SELECT 'chunk' FROM chunks WHERE status = 'leased' AND lease_owner LIKE :owner"
    )
    return sorted(kind for (kind,) in server.query(sql, owner=f"%:{pid}:%"))


def stopped(pid: int) -> bool:
    """Whether the process is stopped: a SIGSTOP takes effect a moment after it is sent (the
    process, running on another CPU, could commit a claim's work meanwhile)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] in "tT"


def kill_holding(server: Server, pid: int, kind: str) -> str:
    """SIGKILL the worker process at a moment it holds a claim of that kind (SIGSTOPped first:
    it finishes none meanwhile); wait until another worker has taken its claims over (well
    before their lease runs out) and its heartbeat is gone. What it held, as the server logs it."""
    deadline = time.monotonic() + 10
    while True:
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: stopped(pid), "the worker process to stop", timeout=5)
        held = held_by(server, pid)
        if kind in held:
            break
        os.kill(pid, signal.SIGCONT)
        assert time.monotonic() < deadline, f"worker process {pid} held no {kind}"
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not held_by(server, pid), "takeover of the killed process's claims", timeout=10)
    wait_for(lambda: pid not in heartbeats(server), "removal of the killed process's heartbeat", timeout=1)
    return f"validations {held.count('validation')}, chunks {held.count('chunk')}"


def test_a_dead_worker_process_claims_are_taken_over_at_once(database_url: str, tmp_path: Path) -> None:
    """The server releases the claims of its worker process that died as soon as it sees it
    dead (its heartbeat goes too): the worker started again takes them over at once, not once
    their lease (two minutes here) has run out. Killed while validating, then while applying."""
    env = ENV | {"LOADBAY_LEASE_SECONDS": "120"}
    server = start_server(database_url, tmp_path / "data", workers=0, processes=1, env=env)
    released = {}
    try:
        with server.client(server.account("acme")) as client:
            (victim,) = worker_processes(server, 1)
            batch_id = submit_file(client, customer_csv(ROWS))
            first_killed = time.monotonic()
            released[victim] = kill_holding(server, victim, "validation")
            (victim,) = worker_processes(server, 1)
            released[victim] = kill_holding(server, victim, "chunk")
            wait_final(client, batch_id, timeout=60)
            took = time.monotonic() - first_killed
            assert_exactly_once(client, batch_id, database_url)
        log = server.log.read_text()
        for pid, counts in released.items():
            assert f"worker pid {pid} is dead; its claims are released: {counts}" in log, log
        assert "Traceback" not in log
        assert took < 60, took  # (half the lease: a loaded machine takes 20 s or more)
    finally:
        server.stop()


def test_claims_are_released_before_the_dead_process_is_reaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The supervisor in this process: a worker process that died, and one SIGKILLed as it is
    stopped, have their claims released while they are zombies (their pids not yet free for
    another process), by names that tag each process started (no other process has them,
    whatever its pid). A release that fails is logged, one that hangs is not waited for past
    RELEASE_SECONDS: the supervisor, and the server's stop, go on."""
    url = f"sqlite:///{tmp_path / 'loadbay.db'}"
    migrate(url)
    monkeypatch.setenv("LOADBAY_DATABASE_URL", url)
    monkeypatch.setenv("LOADBAY_SECRET_KEY", "test")
    monkeypatch.setattr(supervisor, "RELEASE_SECONDS", 0.5)
    released: list[tuple[str, str]] = []
    hung = threading.Event()

    def release_claims(process: str) -> tuple[int, int]:
        pid = process.split(":")[1]
        released.append((process, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]))
        if len(released) == 1:
            raise RuntimeError("the database is away")
        hung.wait(10)  # (the writers' turn held by a process that hangs)
        return 0, 1

    processes = WorkerProcesses(1, data_dir=tmp_path)
    processes.start(release_claims)
    try:
        (first,) = processes.pids
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: _other_than(processes.pids, first), "a worker started again")
        (second,) = processes.pids
        os.kill(second, signal.SIGSTOP)  # (SIGTERM cannot stop it)
    finally:
        stopping = time.monotonic()
        processes.stop(timeout=0.5)
        stopped = time.monotonic() - stopping
        hung.set()
    assert stopped < 3, stopped
    host = socket.gethostname()
    assert [(name.rsplit(":", 1)[0], state) for name, state in released] == [
        (f"{host}:{first}", "Z"),
        (f"{host}:{second}", "Z"),
    ]
    tags = [name.rsplit(":", 1)[1] for name, _ in released]
    assert all(len(tag) == 8 for tag in tags) and tags[0] != tags[1], tags
    assert f"worker pid {first} is dead; its claims expire with their leases" in caplog.text
    assert f"worker pid {second} is dead; releasing its claims takes over 0.5 s: going on" in caplog.text
    wait_for(lambda: "validations 0, chunks 1" in caplog.text, "the hung release's end logged", timeout=5)


def _other_than(pids: list[int], first: int) -> bool:
    """Whether `pids` (read once: the killed process leaves it between two reads) is one
    process, not `first`."""
    return len(pids) == 1 and first not in pids


def sqlite_server(tmp_path: Path, processes: int, env: dict[str, str] | None = None) -> Server:
    data = tmp_path / "data"
    return start_server(f"sqlite:///{data / 'loadbay.db'}", data, workers=0, processes=processes, env=env)


def test_a_submit_wakes_the_worker_processes_and_they_die_with_a_killed_server(tmp_path: Path) -> None:
    """Idle worker processes look for work once a minute here: the submit itself wakes them.
    SIGKILLed, the server can stop nothing: its workers see it gone and stop themselves."""
    server = sqlite_server(tmp_path, 2, {"LOADBAY_POLL_INTERVAL": "60"})
    try:
        workers = worker_processes(server, 2)
        time.sleep(0.5)  # (idle, waiting for their next look or a wake-up)
        with server.client(server.account("acme")) as client:
            batch_id = submit_file(client, customer_csv(300))
            assert wait_final(client, batch_id, timeout=20)["counts"]["succeeded"] == 300 - expected_invalid(
                300
            )
    finally:
        server.kill()
    wait_for(lambda: not any(alive(pid) for pid in workers), "worker processes gone", timeout=5)


def test_sigint_stops_the_worker_processes(tmp_path: Path) -> None:
    """Ctrl-C in the server's terminal: the server stops its worker processes itself (they run
    in a session of their own, so the terminal's SIGINT reaches the server alone)."""
    server = sqlite_server(tmp_path, 1)
    try:
        workers = worker_processes(server, 1)
        server.process.send_signal(signal.SIGINT)
        server.process.wait(15)
    finally:
        server.kill()
    assert not any(alive(pid) for pid in workers), "stopped before the server exited"
    assert heartbeats(server) == {}
