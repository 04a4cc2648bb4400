"""Centrapay's Batches API (seed 002) over the core, under /compat/centrapay.

    POST /api/batches        {type, url, accountId, test} → the Batch model
    GET  /api/batches/{id}   the Batch model; `id` is the core batch's opaque ref

A path may end in a slash and be spelt in any letter case (`any_case_paths`), as
Fusebill's and Alliant's may: `POST /api/batches/` is the create, not a redirect.

The server fetches `url` (the core's SSRF-guarded fetcher) and loads the file as
assets.external_asset or assets.terminal_status. Centrapay's statuses are read
from the core's: open/queued → created; validating → created, then copied once
the file is stored (the core's timeline: a new attempt copies it again); validated or
processing → chunked; completed → complete; error (and cancelled, cleared) →
error. `count` is records counted, and `totalCount` the same number (the seed's model
table names `totalCount`, its example bodies `count`: both are sent); `errorCount` is
invalid plus failed records; all three as strings (BigNumber); `errors` lists record
errors by their code word.

Errors are JSON `{"code": "…", "message": "…"}`; a `test` flag that differs from
the key's account is 403 `LIVENESS_MISSMATCH` (the seed's spelling).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from loadbay.core.service import BatchService
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Account, Batch, NewBatch
from loadbay.errors import LoadbayError, NotFound, TestModeMismatch, UnknownType
from loadbay.http.bodies import LimitedRoute
from loadbay.http.jsonroute import check_json_media_type
from loadbay.http.problems import http_status, install_error_handlers
from loadbay.profiles.common import UnknownKey, any_case_paths, caller, profile_app, the_service
from loadbay.readers import unstorable

__all__ = ["PREFIX", "TYPES", "build"]

PREFIX = "/compat/centrapay"

TYPES = {
    "farmlands-external-asset": "assets.external_asset",
    "verifone-terminal-status": "assets.terminal_status",
}
_NAMES = {core: name for name, core in TYPES.items()}

_ACCOUNT_OPTION = "centrapay_account_id"  # where the batch keeps the accountId it was given
_ERRORS_SHOWN = 1000  # record errors listed in a Batch; errorCount counts them all

_STATUSES = {
    Status.OPEN: "created",
    Status.QUEUED: "created",
    Status.VALIDATED: "chunked",
    Status.PROCESSING: "chunked",
    Status.COMPLETED: "complete",
}
_FAILED = frozenset({Status.ERROR, Status.CANCELLED, Status.CLEARED})


# wire models ------------------------------------------------------------------


class CreateBatch(BaseModel):
    """The body of `POST /api/batches`."""

    type: str = Field(description="farmlands-external-asset or verifone-terminal-status")
    url: str = Field(min_length=1, description="The http(s) URL of the CSV or JSON Lines file")
    account_id: str = Field(alias="accountId", min_length=1, max_length=200)
    test: StrictBool | None = Field(
        default=None, description="true or false; must match the API key's account"
    )

    @field_validator("type", "url", "account_id")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


class ErrorOut(BaseModel):
    external_id: str | None = Field(default=None, serialization_alias="externalId")
    index: str | None = None
    message: str


class BatchOut(BaseModel):
    id: str
    account_id: str | None = Field(default=None, serialization_alias="accountId")
    status: str
    type: str
    url: str | None
    test: bool
    count: str
    total_count: str = Field(serialization_alias="totalCount")  # the model table's name of `count`
    error_count: str = Field(serialization_alias="errorCount")
    errors: list[ErrorOut]


# routes ---------------------------------------------------------------------------


Service = Annotated[BatchService, Depends(the_service)]
Caller = Annotated[Account, Depends(caller)]

# (strict_content_type: a body with no Content-Type is read as JSON, as the native API reads it)
router = APIRouter(tags=["centrapay"], route_class=LimitedRoute, strict_content_type=False)


def _sent_as_json(request: Request) -> None:
    """A body sent as anything but JSON in UTF-8 (`text/plain`, a form) is 415, as the native
    API and the Alliant profile answer it, where FastAPI read it as no object at all."""
    check_json_media_type(request.headers.get("content-type"))


@router.post(
    "/api/batches",
    response_model=BatchOut,
    response_model_exclude_none=True,
    dependencies=[Depends(_sent_as_json)],
)
def create_batch(body: CreateBatch, service: Service, account: Caller) -> BatchOut:
    """Create a batch that loads the file at `url`; it starts at once."""
    spec = NewBatch(
        type=_core_type(body.type),
        test=body.test,
        source_url=body.url,
        options={_ACCOUNT_OPTION: body.account_id},
    )
    batch, _ = service.create(account, spec)
    return _render(service, account, batch)


@router.get("/api/batches/{batch_id}", response_model=BatchOut, response_model_exclude_none=True)
def get_batch(batch_id: str, service: Service, account: Caller) -> BatchOut:
    return _render(service, account, _find(service, account, batch_id))


def _core_type(name: str) -> str:
    if name not in TYPES:
        raise UnknownType(f"unknown batch type {name!r}; the types are {', '.join(TYPES)}")
    return TYPES[name]


def _find(service: BatchService, account: Account, ref: str) -> Batch:
    """The account's Centrapay batch with this id (a batch of another type is not one, and no
    batch has an id that text cannot hold: a NUL, an unpaired surrogate)."""
    if unstorable(ref) is not None:
        raise NotFound(f"batch {ref!r} not found")
    return service.get_by_ref(account, ref, types=_NAMES)


# rendering ------------------------------------------------------------------------


def _render(service: BatchService, account: Account, batch: Batch) -> BatchOut:
    account_id = batch.options.get(_ACCOUNT_OPTION)
    return BatchOut(
        id=batch.ref,
        account_id=None if account_id is None else str(account_id),
        status=_status(service, account, batch),
        type=_NAMES[batch.type],
        url=batch.source_url,
        test=batch.test,
        count=str(batch.counts.total),
        total_count=str(batch.counts.total),
        error_count=str(_error_count(batch)),
        errors=_errors(service, account, batch),
    )


def _status(service: BatchService, account: Account, batch: Batch) -> str:
    if batch.status == Status.VALIDATING:
        return "copied" if service.timeline(account, batch).file_copied else "created"
    return _STATUSES.get(batch.status, "error")


def _error_count(batch: Batch) -> int:
    failed = 1 if batch.status in _FAILED else 0
    return batch.counts.invalid + batch.counts.failed + failed


def _errors(service: BatchService, account: Account, batch: Batch) -> list[ErrorOut]:
    if batch.status in _FAILED:
        return [ErrorOut(message=_failure(batch))]
    if not batch.counts.invalid + batch.counts.failed:
        return []
    rows = service.errors(account, batch.id, None, _ERRORS_SHOWN)
    return [ErrorOut(message=r.code, external_id=r.external_id, index=str(r.record_index)) for r in rows]


def _failure(batch: Batch) -> str:
    if batch.status == Status.ERROR:
        return f"{batch.error_code}: {batch.error_message}"
    return f"the batch was {batch.status}"


# errors ---------------------------------------------------------------------------


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


async def _loadbay_error(_request: Request, exc: LoadbayError) -> JSONResponse:
    status = 403 if isinstance(exc, UnknownKey) else http_status(exc)
    code = "LIVENESS_MISSMATCH" if isinstance(exc, TestModeMismatch) else exc.code
    return _error(status, code, exc.message)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
    return _error(400, "INVALID_REQUEST", "; ".join(problems))


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # 400 is a body the JSON parser gave up on (nested too deeply, not UTF-8)
    codes = {400: "INVALID_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    code = codes.get(exc.status_code, "HTTP_ERROR")
    return _error(exc.status_code, code, str(exc.detail), exc.headers)  # a 405's Allow


def build(service: BatchService) -> FastAPI:
    app = profile_app("Centrapay", service, key_style="`X-Api-Key: KEY`", authenticate=caller)
    app.include_router(router)
    install_error_handlers(
        app, loadbay_error=_loadbay_error, http_error=_http_error, invalid_request=_validation_error
    )
    any_case_paths(app, router.routes)  # `…/batches/` is `…/batches`, as on the other profiles
    return app
