"""SQLite's writers take turns (`db.engine.WriterTurns`): a process that writes again and again
does not keep the others waiting, and a writer killed in its turn does not stop the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadbay.db import engine
from loadbay.db.engine import Database

# A process that writes for `seconds`, one transaction after another, each held `hold` seconds.
_HOG = """
import sys, time
from pathlib import Path
from loadbay.db.engine import Database
url, seconds, hold, started = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
db = Database(url)
end = time.monotonic() + seconds
while time.monotonic() < end:
    with db.write() as conn:
        conn.exec_driver_sql("UPDATE counter SET n = n + 1")
        started.touch()
        time.sleep(hold)
"""


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    db = Database(url)
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE counter (n INTEGER NOT NULL)")
        conn.exec_driver_sql("INSERT INTO counter VALUES (0)")
    db.dispose()
    yield url


def _hog(url: str, tmp_path: Path, seconds: float, hold: float) -> subprocess.Popen[bytes]:
    started = tmp_path / "hog-started"
    hog = subprocess.Popen([sys.executable, "-c", _HOG, url, str(seconds), str(hold), str(started)])
    deadline = time.monotonic() + 30
    while not started.exists():
        assert hog.poll() is None, "the writing process ended before its first write"
        assert time.monotonic() < deadline, "the writing process did not start writing"
        time.sleep(0.01)
    return hog


def _timed_write(db: Database) -> float:
    began = time.monotonic()
    with db.write() as conn:
        conn.exec_driver_sql("UPDATE counter SET n = n + 1")
    return time.monotonic() - began


def test_a_writer_gets_its_turn_beside_one_that_writes_again_and_again(url: str, tmp_path: Path) -> None:
    """Without turns, SQLite's waiter sleeps and retries while the other takes the lock back at
    once: it waited for the whole of the other's 6 s of writing."""
    hog = _hog(url, tmp_path, seconds=6.0, hold=0.02)
    db = Database(url)
    try:
        waits = []
        for _ in range(5):
            waits.append(_timed_write(db))
            time.sleep(0.05)
        assert hog.poll() is None, "the other process stopped writing before these writes were done"
    finally:
        hog.wait(timeout=30)
        db.dispose()
    assert max(waits) < 1.0, waits


def test_threads_of_one_process_take_turns(url: str) -> None:
    db = Database(url)
    done = {"a": 0, "b": 0}
    stop = threading.Event()

    def write(name: str) -> None:
        while not stop.is_set():
            with db.write() as conn:
                conn.exec_driver_sql("UPDATE counter SET n = n + 1")
                time.sleep(0.005)
            done[name] += 1

    threads = [threading.Thread(target=write, args=(name,)) for name in done]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    with db.read() as conn:
        total = conn.exec_driver_sql("SELECT n FROM counter").scalar_one()
    db.dispose()
    assert min(done.values()) >= 20, done
    assert total == sum(done.values())


def test_a_writer_killed_in_its_turn_lets_the_next_one_write(url: str, tmp_path: Path) -> None:
    hog = _hog(url, tmp_path, seconds=60.0, hold=30.0)  # holds its turn for 30 s
    db = Database(url)
    try:
        os.kill(hog.pid, signal.SIGKILL)
        hog.wait(timeout=10)
        assert _timed_write(db) < 5.0
        with db.read() as conn:
            assert conn.exec_driver_sql("SELECT n FROM counter").scalar_one() == 1  # the killed one's undone
    finally:
        db.dispose()


def test_the_turn_files_lie_beside_the_database(url: str, tmp_path: Path) -> None:
    db = Database(url)
    _timed_write(db)
    db.dispose()
    assert sorted(p.name for p in tmp_path.glob("turns.db-*") if not p.name.endswith(("-wal", "-shm"))) == [
        "turns.db-gate",
        "turns.db-writer",
    ]


_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_a_writer_waiting_long_for_its_turn_says_who_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A process that hangs in its turn holds up every writer (a turn cannot be given up after
    a while): the writer waiting says so past SLOW_TURN_SECONDS, naming that process, once."""
    monkeypatch.setattr(engine, "SLOW_TURN_SECONDS", 0.5)
    path = str(tmp_path / "turns.db")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, path + "-writer"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        waiting = threading.Thread(target=_take_turn, args=(engine.WriterTurns(path),))
        waiting.start()
        deadline = time.monotonic() + 10
        while "writers' turn" not in caplog.text:
            assert time.monotonic() < deadline, "no warning of the long wait"
            time.sleep(0.05)
        assert f"held by pid {holder.pid}" in caplog.text, caplog.text
        assert waiting.is_alive(), "it waits on: the warning does not end the wait"
    finally:
        holder.kill()
        holder.communicate()
    waiting.join(5)
    assert not waiting.is_alive(), "the turn is taken once the holder is gone"
    time.sleep(2 * engine._WATCH_EVERY)
    assert caplog.text.count("writers' turn") == 1, caplog.text


def _take_turn(turns: engine.WriterTurns) -> None:
    with turns.turn():
        pass
