"""What operators and their tools ask: is it up (/healthz), can it do work (/readyz), and the
Prometheus metrics (/metrics)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from loadbay.core.metrics import exposition, registry_for
from loadbay.core.runtime import Runtime
from loadbay.db import queue
from loadbay.db import repository as repo

__all__ = ["ops_router"]


def ops_router(rt: Runtime) -> APIRouter:
    router = APIRouter(tags=["ops"])
    registry = registry_for(rt.db, rt.settings.heartbeat_seconds)

    @router.get("/healthz")
    def healthz() -> dict[str, Any]:
        """The server is up and reaches its database; `workers`: processes running workers
        whose heartbeat is recent (0 means batches wait: start `loadbay worker`)."""
        return {"status": "ok", "workers": len(_live(rt))}

    @router.get("/readyz", responses={503: {"description": "Not ready: the reasons are listed"}})
    def readyz() -> JSONResponse:
        """Ready to take and finish imports: the database answers and at least one worker
        process is alive. 503 with the reasons otherwise."""
        problems: list[str] = []
        try:
            live = _live(rt)
        except Exception as exc:  # the database is away: say so, do not crash the probe
            live = []
            problems.append(f"the database does not answer ({type(exc).__name__})")
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


def _live(rt: Runtime) -> list[queue.WorkerBeat]:
    since = repo.now() - timedelta(seconds=3 * rt.settings.heartbeat_seconds)
    with rt.db.read() as conn:
        return queue.live_workers(conn, since)
