"""The one FastAPI app: native API, health, metrics, OpenAPI, dashboard, and workers (threads
in this process, and the worker processes of `loadbay serve`)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from starlette.routing import Mount
from starlette_exporter import PrometheusMiddleware

from loadbay import __version__
from loadbay.api import native, web, webhooks
from loadbay.api.ops import ops_router
from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.worker import WorkerPool
from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.http.auth import use_authenticator
from loadbay.http.deps import current_account
from loadbay.http.docs import documented_app
from loadbay.http.edge import QuietDisconnects, RefuseAmbiguousFraming
from loadbay.http.problems import document_problems, install_problem_handlers
from loadbay.profiles import mount_profiles
from loadbay.supervisor import WorkerProcesses
from loadbay.types import default_registry

__all__ = ["create_app"]

# Requests whose work runs in threads run at most this many at once (Starlette's thread
# pool: anyio's default limiter).
_REQUEST_THREADS = 40


def create_app(
    settings: Settings | None = None,
    *,
    workers: int = 2,
    base_url: str | None = None,
    processes: WorkerProcesses | None = None,
) -> FastAPI:
    """Build the app (connecting and migrating now); `workers` worker threads and the worker
    `processes` start with the app and stop with it, and a submit wakes them all."""
    settings = settings or Settings()
    readers = _REQUEST_THREADS + workers
    base_url = base_url or settings.base_url()
    rt = Runtime.build(settings, default_registry(), base_url=base_url, readers=readers)
    pool = WorkerPool(rt, workers)
    processes = processes if processes is not None else WorkerProcesses(0)
    app = documented_app("loadbay", version=__version__, lifespan=_lifespan(pool, processes))
    app.state.runtime = rt
    service = BatchService(rt, wake=_both(pool.notify, processes.notify))
    app.state.service = service
    app.add_middleware(QuietDisconnects)
    app.add_middleware(PrometheusMiddleware, app_name="loadbay", prefix="loadbay_http", group_paths=True)
    app.add_middleware(RefuseAmbiguousFraming)
    install_problem_handlers(app)
    use_authenticator(app, current_account)
    app.include_router(native.router)
    app.include_router(webhooks.router)
    app.include_router(web.router)
    mount_profiles(app, service)
    app.include_router(ops_router(rt))
    app.description = _description(app)
    document_problems(app)
    return app


_ABOUT = """\
The native bulk import API: create a batch, give it data (a file, pages of JSON items, or a
URL loadbay fetches), submit it, follow its progress, then read its record errors and its
result file. Errors are `application/problem+json` with a stable `code`.

**Authorize** with your API key (Bearer or `X-Api-Key`: either one) to try the operations.
`loadbay accounts create NAME` makes an account and prints its key once.

Each vendor API that loadbay also speaks has its own reference:
"""


def _description(app: FastAPI) -> str:
    """The document's introduction, with a link to each mounted profile's own docs page."""
    mounted = [(route.path, route.app) for route in app.routes if isinstance(route, Mount)]
    links = [
        f"- [{sub.title}]({path}/docs), under `{path}`" for path, sub in mounted if isinstance(sub, FastAPI)
    ]
    return _ABOUT + "\n".join(links)


def _both(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def both() -> None:
        first()
        second()

    return both


def _lifespan(
    pool: WorkerPool, processes: WorkerProcesses
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if pool.size:
            # Worker threads hold the GIL for CPU-bound stretches; a request thread waits up
            # to one switch interval each time it wants the GIL back (after every socket or
            # database call). 0.5 ms instead of 5 ms keeps API latency low while they work.
            sys.setswitchinterval(0.0005)
        pool.start()
        try:
            # (after the migration, create_app's, which they must not race)
            processes.start(release_claims=_claims_releaser(pool.rt))
            yield
        finally:
            processes.stop()
            pool.shutdown()
            pool.rt.close()

    return lifespan


def _claims_releaser(rt: Runtime) -> Callable[[str], tuple[int, int]]:
    """What the server does for a worker process of its own that died (given its name,
    `core.worker.process_name`): end the leases of its workers (owners `{name}:{worker}`) and
    remove its heartbeat. (validations, chunks) released."""

    def release(process: str) -> tuple[int, int]:
        with rt.db.write() as conn:
            released = queue.expire_leases_of(conn, process + ":", repo.now())
            queue.forget_worker(conn, process, repo.now() - timedelta(days=1))
        return released

    return release
