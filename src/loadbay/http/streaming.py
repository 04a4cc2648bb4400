"""Request bodies streamed into uploads (shared by the native API and the profiles)."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from loadbay.core.intake import Incoming

__all__ = ["receive"]

# Body chunks are gathered up to this much and handed to the upload in a worker thread: a
# write may block (a part of a multipart upload sent to S3), and the event loop must not.
_WRITE_SIZE = 1 << 20


async def receive(upload: Incoming, request: Request) -> None:
    """Stream the request body into an upload, enforcing the size limit as bytes arrive."""
    upload.check_declared_size(_declared_size(request))
    gathered = bytearray()
    try:
        async for data in request.stream():
            gathered += data
            if len(gathered) >= _WRITE_SIZE:
                await run_in_threadpool(upload.write, bytes(gathered))
                gathered.clear()
        if gathered:
            await run_in_threadpool(upload.write, bytes(gathered))
    except BaseException:
        upload.abort()
        raise
    await run_in_threadpool(upload.finish)


def _declared_size(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None
