"""The native API's JSON request bodies: sent as JSON in UTF-8.

Every route of the native API is a `JsonRoute`. On a route that takes a JSON body, a
non-empty body's Content-Type must be `application/json` (or `application/…+json`) with
no charset other than UTF-8, else 415 `UNSUPPORTED_MEDIA_TYPE`, as
`PUT /v1/batches/{id}/data` answers a file type it does not read; checked before FastAPI
reads the body. A body with no Content-Type is read as JSON. (FastAPI alone reads a body
labelled `text/plain` or form-encoded as no JSON at all, a 400 that does not say why, and
one labelled `application/json; charset=latin-1` as UTF-8.)
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response, params
from fastapi.routing import APIRoute

from loadbay.errors import UnsupportedMediaType
from loadbay.http.bodies import LimitedRoute
from loadbay.http.problems import problem_responses
from loadbay.readers import UTF8_CHARSETS, parse_content_type

__all__ = ["JsonRoute", "check_json_media_type"]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_NOT_JSON = (
    "The body is not sent as JSON in UTF-8: a Content-Type other than `application/json` "
    "(or `application/…+json`), or a charset other than UTF-8 (`UNSUPPORTED_MEDIA_TYPE`)"
)


class _JsonFirst(APIRoute):
    """FastAPI's route, its JSON body's Content-Type checked first (see the module); the
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

        async def checked_first(request: Request) -> Response:
            if request.method in _WITH_BODY and await request.body():
                check_json_media_type(request.headers.get("content-type"))
            return await handler(request)

        return checked_first


class JsonRoute(LimitedRoute, _JsonFirst):
    """A native API route: its caller checked and its body read within the limit
    (`LimitedRoute`), then its JSON body's Content-Type checked (`_JsonFirst`), then FastAPI's."""


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
