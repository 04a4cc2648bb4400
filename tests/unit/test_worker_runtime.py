"""Both kinds of worker process (`loadbay worker`, and the ones `loadbay serve` starts) build
their runtime as workers: pooled PostgreSQL connections tested by a round trip only after
idle (see `Runtime.for_workers`; tests/integration/test_pg_sessions.py shows what it does)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadbay import supervisor
from loadbay.cli import app
from loadbay.core.runtime import Runtime


class Built(Exception):
    """Raised in place of building the runtime: which entry point got this far."""


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def for_workers(cls: type[Runtime], *args: Any, **kwargs: Any) -> Runtime:
        calls.append("for_workers")
        raise Built

    def build(cls: type[Runtime], *args: Any, **kwargs: Any) -> Runtime:
        calls.append("build")
        raise Built

    monkeypatch.setattr(Runtime, "for_workers", classmethod(for_workers))
    monkeypatch.setattr(Runtime, "build", classmethod(build))
    monkeypatch.setattr("loadbay.supervisor.os.nice", lambda _: 0)  # (not this test process's priority)
    return calls


def test_loadbay_worker_builds_the_worker_runtime(built: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["worker", "--data-dir", str(tmp_path)])
    assert isinstance(result.exception, Built)
    assert built == ["for_workers"]


def test_a_worker_process_of_serve_builds_the_worker_runtime(built: list[str], tmp_path: Path) -> None:
    with pytest.raises(Built):
        supervisor.main(["--data-dir", str(tmp_path)])
    assert built == ["for_workers"]
