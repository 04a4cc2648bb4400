"""SQLite's write-ahead log is copied into the database after a writer's turn, not in it
(`Database.write`): the copy and its fsyncs no longer hold up the other writers."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loadbay.db import engine
from loadbay.db.engine import Database, WriterTurns


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setattr(engine, "CHECKPOINT_EVERY", 0.0)
    database = Database(f"sqlite:///{tmp_path / 'log.db'}", copies_log=True)
    with database.write() as conn:
        conn.exec_driver_sql("CREATE TABLE things (n INTEGER NOT NULL, text TEXT NOT NULL)")
    yield database
    database.dispose()


def _write(db: Database, count: int = 200) -> None:
    with db.write() as conn:
        conn.exec_driver_sql("INSERT INTO things VALUES (?, ?)", [(n, "x" * 500) for n in range(count)])


def _size(db: Database) -> int:
    """The database file's size: pages still only in the write-ahead log are not in it."""
    return Path(str(db.engine.url.database)).stat().st_size


def test_a_write_leaves_its_pages_copied_into_the_database(db: Database) -> None:
    """Far below SQLite's own limit (`_LOG_PAGES`), which alone would leave them in the log
    until the last connection closes."""
    size = _size(db)
    _write(db)
    assert _size(db) > size


def test_the_log_is_copied_after_the_turn_ends(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    turn = WriterTurns.turn

    def watched(self: WriterTurns) -> Iterator[None]:
        with turn(self):
            sizes.append(_size(db))
            yield
            sizes.append(_size(db))  # (committed)

    monkeypatch.setattr(WriterTurns, "turn", contextmanager(watched))
    _write(db)
    assert sizes[1] == sizes[0], "the turn ended with the write's pages in the log only"
    assert _size(db) > sizes[1], "then the writer copied them"


def test_a_failed_copy_does_not_fail_the_write(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(engine, "_checkpoint", broken)
    with caplog.at_level(logging.WARNING, logger="loadbay.db.engine"):
        _write(db, 3)
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM things").scalar_one() == 3
    assert "SQLite checkpoint after a write failed: disk I/O error" in caplog.text


def test_an_api_servers_writes_leave_the_copy_to_the_workers(tmp_path: Path) -> None:
    """An API request would wait for the copy: the server's writes leave it to the worker
    processes (and SQLite's own checkpoint past `_LOG_PAGES`)."""
    server = Database(f"sqlite:///{tmp_path / 'server.db'}")
    with server.write() as conn:
        conn.exec_driver_sql("CREATE TABLE things (n INTEGER NOT NULL, text TEXT NOT NULL)")
    size = _size(server)
    _write(server)
    assert _size(server) == size
    server.dispose()


def test_a_process_copies_at_most_every_so_often(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "CHECKPOINT_EVERY", 3600.0)
    _write(db)  # (copied: the fixture's write made the next copy due at once)
    size = _size(db)
    _write(db)
    assert _size(db) == size, "the second write's pages wait in the log for the next copy"
