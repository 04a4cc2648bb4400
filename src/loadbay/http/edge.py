"""ASGI middleware at the app's edge, for what reaches the app before any route does.

- `QuietDisconnects`: a client that hangs up before its request is read is a line in the
  log, not an error. `Request.stream()` raises `ClientDisconnect` when the client goes away
  mid-body (or the server closes a stalled connection); nobody is left to answer, and
  without this every such request logs a full traceback.
- `RefuseAmbiguousFraming`: a request with both Content-Length and Transfer-Encoding is
  answered 400 and its connection closed (RFC 9112 §6.3 allows it). h11 would let the
  chunked framing win; a proxy in front that trusts Content-Length would then see another
  request boundary than loadbay does, which is how requests are smuggled.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["QuietDisconnects", "RefuseAmbiguousFraming"]

log = logging.getLogger(__name__)


class QuietDisconnects:
    """Log a client's disconnect mid-request as one info line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            client = scope.get("client") or ("a client", 0)
            log.info("%s:%s hung up during %s %s", *client, scope.get("method"), scope.get("path"))


class RefuseAmbiguousFraming:
    """Answer 400 (and close) to a request that gives its body's length two ways."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _framed_twice(scope):
            refusal = PlainTextResponse(
                "Content-Length and Transfer-Encoding together are refused: send one of them.",
                status_code=400,
                headers={"Connection": "close"},
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _framed_twice(scope: Scope) -> bool:
    names = {name for name, _value in scope["headers"]}
    return b"content-length" in names and b"transfer-encoding" in names
