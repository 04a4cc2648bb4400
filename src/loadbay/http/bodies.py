"""Request bodies: the caller checked first, then read whole within a limit (JSON and XML).

Every route of the native API and of the profiles is a `LimitedRoute`. On a request that
may carry a body it first runs the app's authenticator (`loadbay.http.auth`), so a caller
without a valid key costs no more than a request head. It then reads the body: at most
LOADBAY_MAX_BODY_BYTES, refused with `PayloadTooLarge` (413, in the app's own error
format) as soon as the Content-Length or the bytes received say it is over, before anything
is parsed or stored. A route that streams a file into the blob store instead is marked with
`@streams_files`: its body is not read here, and LOADBAY_MAX_UPLOAD_BYTES limits it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope

from loadbay.domain.text import byte_size
from loadbay.errors import PayloadTooLarge
from loadbay.http.auth import authenticate_first, is_signed
from loadbay.http.jsonbody import parse_json

__all__ = ["LimitedRoute", "read_limited", "streams_files"]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_STREAMS = "__loadbay_streams_files__"

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def streams_files(endpoint: Endpoint) -> Endpoint:
    """Mark a route that streams its body into an upload (its own limit applies)."""
    setattr(endpoint, _STREAMS, True)
    return endpoint


class LimitedRoute(APIRoute):
    """A route whose caller is authenticated, then its request body read within the server's
    limit, before the endpoint runs."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        keyless = is_signed(self.endpoint)
        streams = getattr(self.endpoint, _STREAMS, False)

        async def limited(request: Request) -> Response:
            if request.method not in _WITH_BODY:
                return await handler(request)
            if not keyless:
                await authenticate_first(request)
            if streams:
                return await handler(request)
            body = await read_limited(request)
            return await handler(_ReadRequest(request.scope, request.receive, body))

        return limited


async def read_limited(request: Request) -> bytes:
    """The request's body, read within the server's limit (for a `@streams_files` route that
    also takes a document: Click2Mail's batch XML)."""
    limit: int = request.app.state.service.rt.settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise _too_large(None, limit)
    return bytes(body)


def _too_large(size: int | None, limit: int) -> PayloadTooLarge:
    said = byte_size(size) if size is not None else f"over {byte_size(limit)}"
    return PayloadTooLarge(
        f"the request body is {said}; this server reads at most {byte_size(limit)} of JSON or XML "
        "in one request (LOADBAY_MAX_BODY_BYTES): send more items in more pages, or the data as a file"
    )


class _ReadRequest(Request):
    """The request with its body already read (within the limit)."""

    def __init__(self, scope: Scope, receive: Receive, body: bytes) -> None:
        super().__init__(scope, receive)
        self._read = body

    async def body(self) -> bytes:
        return self._read

    async def stream(self) -> AsyncGenerator[bytes, None]:
        yield self._read

    async def json(self) -> Any:
        """The body's JSON value, as FastAPI reads a route's body model, by the project's one
        JSON reader (`parse_json`: UTF-8 only, where Starlette's `json.loads(body)` takes an
        encoded surrogate or UTF-16; nesting bounded; no NaN). A body it refuses is a 400 that
        says why, which the app renders in its own error format (FastAPI would answer any
        error but a JSONDecodeError with "There was an error parsing the body")."""
        try:
            return parse_json(self._read)
        except ValueError as exc:
            raise HTTPException(400, f"the body is {exc}") from None
