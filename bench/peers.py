"""What loadbay is compared with: the database's own bulk load ("the limit") and a naive importer.

Each function gets a fresh, empty database, creates `accounts` + `billing_customers`
from loadbay's own table definitions (so: the same columns and constraints), and
times only the load itself. Each checks the row count it left behind, so a broken
run raises instead of reporting a number.
"""

from __future__ import annotations

import csv
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from pydantic import ValidationError
from sqlalchemy.orm import DeclarativeBase, Session

from bench.data import COLUMNS, DataFile, bad_rows_in
from bench.databases import Fresh, count_customers, create_customer_schema, engine_for, libpq_url
from bench.report import FLOOR, NAIVE, Result
from loadbay.db.tables import billing_customers
from loadbay.types.billing import CustomerRecord

__all__ = ["naive", "postgres_copy_direct", "postgres_limit", "sqlite_limit"]

_INSERT_COLUMNS = ("account_id", *COLUMNS, "revision", "created_at", "updated_at")
_OPTIONAL = frozenset({"email", "phone", "address_line1", "city", "state", "postal_code", "country"})


class BenchError(RuntimeError):
    """A measurement whose outcome is not what it must be: no number is reported for it."""


def _check_count(what: str, url: str, expected: int) -> int:
    got = count_customers(url)
    if got != expected:
        raise BenchError(f"{what}: billing_customers holds {got} rows, expected {expected}")
    return got


# SQLite ---------------------------------------------------------------------


