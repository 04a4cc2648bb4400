"""What operators and their tools ask: is it up (/healthz), can it do work (/readyz), and the
Prometheus metrics (/metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from loadbay.core.doctor import Check, check_store
from loadbay.core.metrics import exposition, registry_for
from loadbay.core.runtime import Runtime
from loadbay.db import queue
from loadbay.db import repository as repo

__all__ = ["ops_router"]


def ops_router(rt: Runtime) -> APIRouter:
    router = APIRouter(tags=["ops"])
    registry = registry_for(rt.db, rt.settings.heartbeat_seconds)
    store = _every(_STORE_CHECK_SECONDS, lambda: check_store(rt.blobs))

    @router.get("/healthz")
    def healthz() -> dict[str, Any]:
        """The server is up (liveness): 200 whether or not its database answers, so that an
        outage of the database does not get every server restarted. `workers`: processes
        running workers whose heartbeat is recent (0 means batches wait: start `loadbay
        worker`); null, with the reason in `problems`, while the database does not answer
        (`/readyz` is 503 then)."""
        try:
            return {"status": "ok", "workers": len(_live(rt))}
        except Exception as exc:  # the database is away: this process still lives
            return {"status": "ok", "workers": None, "problems": [_no_database(exc)]}

    @router.get("/readyz", responses={503: {"description": "Not ready: the reasons are listed"}})
    def readyz() -> JSONResponse:
        """Ready to take and finish imports: the database answers, the blob store takes, gives
        back and deletes a probe object (checked at most every 15 s), and at least one worker
        process is alive. 503 with the reasons otherwise."""
        problems: list[str] = []
        stored = store()
        if not stored.ok:
            problems.append(f"the blob store does not work: {stored.detail}")
        try:
            live = _live(rt)
        except Exception as exc:  # the database is away: say so, do not crash the probe
            live = []
            problems.append(_no_database(exc))
        else:
            if not live:
                problems.append("no worker is alive: batches wait until a `loadbay worker` (or serve) runs")
        body: dict[str, Any] = {"status": "ready" if not problems else "not ready", "workers": len(live)}
        if problems:
            body["problems"] = problems
        return JSONResponse(body, status_code=503 if problems else 200)

    @router.get("/metrics", response_class=Response)
    def metrics(_request: Request) -> Response:
        return Response(exposition(registry), media_type=CONTENT_TYPE_LATEST)

    return router


_STORE_CHECK_SECONDS = 15.0  # a probe (three requests on S3) per server at most this often


def _every(seconds: float, check: Callable[[], Check]) -> Callable[[], Check]:
    """`check`, run again only once its last answer is `seconds` old."""
    last: list[tuple[float, Check]] = []

    def cached() -> Check:
        if not last or time.monotonic() - last[0][0] > seconds:
            last[:] = [(time.monotonic(), check())]
        return last[0][1]

    return cached


def _no_database(exc: Exception) -> str:
    return f"the database does not answer ({type(exc).__name__})"


def _live(rt: Runtime) -> list[queue.WorkerBeat]:
    since = repo.now() - timedelta(seconds=3 * rt.settings.heartbeat_seconds)
    with rt.db.read() as conn:
        return queue.live_workers(conn, since)
