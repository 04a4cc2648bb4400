"""Request bodies streamed into uploads (shared by the native API and the profiles)."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from loadbay.core.intake import Incoming

__all__ = ["receive"]


async def receive(upload: Incoming, request: Request) -> None:
    """Stream the request body into an upload, enforcing the size limit as bytes arrive."""
    upload.check_declared_size(_declared_size(request))
    try:
        async for data in request.stream():
            upload.write(data)
    except BaseException:
        upload.abort()
        raise
    await run_in_threadpool(upload.finish)


def _declared_size(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None
