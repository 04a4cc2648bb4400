"""Fresh, empty databases for each measurement: a SQLite file, or a new PostgreSQL database."""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import Engine, create_engine, event, insert, text
from sqlalchemy.pool import NullPool
from tests.support.postgres import create_database, drop_database, postgres_server_url

from loadbay.db.tables import accounts, billing_customers

__all__ = [
    "BENCH_POSTGRES_ENV",
    "Backend",
    "Fresh",
    "PostgresBackend",
    "SqliteBackend",
    "count_customers",
    "create_customer_schema",
    "engine_for",
    "sqlalchemy_url",
]

BENCH_POSTGRES_ENV = "LOADBAY_BENCH_POSTGRES_URL"


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@dataclass(frozen=True)
class Fresh:
    """One fresh database: `url` is what LOADBAY_DATABASE_URL takes; `work_dir` is scratch space."""

    url: str
    work_dir: Path
    sqlite_path: Path | None = None


class SqliteBackend:
    """A new SQLite file per measurement (loadbay's embedded default)."""

    name = "sqlite"

    def version(self) -> str:
        return sqlite3.sqlite_version

    @contextmanager
    def fresh(self, label: str, scratch: Path) -> Iterator[Fresh]:
        work_dir = scratch / f"{label}-{uuid.uuid4().hex[:8]}"
        work_dir.mkdir(parents=True)
        path = work_dir / "loadbay.db"
        try:
            yield Fresh(f"sqlite:///{path}", work_dir, path)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)


class PostgresBackend:
    """A new database per measurement on one PostgreSQL server (dropped afterwards)."""

    name = "postgres"

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url

    @classmethod
    def find(cls) -> PostgresBackend | None:
        """LOADBAY_BENCH_POSTGRES_URL, else the test suite's throwaway cluster; None if neither."""
        url = os.environ.get(BENCH_POSTGRES_ENV, "").strip() or postgres_server_url()
        return cls(libpq_url(url)) if url else None

    def version(self) -> str:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    @contextmanager
    def fresh(self, label: str, scratch: Path) -> Iterator[Fresh]:
        name = f"bench_{label}_{uuid.uuid4().hex[:8]}".replace("-", "_")
        work_dir = scratch / name
        work_dir.mkdir(parents=True)
        url = create_database(self.server_url, name)
        try:
            yield Fresh(url, work_dir)
        finally:
            drop_database(self.server_url, name)
            shutil.rmtree(work_dir, ignore_errors=True)


Backend = SqliteBackend | PostgresBackend


def engine_for(url: str) -> Engine:
    """A SQLAlchemy engine; SQLite gets loadbay's own settings (WAL, synchronous=NORMAL)."""
    if not url.startswith("sqlite"):
        return create_engine(sqlalchemy_url(url))
    engine = create_engine(url, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    return engine


def create_customer_schema(url: str) -> int:
    """Create `accounts` and `billing_customers` exactly as loadbay declares them (same columns,
    types, NOT NULLs, unique (account_id, customer_number), foreign key); return a new account id."""
    engine = engine_for(url)
    try:
        accounts.metadata.create_all(engine, tables=[accounts, billing_customers])
        with engine.begin() as conn:
            values = {"name": "bench", "test": False, "created_at": datetime.now(UTC)}
            account_id = conn.execute(insert(accounts).values(values).returning(accounts.c.id)).scalar_one()
    finally:
        engine.dispose()
    return int(account_id)


def count_customers(url: str) -> int:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM billing_customers")).scalar_one())
    finally:
        engine.dispose()