def sqlite_limit(db: Fresh, data: DataFile) -> Result:
    """One transaction of `executemany(INSERT … ON CONFLICT DO NOTHING)` fed by the csv module,
    with loadbay's pragmas (WAL, synchronous=NORMAL, foreign keys on). No validation: the bad
    rows break no constraint, so all rows load."""
    assert db.sqlite_path is not None
    account_id = create_customer_schema(db.url)
    placeholders = ", ".join("?" for _ in _INSERT_COLUMNS)
    statement = (
        f"INSERT INTO billing_customers ({', '.join(_INSERT_COLUMNS)}) VALUES ({placeholders}) "
        "ON CONFLICT (account_id, customer_number) DO NOTHING"
    )
    conn = sqlite3.connect(db.sqlite_path, isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        started = time.perf_counter()
        conn.execute("BEGIN")
        with data.path.open(newline="", encoding="utf-8") as stream:
            conn.executemany(statement, _sqlite_params(csv.reader(stream), account_id))
        conn.execute("COMMIT")
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    loaded = _check_count("sqlite limit", db.url, data.rows)
    method = "limit: executemany, 1 txn"
    return Result("sqlite", data.rows, method, data.rows, seconds, extra={"loaded": loaded})


def _sqlite_params(rows: Iterator[list[str]], account_id: int) -> Iterator[tuple[Any, ...]]:
    header = next(rows)
    if tuple(header) != COLUMNS:
        raise BenchError(f"unexpected header {header}")
    stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    for r in rows:
        # customer_number … country: empty cells are NULL; currency, balance, status default.
        yield (
            account_id,
            r[0],
            r[1],
            r[2] or None,
            r[3] or None,
            r[4] or None,
            r[5] or None,
            r[6] or None,
            r[7] or None,
            r[8] or None,
            r[9] or "USD",
            r[10] or "0",
            r[11] or "Active",
            1,
            stamp,
            stamp,
        )


# PostgreSQL -----------------------------------------------------------------

_STAGING = f"CREATE TEMP TABLE customers_in ({', '.join(f'{c} text' for c in COLUMNS)}) ON COMMIT DROP"
_MOVE = f"""
INSERT INTO billing_customers ({", ".join(_INSERT_COLUMNS)})
SELECT %(account_id)s, customer_number, name, email, phone, address_line1, city, state, postal_code,
       country, coalesce(currency, 'USD'), coalesce(balance, '0')::numeric, coalesce(status, 'Active'),
       1, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
FROM customers_in
ON CONFLICT (account_id, customer_number) DO NOTHING
"""
_COPY_IN = f"COPY customers_in ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv, HEADER)"
_COPY_DIRECT = f"COPY billing_customers ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv, HEADER)"


def _copy_file(cursor: psycopg.Cursor[Any], statement: str, path: Path) -> None:
    with cursor.copy(statement) as copy, path.open("rb") as stream:
        while block := stream.read(1 << 20):
            copy.write(block)


def postgres_limit(db: Fresh, data: DataFile) -> Result:
    """In one transaction: COPY the file into a temp staging table (all text), then
    INSERT … SELECT (casts, defaults, account id, timestamps) … ON CONFLICT DO NOTHING into
    billing_customers. No validation: the bad rows break no constraint (a 3-decimal balance is
    rounded by numeric(14,2)), so all rows load."""
    account_id = create_customer_schema(db.url)
    with psycopg.connect(libpq_url(db.url)) as conn:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            cursor.execute(_STAGING)
            _copy_file(cursor, _COPY_IN, data.path)
            cursor.execute(_MOVE, {"account_id": account_id})
            inserted = cursor.rowcount
        conn.commit()
        seconds = time.perf_counter() - started
    if inserted != data.rows:
        raise BenchError(f"postgres limit: INSERT … SELECT inserted {inserted}, expected {data.rows}")
    loaded = _check_count("postgres limit", db.url, data.rows)
    method = "limit: COPY→staging+INSERT…SELECT"
    return Result("postgres", data.rows, method, data.rows, seconds, extra={"loaded": loaded})


def postgres_copy_direct(db: Fresh, data: DataFile) -> Result:
    """Plain `COPY billing_customers FROM STDIN` (account id, revision and timestamps come from
    column defaults set for this run): the floor under the staging variant."""
    account_id = create_customer_schema(db.url)
    with psycopg.connect(libpq_url(db.url)) as conn:
        conn.execute(
            "ALTER TABLE billing_customers "
            f"ALTER account_id SET DEFAULT {int(account_id)}, ALTER revision SET DEFAULT 1, "
            "ALTER created_at SET DEFAULT (now() AT TIME ZONE 'UTC'), "
            "ALTER updated_at SET DEFAULT (now() AT TIME ZONE 'UTC')"
        )
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cursor:
            _copy_file(cursor, _COPY_DIRECT, data.path)
        conn.commit()
        seconds = time.perf_counter() - started
    loaded = _check_count("postgres COPY", db.url, data.rows)
    method = "COPY straight in (floor)"
    return Result("postgres", data.rows, method, data.rows, seconds, kind=FLOOR, extra={"loaded": loaded})


# naive ----------------------------------------------------------------------


class _Base(DeclarativeBase):
    pass


class Customer(_Base):
    """An ORM class over loadbay's own `billing_customers` table."""

    __table__ = billing_customers


def naive(database: str, db: Fresh, data: DataFile, cap: int) -> Result:
    """Row by row, the way most import code is written: csv.DictReader, CustomerRecord (pydantic)
    per row, then `session.add` + `session.flush()` per row and a commit every 1000 rows.
    Only the first `cap` rows of the file are read."""
    account_id = create_customer_schema(db.url)
    measured = min(cap, data.rows)
    engine = engine_for(db.url)
    inserted = invalid = 0
    try:
        started = time.perf_counter()
        with Session(engine) as session, data.path.open(newline="", encoding="utf-8") as stream:
            for number, raw in enumerate(csv.DictReader(stream)):
                if number >= measured:
                    break
                try:
                    record = CustomerRecord.model_validate({k: v for k, v in raw.items() if v})
                except ValidationError:
                    invalid += 1
                    continue
                now = datetime.now(UTC)
                values = record.model_dump()
                session.add(
                    Customer(account_id=account_id, revision=1, created_at=now, updated_at=now, **values)
                )
                session.flush()
                inserted += 1
                if inserted % 1000 == 0:
                    session.commit()
            session.commit()
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    expected_bad = bad_rows_in(measured)
    if invalid != expected_bad:
        raise BenchError(f"naive: {invalid} rows failed validation, expected {expected_bad}")
    _check_count("naive", db.url, measured - expected_bad)
    method = "naive ORM" + (f" (first {measured:,} rows)" if measured < data.rows else "")
    extra = {"inserted": inserted, "invalid": invalid, "cap": cap}
    return Result(database, data.rows, method, measured, seconds, kind=NAIVE, extra=extra)
