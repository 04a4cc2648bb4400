"""Engines for SQLite (WAL, one writer at a time) and PostgreSQL, and migrations.

`Database.write()` opens a transaction that takes SQLite's write lock at once
(`BEGIN IMMEDIATE`), so a read-then-write transaction such as claiming a chunk
can never interleave with another process's. PostgreSQL needs no such help:
claims there use `FOR UPDATE SKIP LOCKED`. On SQLite the writers of every
process also take turns (`WriterTurns`), so none waits while another takes
the lock again and again, and they copy the write-ahead log into the database
after their turn rather than in it (`Database.write`).

PostgreSQL sessions are set so that the backend of a client that vanished stops
within seconds instead of running its statement on, holding its locks (see
`_pg_on_connect`), and `is_interruption` tells such endings (a lock not granted
in time, a lost connection) from errors of the work itself.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Dialect, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError, OperationalError
from sqlalchemy.pool import NullPool, QueuePool

from loadbay.domain.text import many
from loadbay.errors import SchemaTooNew

__all__ = [
    "SQLITE_LARGEST_ROWID",
    "WORKER_PING_AFTER",
    "Database",
    "WriterTurns",
    "database_trouble",
    "is_interruption",
    "is_unavailable",
    "migrate",
    "schema_revisions",
]

log = logging.getLogger(__name__)

# SQLite: how often (seconds) a process that writes copies the write-ahead log into the
# database after its turn (`Database.write`); and how long the log may grow before the
# commit that passes it copies the rest, in its turn, so the log starts again from its start.
CHECKPOINT_EVERY = 0.5
_LOG_PAGES = 20_000  # (of 4 KiB: 80 MB)

# SQLite: a writer that waits this long for its turn is logged at WARNING, with the process
# holding the turn (the wait has no bound: see `WriterTurns`); looked at every _WATCH_EVERY s.
SLOW_TURN_SECONDS = 30.0
_WATCH_EVERY = 1.0

# SQLite gives a new row the largest rowid so far plus one while that stays below this; past
# it, one at random (so ids of rows inserted together are a range only below it).
SQLITE_LARGEST_ROWID = 2**63 - 1


class Database:
    """One engine plus the two kinds of transaction loadbay uses."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        lock_timeout: float = 10.0,
        readers: int = 0,
        ping_after: float = 0.0,
        copies_log: bool = False,
    ) -> None:
        """`readers`: how many threads may use the database at once (an API server's request
        threads). On SQLite the pool keeps that many connections: past the pool, every
        request opened and closed one of its own (four PRAGMAs and a checkpoint each); a
        PostgreSQL server limits its connections, so its pool stays `pool_size`.

        `ping_after` (PostgreSQL): a pooled connection is tested by a round trip before use
        once it has been idle that many seconds, and before that only by a poll of its
        socket (a backend that was ended has closed it); 0: by a round trip before every
        use. A connection that dies unseen by the poll fails its transaction as an
        interruption (`is_interruption`): right for workers, which give such work back and
        take it again (see `WORKER_PING_AFTER`), not for an API request.

        `copies_log` (SQLite): this process's writers copy the write-ahead log into the
        database after their turn (see `write`): a worker's, not an API request's, which
        would wait for the copy."""
        self.url = url
        self.ping_after = ping_after
        self.is_sqlite = url.startswith("sqlite")
        self._turns: WriterTurns | None = None
        self._copies_log = copies_log
        self._checkpoint_due = 0.0  # (time.monotonic)
        self._checkpointing = threading.Lock()
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, max(pool_size, readers))
            self._turns = WriterTurns.beside(make_url(url).database)
        else:
            self.engine = _pg_engine(url, pool_size, lock_timeout, ping_after)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A read-write transaction, committed on success, rolled back on error.

        On SQLite, a commit that makes the write-ahead log pass `_LOG_PAGES` copies it into
        the database before the writer's turn ends (SQLite's own checkpoint: the copy and
        two fsyncs, a few hundred ms on a slow disk), while every other writer waits. So
        every `CHECKPOINT_EVERY` seconds a process that `copies_log` (a worker) copies what
        the log holds after its turn instead, beside the other writers; the commit that
        passes the limit then has only the last pages to copy, and the log can start again
        from its start."""
        turn = self._turns.turn() if self._turns is not None else nullcontext()
        with turn, self.engine.connect() as conn:
            conn = conn.execution_options(loadbay_write=True)
            with conn.begin():
                yield conn
        if self._turns is not None and self._copies_log:
            self._checkpoint_if_due()

    def _checkpoint_if_due(self) -> None:
        """Copy the write-ahead log into the database, without waiting for anyone (PASSIVE:
        a checkpoint already running elsewhere, or readers of older pages, leave the rest
        for the next), when this process has not for `CHECKPOINT_EVERY` seconds."""
        now = time.monotonic()
        if now < self._checkpoint_due or not self._checkpointing.acquire(blocking=False):
            return
        try:
            self._checkpoint_due = now + CHECKPOINT_EVERY
            _checkpoint(self.engine)
        except sqlite3.Error as exc:  # the write is committed: the next commit or checkpoint copies the log
            log.warning("SQLite checkpoint after a write failed: %s", exc)
        finally:
            self._checkpointing.release()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot on PostgreSQL and SQLite WAL)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def single_read(self) -> Iterator[Connection]:
        """A connection for one read statement, which is consistent on its own: no transaction
        around it on PostgreSQL, where BEGIN and COMMIT would be two more round trips to a
        server that may be busy (SQLite's BEGIN costs no trip: `read()`)."""
        if self.is_sqlite:
            with self.read() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def dispose(self) -> None:
        self.engine.dispose()


# libpq's TCP keepalives: this side notices a server that vanished in about 25 s. The URL's
# own values (`?keepalives_idle=…`) win.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}

# The session, on the server's side (milliseconds and seconds as PostgreSQL takes them):
_SESSION = {
    # a backend whose client is gone stops its statement (and releases its locks) within 2 s:
    # without it, PostgreSQL notices only when the statement ends (PostgreSQL 14 and later)
    "client_connection_check_interval": "2000",
    # a transaction left idle for a minute is ended (its client hangs; a worker's is long
    # past its lease by then): it holds locks that every other worker may need
    "idle_in_transaction_session_timeout": "60000",
    # the server's keepalives: a client machine that vanished is noticed in about 25 s
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}


def _pg_engine(url: str, pool_size: int, lock_timeout: float, ping_after: float) -> Engine:
    given = make_url(url).query
    keepalives = {name: value for name, value in _KEEPALIVES.items() if name not in given}
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=20, pool_pre_ping=not ping_after, connect_args=keepalives
    )
    # a statement waits at most `lock_timeout` for a lock, then fails (see `is_interruption`)
    session = _SESSION | {"lock_timeout": str(max(1, round(lock_timeout * 1000)))}
    event.listen(engine, "connect", partial(_pg_on_connect, session))
    if ping_after:
        event.listen(engine, "checkin", _note_return)
        event.listen(engine, "checkout", partial(_test_before_use, engine.dialect, ping_after))
    return engine


