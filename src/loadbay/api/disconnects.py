"""A client that hangs up before its request is read is a line in the log, not an error.

`Request.stream()` raises `ClientDisconnect` when the client goes away mid-body (or the
server closes a stalled connection); nobody is left to answer. Without this middleware
every such request logs a full traceback as an unhandled exception.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["QuietDisconnects"]

log = logging.getLogger(__name__)


class QuietDisconnects:
    """ASGI middleware: log a client's disconnect mid-request as one info line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            client = scope.get("client") or ("a client", 0)
            log.info("%s:%s hung up during %s %s", *client, scope.get("method"), scope.get("path"))
