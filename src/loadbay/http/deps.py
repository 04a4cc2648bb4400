"""FastAPI dependencies: the service and the calling account; and short reads from an async
route."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from loadbay.core.service import BatchService
from loadbay.domain.models import Account
from loadbay.http.auth import api_key, once_per_request

__all__ = ["current_account", "quick_read", "service_of", "the_service"]

P = ParamSpec("P")
T = TypeVar("T")


def service_of(request: Request) -> BatchService:
    service: BatchService = request.app.state.service
    return service


async def the_service(request: Request) -> BatchService:
    """`service_of` as a route dependency (async: FastAPI runs a sync one in the thread pool)."""
    return service_of(request)


@once_per_request
def current_account(request: Request) -> Account:
    return service_of(request).authenticate(api_key(request))


async def quick_read(service: BatchService, read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`read(...)`, a read of a few rows, from an async route: at once on SQLite, in the thread
    pool on PostgreSQL. SQLite runs in this process and a WAL reader waits for no writer, so
    such a read is over in a fraction of a millisecond, less than a switch to the pool and back
    costs; and with the CPUs busy (worker processes applying a big batch), each of those two
    thread wake-ups can wait for a CPU, and for the GIL. A PostgreSQL read waits for the
    network: it must not hold up the event loop."""
    if service.rt.db.is_sqlite:
        return read(*args, **kwargs)
    return await run_in_threadpool(read, *args, **kwargs)
