"""`quick_read`: a short read from an async route runs at once on SQLite (no thread switch), in
the thread pool on PostgreSQL (the event loop must not wait for the network)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any, cast

import pytest

from loadbay.core.service import BatchService
from loadbay.http.deps import quick_read


def _service(is_sqlite: bool) -> BatchService:
    return cast(BatchService, SimpleNamespace(rt=SimpleNamespace(db=SimpleNamespace(is_sqlite=is_sqlite))))


def _where(tag: str, *, times: int = 1) -> tuple[str, int, str]:
    return tag, times, threading.current_thread().name


@pytest.mark.parametrize(("is_sqlite", "on_loop"), [(True, True), (False, False)])
def test_runs_on_the_loop_on_sqlite_only(is_sqlite: bool, on_loop: bool) -> None:
    async def read() -> tuple[str, tuple[str, int, str]]:
        found = await quick_read(_service(is_sqlite), _where, "x", times=2)
        return threading.current_thread().name, found

    loop_thread, (tag, times, read_thread) = asyncio.run(read())
    assert (tag, times) == ("x", 2)
    assert (read_thread == loop_thread) is on_loop


@pytest.mark.parametrize("is_sqlite", [True, False])
def test_errors_reach_the_route(is_sqlite: bool) -> None:
    def refuse() -> Any:
        raise LookupError("no such batch")

    with pytest.raises(LookupError, match="no such batch"):
        asyncio.run(quick_read(_service(is_sqlite), refuse))
