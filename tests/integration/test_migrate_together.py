"""Processes that start together on a new database (`loadbay serve` and `loadbay worker`
side by side, as a deployment starts them) migrate it one at a time: each ends, none crashes
on a table or column the other made a moment before ("duplicate column name: results_at")."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import create_database, drop_database

MIGRATE = "import sys; from loadbay.db.engine import migrate; migrate(sys.argv[1])"


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_template: str | None
) -> Iterator[str]:
    """A database with no table at all (not the migrated template the other tests use)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'loadbay.db'}"
        return
    if postgres_template is None:
        pytest.skip("no PostgreSQL server available (install Debian's postgresql)")
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield create_database(postgres_template, name).replace("postgresql://", "postgresql+psycopg://", 1)
    drop_database(postgres_template, name)


def test_processes_that_start_together_migrate_one_at_a_time(empty_database: str) -> None:
    started = [
        subprocess.Popen([sys.executable, "-c", MIGRATE, empty_database], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [process.communicate(timeout=120)[1] for process in started]
    ended = [(process.returncode, error) for process, error in zip(started, errors, strict=True)]
    assert [code for code, _ in ended] == [0, 0, 0, 0], [error[-600:] for _, error in ended]
