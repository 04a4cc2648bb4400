"""Applying every migration yields exactly the schema the code declares."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from loadbay.db.engine import alembic_config, migrate
from loadbay.db.tables import metadata
from loadbay.errors import SchemaTooNew


def test_migrations_match_the_declared_schema(database_url: str) -> None:
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    migrate(url)
    migrate(url)  # running again on start is harmless
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_staging_keys_compare_bytes_on_postgresql(database_url: str) -> None:
    """The staging tables' keys take the "C" collation on PostgreSQL (equality is all they
    are used for), whatever the database's own collation; and the migration goes back."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    migrate(url)
    query = text(
        "SELECT table_name || '.' || column_name, collation_name FROM information_schema.columns"
        " WHERE table_name IN ('batch_keys', 'child_shares') AND column_name LIKE '%key'"
    )
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert dict(conn.execute(query).all()) == {
                "batch_keys.key": "C",
                "child_shares.parent_key": "C",
                "child_shares.child_key": "C",
            }
        command.downgrade(alembic_config(url), "0009")
        with engine.connect() as conn:
            assert set(dict(conn.execute(query).all()).values()) == {None}
        migrate(url)
    finally:
        engine.dispose()


def test_staging_keys_are_one_btree_on_sqlite_and_kept_both_ways(database_url: str) -> None:
    """SQLite's batch_keys is WITHOUT ROWID from 0012 (no index beside the table), and the
    keys of a validation under way survive the migration and its downgrade."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    config = alembic_config(database_url)
    command.upgrade(config, "0011")
    engine = create_engine(database_url)
    keys = [(1, "a"), (1, "b"), (2, "a")]
    schema = text("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'batch_keys'")
    read = text("SELECT batch_id, key FROM batch_keys ORDER BY batch_id, key")
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO batch_keys VALUES (:b, :k)"), [{"b": b, "k": k} for b, k in keys])
        migrate(database_url)
        with engine.connect() as conn:
            objects = conn.execute(schema).all()
            assert [(kind, name) for kind, name, _ in objects] == [("table", "batch_keys")]
            assert "WITHOUT ROWID" in objects[0][2]
            assert [tuple(row) for row in conn.execute(read)] == keys
        command.downgrade(config, "0011")
        with engine.connect() as conn:
            assert "WITHOUT ROWID" not in conn.execute(schema).all()[0][2]
            assert [tuple(row) for row in conn.execute(read)] == keys
    finally:
        engine.dispose()


def test_a_database_a_newer_loadbay_migrated_is_told_so(database_url: str, tmp_path: Path) -> None:
    """An older loadbay started against it (a rollback, or a server of the old version restarted
    mid-rollout) said only Alembic's "Can't locate revision identified by '0099'", and `doctor`
    advised starting it once to migrate the database, which it cannot."""
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    migrate(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    finally:
        engine.dispose()
    with pytest.raises(SchemaTooNew, match="migrated by a newer loadbay"):
        migrate(url)
    env = os.environ | {"LOADBAY_DATABASE_URL": database_url, "LOADBAY_DATA_DIR": str(tmp_path)}
    doctor = subprocess.run(
        [sys.executable, "-m", "loadbay", "doctor"], env=env, capture_output=True, text=True, check=False
    )
    assert doctor.returncode == 1
    assert "schema at revision 0099: the database was migrated by a newer loadbay" in doctor.stdout
    assert "start `loadbay serve`" not in doctor.stdout
    worker = subprocess.run(
        [sys.executable, "-m", "loadbay", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert worker.returncode == 1
    assert (
        "loadbay: Can't locate revision identified by '0099': the database was migrated by a newer"
        in worker.stderr
    )
    assert "Traceback" not in worker.stderr
