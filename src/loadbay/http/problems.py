"""Errors at the native API's edge: loadbay errors as application/problem+json."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from loadbay import errors
from loadbay.db.engine import is_interruption

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "document_problems",
    "http_status",
    "install_error_handlers",
    "install_problem_handlers",
    "on_error",
    "problem",
    "problem_responses",
]

E = TypeVar("E", bound=Exception)
Handler = Callable[[Request, E], Awaitable[Response]]

_STATUS: tuple[tuple[type[errors.LoadbayError], int], ...] = (
    (errors.NotFound, 404),
    (errors.Gone, 410),
    (errors.Unauthorized, 401),
    (errors.BadSignature, 403),
    (errors.TestModeMismatch, 403),
    (errors.Conflict, 409),
    (errors.InvalidInput, 400),
    (errors.PayloadTooLarge, 413),
    (errors.UnsupportedMediaType, 415),
    (errors.UnreadableData, 422),
    (errors.FetchError, 502),
    (errors.Busy, 503),
)
RETRY_AFTER_SECONDS = 1  # what a 503 BUSY asks the client to wait
PROBLEM_MEDIA_TYPE = "application/problem+json"


def http_status(exc: errors.LoadbayError) -> int:
    """The HTTP status for a loadbay error (the most specific class wins)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def problem(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": code.replace("_", " ").capitalize(), "status": status}
    body |= {"code": code, "detail": detail} | extra
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def on_error(app: FastAPI, kind: type[E], handler: Handler[E]) -> None:
    """Answer exceptions of `kind` (and its subclasses) raised in `app` with `handler`."""

    async def handle(request: Request, exc: Exception) -> Response:
        return await handler(request, cast(E, exc))  # Starlette calls it only for a `kind`

    app.add_exception_handler(kind, handle)


def install_error_handlers(
    app: FastAPI,
    *,
    loadbay_error: Handler[errors.LoadbayError],
    http_error: Handler[StarletteHTTPException],
    invalid_request: Handler[RequestValidationError] | None = None,
) -> None:
    """How one API (the native one or a profile) answers errors, in its own format: loadbay's
    errors, HTTP errors raised by routing (404, 405) and requests its models refuse."""
    on_error(app, errors.LoadbayError, loadbay_error)
    on_error(app, StarletteHTTPException, http_error)
    on_error(app, DBAPIError, _busy_or_raise(loadbay_error))
    if invalid_request is not None:
        on_error(app, RequestValidationError, invalid_request)


def _busy_or_raise(loadbay_error: Handler[errors.LoadbayError]) -> Handler[DBAPIError]:
    """A database error that trying again may cure (a lock waited for too long, a lost
    connection) is the API's own 503 Busy, with Retry-After; any other is a server error."""

    async def handle(request: Request, exc: DBAPIError) -> Response:
        if not is_interruption(exc):
            raise exc
        response = await loadbay_error(request, errors.Busy())
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    return handle


def install_problem_handlers(app: FastAPI) -> None:
    """The native API's errors: application/problem+json."""
    install_error_handlers(
        app, loadbay_error=_loadbay_error, http_error=_http_error, invalid_request=_validation_error
    )


async def _loadbay_error(_request: Request, exc: errors.LoadbayError) -> JSONResponse:
    return problem(http_status(exc), exc.code, exc.message)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = [
        {"field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), "message": e["msg"]}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return problem(400, "INVALID_INPUT", detail, errors=fields)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # 400 is a body the JSON parser gave up on (nested too deeply, for example)
    codes = {400: "INVALID_INPUT", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    code = codes.get(exc.status_code, "HTTP_ERROR")
    response = problem(exc.status_code, code, str(exc.detail))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        response.headers["Allow"] = _allowed_methods(request)
    return response


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """A 405's `Allow` (RFC 9110 requires one): each method some route of the app takes at
    the request's path. (Starlette's names only the first such route's: `POST` alone for
    /v1/batches, which takes GET too.)"""
    routes = request.app.router.routes

    def taken(method: str) -> bool:
        scope = dict(request.scope, method=method)
        return any(route.matches(scope)[0] == Match.FULL for route in routes)

    return ", ".join(method for method in _METHODS if taken(method))


# The OpenAPI document ------------------------------------------------------------------


class FieldProblem(BaseModel):
    field: str = Field(
        description="The parameter or body field, e.g. `page_size` or `items.0`; `body`: the body as a "
        "whole (one that is not JSON, say)"
    )
    message: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details with loadbay's stable `code`."""

    type: str = Field(default="about:blank", examples=["about:blank"])
    title: str = Field(description="`code` in words", examples=["Batch not open"])
    status: int = Field(description="The HTTP status", examples=[409])
    code: str = Field(description="A stable UPPER_SNAKE word to act on", examples=["BATCH_NOT_OPEN"])
    detail: str = Field(
        description="What went wrong and what to do",
        examples=["batch 42 is queued; data can only be added while it is open"],
    )
    errors: list[FieldProblem] | None = Field(
        default=None, description="On a 400 `INVALID_INPUT`: each parameter or field refused, and why"
    )


_MEANINGS = {
    400: "The request is malformed: `code` says how (`INVALID_INPUT`: `errors` names each field)",
    401: "No API key, or one this server does not know (`UNAUTHORIZED`)",
    403: "Refused for this caller",
    404: "No such batch for this API key (`NOT_FOUND`; another account's batch is not found either)",
    409: "The batch's state refuses this request: `code` says why",
    413: "The body is over this server's limit (`PAYLOAD_TOO_LARGE`)",
    415: "A Content-Type loadbay does not read here (`UNSUPPORTED_MEDIA_TYPE`)",
    503: "The database is busy (`BUSY`): try again after `Retry-After` seconds",
}


def problem_responses(
    *statuses: int, said: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route that answers `statuses` as problems (`said`: what a status
    means for this route, instead of the usual meaning)."""
    meanings = _MEANINGS | dict(said or {})
    return {
        status: {
            "description": meanings[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def document_problems(app: FastAPI) -> None:
    """Make `app`'s OpenAPI document say how its errors are answered: the Problem schema its
    `problem_responses` name, and no 422 "Validation Error" (FastAPI's default answer to a
    request its models refuse; this API's is a 400 problem)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        made = app.openapi_schema is None
        document = generate()  # (made once, then kept by FastAPI: completed in place once)
        if made:
            _with_problems(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's way to extend its document


def _with_problems(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas |= problem_schema.pop("$defs", {}) | {"Problem": problem_schema}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "HTTPValidationError" in str(responses.get("422")):
                del responses["422"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