# A worker's loop takes a pooled connection five or six times per chunk (claim, fair share,
# apply, …), a few milliseconds apart: testing each one first by a round trip was a quarter
# of its round trips to the server.
WORKER_PING_AFTER = 2.0
_RETURNED = "loadbay_returned_at"


def _note_return(_dbapi_conn: Any, record: Any) -> None:
    record.info[_RETURNED] = time.monotonic()


def _test_before_use(dialect: Dialect, seconds: float, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Before a pooled connection is used: one idle for `seconds` or more is tested by a round
    trip; one used since is dead if the server has written to it while it was pooled (a
    backend that ends says so and closes its socket: a poll, no round trip). A dead one
    makes the pool replace it and every connection made before it (as pool_pre_ping does)."""
    returned = record.info.get(_RETURNED)
    if returned is None:  # (new)
        return
    if time.monotonic() - returned < seconds:
        if _server_spoke(dbapi_conn):
            raise InvalidatePoolError("the server ended a pooled connection")
        return
    try:
        dialect.do_ping(dbapi_conn)
    except Exception as exc:
        raise InvalidatePoolError(f"a pooled connection idle {seconds:g} s or more was dead: {exc}") from exc


def _server_spoke(dbapi_conn: Any) -> bool:
    """Whether an idle connection's socket has something to read (or has closed)."""
    poller = select.poll()
    poller.register(dbapi_conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _pg_on_connect(session: dict[str, str], dbapi_conn: Any, _record: Any) -> None:
    """Set the session's settings in one statement (those the server knows)."""
    if dbapi_conn.info.server_version < 140000:
        session = {k: v for k, v in session.items() if k != "client_connection_check_interval"}
    calls = ", ".join(f"set_config('{name}', %s, false)" for name in session)
    with dbapi_conn.cursor() as cursor:
        cursor.execute(f"SELECT {calls}", list(session.values()))
    dbapi_conn.commit()


# PostgreSQL's SQLSTATEs that end a statement for a reason that is not the work's own.
_INTERRUPTIONS = {
    "55P03",  # lock_not_available (lock_timeout)
    "40P01",  # deadlock_detected
    "40001",  # serialization_failure
    "57014",  # query_canceled
    "57P01",  # admin_shutdown (the backend was terminated)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "25P03",  # idle_in_transaction_session_timeout
}
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def is_interruption(exc: BaseException) -> bool:
    """Whether the database ended a statement for a reason that is not the work's own: a lock
    it waited for too long (lock_timeout, a deadlock, SQLite's busy timeout), a conflict with
    another transaction, a connection lost or ended by the server, or no connection to be
    had (`is_unavailable`: a server restarting refuses the new connection that replaces the
    one it ended). Trying the same work again later may well succeed."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or is_unavailable(exc):
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        return getattr(orig, "sqlite_errorcode", 0) & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    state = getattr(orig, "sqlstate", None)
    return isinstance(state, str) and (state in _INTERRUPTIONS or state.startswith("08"))


def is_unavailable(exc: BaseException) -> bool:
    """Whether the database could not be reached at all: a connection refused, reset or timed
    out (psycopg's OperationalError without a SQLSTATE), lost, or ended by the server (it is
    shutting down or starting up). The work did nothing wrong; it can run once the database
    is back."""
    if not isinstance(exc, DBAPIError) or isinstance(exc.orig, sqlite3.Error):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if state is None:
        return isinstance(exc, OperationalError) and not _refused(str(exc.orig))
    return isinstance(state, str) and (state.startswith("08") or state in ("57P01", "57P02", "57P03"))


# What a server that answered says when it cannot take a connection yet (psycopg gives a
# failed connection no SQLSTATE): anything else it says is settled (a wrong password, an
# unknown database or role, no pg_hba.conf entry), not an outage to wait out.
_NOT_YET = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "too many clients already",
    "remaining connection slots are reserved",
)


def _refused(message: str) -> bool:
    """Whether a failed connection's message is the server's settled refusal (see _NOT_YET)."""
    return "FATAL:" in message and not any(reason in message for reason in _NOT_YET)


def database_trouble(exc: BaseException) -> str | None:
    """What a log line says of an error that is the database's, not the work's (unreachable,
    or an interruption: `is_unavailable`, `is_interruption`): its kind and the first line of
    its message; None for any other error (which deserves its traceback)."""
    if not (is_unavailable(exc) or is_interruption(exc)):
        return None
    cause = getattr(exc, "orig", None) or exc
    return f"{type(cause).__name__}: {str(cause).strip().partition(chr(10))[0]}"


class WriterTurns:
    """SQLite's writers, in every process, take turns.

    SQLite has one write lock, and a writer that finds it taken sleeps and tries again (1 to
    100 ms apart): one that releases it and at once wants it again (a worker that applied a
    chunk claims the next) takes it back before a sleeping one wakes, so the validating
    worker's writes waited seconds in all behind the applying one's. Two `flock` files
    beside the database make the turns fair: a writer holds the gate while it waits for the
    writer lock and lets it go once it has that, so a writer that wants the lock again waits
    at the gate behind the one waiting for it. A waiter is woken by the kernel when the lock
    is let go, and a killed process's locks are let go with it. Each turn opens both files
    anew: a lock belongs to its open file, so threads of one process take turns too.

    A `flock` cannot be given up after a while, so a process that hangs in its turn (stopped,
    frozen) holds up every writer; one that waits over SLOW_TURN_SECONDS says so in the log,
    naming the process that holds the turn (`_SlowTurns`).
    """

    def __init__(self, path: str) -> None:
        self._writer = path + "-writer"
        self._gate = path + "-gate"

    @classmethod
    def beside(cls, database: str | None) -> WriterTurns | None:
        """The turns of the SQLite database at that path (none for one in memory)."""
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return cls(database)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the writers' turn: after the writer holding it, and after the one waiting
        for it at the gate, if any (the others waiting at the gate go in no set order)."""
        writer = _lock_file(self._writer)
        try:
            gate = _lock_file(self._gate)
            try:
                with _SLOW_TURNS.waiting(self._writer):
                    fcntl.flock(gate, fcntl.LOCK_EX)
                    fcntl.flock(writer, fcntl.LOCK_EX)
            finally:
                os.close(gate)
            yield
        finally:
            os.close(writer)


class _SlowTurns:
    """This process's writers waiting for their turn, and a thread (started with the first
    wait) that logs each one waiting over SLOW_TURN_SECONDS, once."""

    def __init__(self) -> None:
        self._waiting: dict[object, tuple[float, str]] = {}  # a wait -> (since, writer lock file)
        self._starting = threading.Lock()
        self._watcher: threading.Thread | None = None

    @contextmanager
    def waiting(self, path: str) -> Iterator[None]:
        wait = object()
        self._waiting[wait] = (time.monotonic(), path)
        if self._watcher is None:
            self._start()
        try:
            yield
        finally:
            del self._waiting[wait]

    def _start(self) -> None:
        with self._starting:
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="loadbay-slow-turns", daemon=True)
                self._watcher.start()

    def _watch(self) -> None:
        told: set[object] = set()
        while True:
            time.sleep(_WATCH_EVERY)
            now, waits = time.monotonic(), dict(self._waiting)
            for wait, (since, path) in waits.items():
                if now - since >= SLOW_TURN_SECONDS and wait not in told:
                    told.add(wait)
                    log.warning(
                        "a write has waited %.0f s for SQLite's writers' turn, held by %s: every "
                        "write waits while that process holds it",
                        now - since,
                        _holder(path),
                    )
            told &= waits.keys()


_SLOW_TURNS = _SlowTurns()


def _holder(path: str) -> str:
    """The process holding the `flock` on `path`, as /proc/locks names it (Linux)."""
    try:
        inode = str(os.stat(path).st_ino)
        with open("/proc/locks") as locks:
            for line in locks:  # "1: FLOCK  ADVISORY  WRITE <pid> <major>:<minor>:<inode> 0 EOF"
                fields = line.split()  # (a waiter's line has "->" before FLOCK)
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == inode:
                    return f"pid {fields[4]}"
    except OSError:
        pass
    return "a process /proc/locks does not name"


def _checkpoint(engine: Engine) -> None:
    """SQLite's PASSIVE checkpoint, on a pooled connection outside any transaction."""
    connection = engine.raw_connection()
    try:
        connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()
    finally:
        connection.close()


def _lock_file(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)


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
    cursor.execute(f"PRAGMA wal_autocheckpoint={_LOG_PAGES}")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("loadbay_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (safe to run on every start). One line
    at INFO says what it applied, if anything; each migration is logged at DEBUG, and only then
    Alembic's own lines (a line per migration and two of its context, which every `serve` and
    worker process printed ahead of anything a person reads)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    config = alembic_config(url)
    applied: list[str] = []
    config.attributes["on_version_apply"] = partial(_applied, applied)
    with _alembic_quiet(), _migrating_alone(url):
        try:
            command.upgrade(config, "head")
        except CommandError as exc:
            if "Can't locate revision" not in str(exc):
                raise
            raise SchemaTooNew(f"{exc}: {newer_schema(head_revision(config))}") from None
    if applied:
        log.info(
            "database migrated to revision %s (%s applied)", applied[-1], many(len(applied), "migration")
        )


_MIGRATION_LOCK = 0x6C6F6164626179  # PostgreSQL's advisory lock key of a migration ("loadbay")


@contextmanager
def _migrating_alone(url: str) -> Iterator[None]:
    """One process migrates the database at a time: processes that start together on a new
    database (serve and a worker) each made the tables, and all but one crashed on what the
    other had made. SQLite: a `flock` on a file beside the database; PostgreSQL: an advisory
    lock, held by a connection of its own. The others then find the schema at its head."""
    if url.startswith("sqlite:///"):
        with open(f"{url.removeprefix('sqlite:///')}.migrating", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
    finally:
        engine.dispose()


def _applied(applied: list[str], *, step: MigrationInfo, **_: Any) -> None:
    """Alembic's `on_version_apply` (see migrations/env.py): a migration step was applied."""
    reached = step.destination_revision_ids
    applied.extend(reached)
    log.debug("applied migration %s: %s", ", ".join(reached), getattr(step.up_revision, "doc", ""))


@contextmanager
def _alembic_quiet() -> Iterator[None]:
    """Alembic's INFO lines only while this module's logger is at DEBUG."""
    alembic = logging.getLogger("alembic")
    level = alembic.level
    if not log.isEnabledFor(logging.DEBUG):
        alembic.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic.setLevel(level)


def alembic_config(url: str) -> Config:
    """Alembic's configuration for loadbay's migrations, pointing at `url`."""
    script_dir = resources.files("loadbay") / "migrations"
    config = Config()
    config.set_main_option("script_location", str(script_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def schema_revisions(db: Database) -> tuple[str | None, str | None]:
    """(the database's migration revision, the newest this loadbay has): equal once migrated."""
    with db.read() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head_revision(alembic_config(db.url))


def head_revision(config: Config) -> str | None:
    """The newest migration revision this loadbay has."""
    return ScriptDirectory.from_config(config).get_current_head()


def known_revision(db: Database, revision: str) -> bool:
    """Whether this loadbay has the migration `revision` (else a newer one made it)."""
    try:
        return ScriptDirectory.from_config(alembic_config(db.url)).get_revision(revision) is not None
    except CommandError:
        return False


def newer_schema(head: str | None) -> str:
    """What an operator is told of a database a newer loadbay migrated."""
    return (
        f"the database was migrated by a newer loadbay (this one's newest revision is {head}); "
        "run that version or a newer one: an older one cannot use its schema"
    )
