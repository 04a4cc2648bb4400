"""The native API's JSON request bodies: sent as JSON in UTF-8, and read with errors a
client can act on.

Every route of the native API is a `JsonRoute`. On a route that takes a JSON body, a
non-empty body is checked before FastAPI reads it:

- its Content-Type must be `application/json` (or `application/…+json`) with no charset
  other than UTF-8, else 415 `UNSUPPORTED_MEDIA_TYPE`, as `PUT /v1/batches/{id}/data`
  answers a file type it does not read. A body with no Content-Type is read as JSON.
  (FastAPI alone reads a body labelled `text/plain` or form-encoded as no JSON at all, a
  400 that does not say why, and one labelled `application/json; charset=latin-1` as UTF-8.)
- it is read by `parse_json`, the one reader of every JSON body (UTF-8 only, deep nesting,
  NaN and Infinity refused: see `loadbay.http.jsonbody`). A body that is not JSON is a 400
  `INVALID_INPUT` on the field `body` that says what is wrong and where, by line and column:
  "not valid JSON at line 1, column 29: …". (FastAPI names the byte offset as the field,
  "28: JSON decode error", and answers only "There was an error parsing the body" to bytes
  that are not UTF-8 or nest too deeply.)

FastAPI then reads the parsed value as the request's JSON.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

from fastapi import Request, Response, params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from loadbay.errors import UnsupportedMediaType
from loadbay.http.bodies import LimitedRoute
from loadbay.http.jsonbody import parse_json
from loadbay.http.problems import problem_responses
from loadbay.readers import UTF8_CHARSETS, parse_content_type

__all__ = ["JsonRoute", "check_json_media_type"]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_NOT_JSON = (
    "The body is not sent as JSON in UTF-8: a Content-Type other than `application/json` "
    "(or `application/…+json`), or a charset other than UTF-8 (`UNSUPPORTED_MEDIA_TYPE`)"
)


class _JsonFirst(APIRoute):
    """FastAPI's route, its JSON body checked and parsed here first (see the module); the
    operation documents the 415."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["strict_content_type"] = False  # a body with no Content-Type is JSON
        super().__init__(path, endpoint, **kwargs)
        if self._takes_json:
            self.responses.setdefault(415, problem_responses(415, said={415: _NOT_JSON})[415])

    @property
    def _takes_json(self) -> bool:
        return self.body_field is not None and not isinstance(self.body_field.field_info, params.Form)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not self._takes_json:
            return handler

        async def parsed_first(request: Request) -> Response:
            body = await request.body() if request.method in _WITH_BODY else b""
            if not body:
                return await handler(request)
            check_json_media_type(request.headers.get("content-type"))
            try:
                value = parse_json(body)
            except ValueError as exc:
                raise RequestValidationError(
                    [{"type": "json_invalid", "loc": ("body",), "msg": str(exc), "input": None}]
                ) from None
            return await handler(_ParsedRequest(request, body, value))

        return parsed_first


class JsonRoute(LimitedRoute, _JsonFirst):
    """A native API route: its caller checked and its body read within the limit
    (`LimitedRoute`), then its JSON body checked and parsed (`_JsonFirst`), then FastAPI's."""


def check_json_media_type(content_type: str | None) -> None:
    """Refuse (UnsupportedMediaType) a Content-Type that does not say JSON in UTF-8; none at
    all (or an empty one) is taken as JSON."""
    if not (content_type or "").strip():
        return
    media_type, charset = parse_content_type(content_type or "")
    kind, _, subtype = media_type.partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type!r}; this request takes a JSON body: "
            "send it as application/json"
        )
    if charset is not None and charset not in UTF8_CHARSETS:
        raise UnsupportedMediaType(f"charset {charset!r} is not supported; send the JSON body as UTF-8")


class _ParsedRequest(Request):
    """The request with its body read, and its JSON value parsed, already."""

    def __init__(self, request: Request, body: bytes, value: Any) -> None:
        super().__init__(request.scope, request.receive)
        self._read, self._value = body, value

    async def body(self) -> bytes:
        return self._read

    async def stream(self) -> AsyncGenerator[bytes, None]:
        yield self._read

    async def json(self) -> Any:
        return self._value
