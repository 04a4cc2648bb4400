"""Engines for SQLite (WAL, one writer at a time) and PostgreSQL, and migrations.

`Database.write()` opens a transaction that takes SQLite's write lock at once
(`BEGIN IMMEDIATE`), so a read-then-write transaction such as claiming a chunk
can never interleave with another process's. PostgreSQL needs no such help:
claims there use `FOR UPDATE SKIP LOCKED`.

On SQLite, writers first queue on a lock file (see `_Writers`): SQLite's own wait
for its write lock sleeps and retries, and loses every race to a busy writer.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import QueuePool

__all__ = ["Database", "migrate"]


class Database:
    """One engine plus the two kinds of transaction loadbay uses."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = _sqlite_engine(url, pool_size) if self.is_sqlite else _pg_engine(url, pool_size)
        self._writers: AbstractContextManager[Any] = nullcontext()
        if self.is_sqlite:
            database = self.engine.url.database
            file = None if not database or database == ":memory:" else Path(database + "-writers.lock")
            self._writers = _Writers(file)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A read-write transaction, committed on success, rolled back on error."""
        with self._writers, self.engine.connect() as conn:
            conn = conn.execution_options(loadbay_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot on PostgreSQL and SQLite WAL)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


class _Writers:
    """One SQLite writer at a time, across threads and processes, waiting in the kernel.

    SQLite's own wait for its write lock (`busy_timeout`) sleeps 1, 2, 5 … 100 ms between
    tries, so a writer that waits misses the short gaps between a busy writer's transactions:
    a validating worker waited most of its time while another process applied chunks. Writers
    first take an exclusive `flock` on a file beside the database; the kernel wakes a waiter
    the moment the holder lets go. Threads of one process queue on a lock first (one flock per
    process). SQLite's own lock still guards the data: this only orders loadbay's writers.
    """

    def __init__(self, file: Path | None) -> None:
        self._file = file
        self._threads = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._file is not None:
                if self._fd is None:
                    self._fd = os.open(self._file, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def _pg_engine(url: str, pool_size: int) -> Engine:
    return create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


def _sqlite_engine(url: str, pool_size: int) -> Engine:
    """Pooled connections: opening one costs four PRAGMAs, and closing the last one to a WAL
    database checkpoints the whole log (about 15 ms), so connections are kept and reused."""
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=20,
        pool_timeout=120,  # longer than SQLite's own wait for the write lock (60 s)
        connect_args={"timeout": 60, "check_same_thread": False},
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the "begin" hook issue BEGIN itself
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA wal_autocheckpoint=20000")
    cursor.execute("PRAGMA mmap_size=268435456")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("loadbay_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (safe to run on every start)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


def alembic_config(url: str) -> Config:
    """Alembic's configuration for loadbay's migrations, pointing at `url`."""
    script_dir = resources.files("loadbay") / "migrations"
    config = Config()
    config.set_main_option("script_location", str(script_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
