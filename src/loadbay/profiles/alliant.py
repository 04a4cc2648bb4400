"""Alliant's Import UserX Batch API (seed 003) over the core, under /compat/alliant.

    POST  /api/Import/User{X}s/Batch[?Submit=true]          create (+ a first page) → 201
    PATCH /api/Import/User{X}s/Batch/{batchId}[?Submit=true] a page {pageNumber, items}, and/or submit
    GET   /api/Import/User{X}s/Batch/{batchId}[?pageNumber=N] the read model, with page N's items
    POST  /api/Import/User{X}s/Batch/{batchId}/clear         clear the staged items

X is the dimension, 1-9 (the batch type `catalog.userX`); a batch is found only
under its own dimension. As on Alliant's ASP.NET server, the paths match in any
letter case (`/api/import/user1s/batch/7/CLEAR`), and so do query and JSON property
names. `totalItems` is the number of items announced: a page may not reach beyond
it, but a batch may be submitted with fewer (the seed's own example creates a batch
of `totalItems: 2` and submits it with one page of one item). Every answer is the
envelope `{result, errors, warnings, hasErrors, hasWarnings}`; errors and warnings
are objects `{code, message}`, with `field`, and for an item's error `itemId` and
`index` (its 0-based position across the pages). A refused request has `result:
null`. The read model adds `status` (the core's: open, queued, validating,
processing, completed, error, cleared), `outcome`, `succeededItems` and
`failedItems` to the seed's fields, and lists the batch's first 1,000 item errors
(more: GET /v1/batches/{id}/errors).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictInt, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from starlette.exceptions import HTTPException as StarletteHTTPException

from loadbay.core.intake import MAX_PAGE
from loadbay.core.service import BatchService
from loadbay.core.types import field_errors
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Account, Batch, ErrorRow, NewBatch
from loadbay.errors import (
    Conflict,
    InvalidInput,
    LoadbayError,
    NotFound,
    UnsupportedMediaType,
)
from loadbay.http.bodies import LimitedRoute
from loadbay.http.jsonbody import parse_json
from loadbay.http.problems import http_status, install_error_handlers
from loadbay.profiles.common import (
    UnknownKey,
    allowed_methods,
    any_case_paths,
    caller,
    profile_app,
    the_service,
    whole_number,
)
from loadbay.readers import unstorable
from loadbay.types.catalog import DIMENSIONS, type_name

__all__ = ["PREFIX", "build"]

PREFIX = "/compat/alliant"

# The ids in the path are text, read by _type and _batch_id: an int converter would turn
# 5,000 digits into a ValueError before any handler ran.
_BATCHES = "/api/Import/User{dimension}s/Batch"
_BATCH = _BATCHES + "/{batch_id}"
_FILE_NAME = "importFileName"  # the batch option that keeps the import file name
_TOTAL = "totalItems"  # the batch option that keeps the number of items announced
_ERRORS_SHOWN = 1000
_INT32 = 2**31 - 1
_MAX_DEPTH = 64  # how deep a body may nest (an item needs about 8 levels, its ud values up to 32 more)
_BATCH_IDS = 2**63  # batch ids are below this (a BIGINT)
_JSON_TYPES = ("application/json", "text/json")
_GUIDS = uuid.UUID("6f1d3a52-8d0e-4b8e-9a51-3c1f0f7e2a10")  # namespace of the jobQueueGuids


def build(service: BatchService) -> FastAPI:
    app = profile_app("Alliant", service, key_style="`Authorization: Bearer KEY`", authenticate=caller)
    app.include_router(router)
    install_error_handlers(
        app, loadbay_error=_loadbay_error, http_error=_http_error, invalid_request=_validation_error
    )
    app.add_exception_handler(Exception, _server_error)
    any_case_paths(app, router.routes)
    return app


# wire models ------------------------------------------------------------------


def _storable(value: str | None) -> str | None:
    if value is not None and (found := unstorable(value)) is not None:
        raise ValueError(f"must not hold {found}")
    return value


class CreateBody(BaseModel):
    """The body of the create request (unknown keys are ignored)."""

    import_file_name: str = Field(alias="importFileName", min_length=1, max_length=255)
    description: str | None = None
    page_size: StrictInt = Field(alias="pageSize", ge=1, le=_INT32)
    total_items: StrictInt = Field(alias="totalItems", ge=0, le=_INT32)
    page_number: StrictInt = Field(default=0, alias="pageNumber", ge=0, le=_INT32)
    items: list[Any] | None = None

    @field_validator("import_file_name", "description")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _storable(value)


class PageBody(BaseModel):
    """The body of a PATCH: a page, or nothing (`{}`) when it only submits."""

    page_number: StrictInt | None = Field(default=None, alias="pageNumber", ge=0, le=_INT32)
    items: list[Any] | None = None

    @model_validator(mode="after")
    def _whole(self) -> PageBody:
        if (self.page_number is None) != (self.items is None):
            raise ValueError("a page has both pageNumber and items")
        return self


# request parts ----------------------------------------------------------------------


def _type(dimension: str) -> str:
    """The batch type of dimension X (NotFound unless X is 1-9)."""
    number = whole_number(dimension, _INT32 + 1)
    if number is None or number not in DIMENSIONS:
        raise NotFound(f"there is no User{_shown(dimension)}s import; dimensions are 1 to 9")
    return type_name(number)


def _batch_id(batch_id: str) -> int:
    """The batch id in the path (NotFound unless a whole number that can be an id)."""
    number = whole_number(batch_id, _BATCH_IDS)
    if number is None:
        raise NotFound(f"batch {_shown(batch_id)} not found")
    return number


def _shown(text: str, most: int = 40) -> str:
    """`text` as an error message quotes it: at most `most` characters."""
    return text if len(text) <= most else text[:most] + "…"


def _submit(request: Request) -> bool:
    """`?Submit=true` (the name in any case, as ASP.NET binds it)."""
    given = _query(request, "Submit")
    value = given.strip().lower() if given is not None else "false"
    if value not in ("true", "false"):
        raise _bad_query("Submit", f"Submit is true or false, not {given!r}")
    return value == "true"


def _query(request: Request, name: str) -> str | None:
    """The query parameter `name` matched in any letter case, as ASP.NET binds it (the last
    one given), or None."""
    values = [v for k, v in request.query_params.multi_items() if k.lower() == name.lower()]
    return values[-1] if values else None


async def _json_body(request: Request) -> Any:
    """The JSON body, or None when there is none (415 unless JSON, 400 when unreadable). The
    route read it already, within LOADBAY_MAX_BODY_BYTES (`LimitedRoute`)."""
    body = await request.body()
    if not body.strip():
        return None
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in _JSON_TYPES and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type {media_type or 'none'!r}: this API takes application/json")
    try:
        return parse_json(body, max_depth=_MAX_DEPTH)
    except ValueError as exc:
        raise InvalidInput(f"the body is {exc}", code="INVALID_JSON") from None


def _parsed(model: type[CreateBody] | type[PageBody], body: Any) -> Any:
    try:
        return model.model_validate(_named(model, body))
    except ValidationError as exc:
        raise RequestValidationError([e | {"loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _named(model: type[CreateBody] | type[PageBody], body: Any) -> Any:
    """The body with its property names spelt as the model spells them: ASP.NET binds JSON
    properties in any letter case (`PageSize`, `pagesize`), so a client may send them so. Of
    two spellings of one name the later wins, as it does there."""
    if not isinstance(body, dict):
        return body
    spelt = [field.alias or name for name, field in model.model_fields.items()]
    names = {name.lower(): name for name in spelt}
    named: dict[str, Any] = {}
    for key, value in body.items():
        named[names.get(str(key).lower(), str(key))] = value
    return named


def _page_number(request: Request) -> int:
    """`?pageNumber=` (the name in any case, as ASP.NET binds it): 0 when absent."""
    given = _query(request, "pageNumber")
    if given is None:
        return 0
    number = whole_number(given.strip(), _INT32 + 1)
    if number is None:
        shown = _shown(given)
        raise _bad_query("pageNumber", f"pageNumber is a whole number from 0 to {_INT32}, not {shown!r}")
    return number


def _bad_query(name: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", name), "msg": message, "input": None}]
    )


Service = Annotated[BatchService, Depends(the_service)]
Caller = Annotated[Account, Depends(caller)]
TypeName = Annotated[str, Depends(_type)]
BatchId = Annotated[int, Depends(_batch_id)]
Submit = Annotated[bool, Depends(_submit)]
Body = Annotated[Any, Depends(_json_body)]
PageNumber = Annotated[int, Depends(_page_number)]

router = APIRouter(tags=["alliant"], route_class=LimitedRoute)


# routes -------------------------------------------------------------------------------


@router.post(_BATCHES, status_code=201)
def create_batch(
    account: Caller, batch_type: TypeName, submit: Submit, body: Body, service: Service
) -> JSONResponse:
    """Create an Import UserX Batch, with its first page and submitted when asked."""
    parsed: CreateBody = _parsed(CreateBody, body if body is not None else {})
    if parsed.items is not None:
        _within_total(parsed.page_number, parsed.items, parsed.page_size, parsed.total_items)
    # totalItems is not the core's total_items (a count submit requires): see the module's doc
    spec = NewBatch(
        type=batch_type,
        description=parsed.description,
        options={_FILE_NAME: parsed.import_file_name, _TOTAL: parsed.total_items},
        page_size=parsed.page_size,
    )
    with _items_needed(None):
        batch, _ = service.create(account, spec, items=parsed.items, page=parsed.page_number, submit=submit)
    return _envelope({"batchId": batch.id, "jobQueueGuid": _guid(batch)}, status=201)


@router.patch(_BATCH)
def patch_batch(
    account: Caller, batch_id: BatchId, batch_type: TypeName, submit: Submit, body: Body, service: Service
) -> JSONResponse:
    """Send a page (the same pageNumber again replaces it) and/or submit the batch."""
    page: PageBody = _parsed(PageBody, body if body is not None else {})
    if page.items is None and not submit:
        raise InvalidInput("send a page {pageNumber, items}, ?Submit=true, or both", code="NOTHING_TO_DO")
    batch = _find(service, account, batch_type, batch_id)
    if page.items is not None and page.page_number is not None:
        total, page_size = _total(batch), batch.page_size
        if batch.status == Status.OPEN and total is not None and page_size is not None:
            _within_total(page.page_number, page.items, page_size, total)
        service.put_page(account, batch_id, page.page_number, page.items)
    if submit:
        with _items_needed(batch_id):
            service.submit(account, batch_id)
    return _envelope({})


@router.get(_BATCH)
def read_batch(
    account: Caller,
    batch_id: BatchId,
    batch_type: TypeName,
    service: Service,
    page_number: PageNumber,
) -> JSONResponse:
    """The batch, page `pageNumber`'s items (default 0) and, once validated, its item errors."""
    batch = _find(service, account, batch_type, batch_id)
    items, received = service.read_page(account, batch_id, page_number)
    errors, warnings = _outcome(service, account, batch)
    return _envelope(_read_model(batch, page_number, items, received), errors, warnings)


@router.post(_BATCH + "/clear")
def clear_batch(account: Caller, batch_id: BatchId, batch_type: TypeName, service: Service) -> JSONResponse:
    """Remove the batch's items; it takes no more pages afterwards."""
    _find(service, account, batch_type, batch_id)
    service.clear(account, batch_id)
    return _envelope({})


def _within_total(number: int, items: list[Any], page_size: int, total: int) -> None:
    """Refuse a page reaching beyond `totalItems` (409 PAGE_BEYOND_TOTAL): page N holds items
    N×pageSize onwards, pages counted from 0 as in the seed. A page the core refuses anyway
    (too long, or a page number out of its range: 400) is left to it, so that is the answer."""
    if len(items) > page_size or not 0 <= number <= MAX_PAGE:
        return
    first = number * page_size
    if first + len(items) > total:
        raise Conflict(
            f"page {number} would hold items {first}..{first + len(items) - 1}, "
            f"beyond the batch's {total} items (totalItems)",
            code="PAGE_BEYOND_TOTAL",
        )


@contextmanager
def _items_needed(batch_id: int | None) -> Iterator[None]:
    """A submit refused for want of data (NO_DATA) said as an Alliant client can act on it: it
    sends items, never a file. `batch_id`: None for a create, which the refusal undoes."""
    try:
        yield
    except Conflict as exc:
        if exc.code != "NO_DATA":
            raise
        if batch_id is None:
            said = (
                "nothing to submit: the batch has no items; send them with the create (pageNumber "
                "and items), or create the batch, PATCH its pages, then submit; no batch was made"
            )
        else:
            said = f"batch {batch_id} has no items to submit; PATCH a page {{pageNumber, items}} first"
        raise Conflict(said, code="NO_DATA") from None


def _total(batch: Batch) -> int | None:
    """The batch's totalItems (the core's total_items for batches made before it was kept
    as an option)."""
    total = batch.options.get(_TOTAL, batch.total_items)
    return total if isinstance(total, int) else None


def _find(service: BatchService, account: Account, batch_type: str, batch_id: int) -> Batch:
    """The account's batch of this dimension (another dimension's or type's is not found)."""
    batch = service.get(account, batch_id)
    if batch.type != batch_type:
        raise NotFound(f"batch {batch_id} not found")
    return batch


# rendering ------------------------------------------------------------------------------


def _guid(batch: Batch) -> str:
    """A stable UUID for the batch's job (derived from its opaque reference)."""
    return str(uuid.uuid5(_GUIDS, batch.ref))


def _read_model(batch: Batch, page_number: int, items: list[Any], received: int) -> dict[str, Any]:
    counts = batch.counts
    return {
        "importFileName": batch.options.get(_FILE_NAME),
        "importFileSID": batch.id,
        "description": batch.description,
        "fileDownloadNumber": None,
        "pageSize": batch.page_size,
        "totalItems": _total(batch),
        "batchId": batch.id,
        "pageNumber": page_number,
        "receivedItems": received,
        "createdDateTime": batch.created_at.astimezone(UTC).strftime("%Y-%m-%d"),  # the seed's form
        "items": items,
        "status": batch.status.value,
        "outcome": batch.outcome,
        "succeededItems": counts.succeeded,
        "failedItems": counts.invalid + counts.failed + counts.unprocessed,
    }


def _outcome(service: BatchService, account: Account, batch: Batch) -> tuple[list[Any], list[Any]]:
    """Errors (the batch's own failure, then its first item errors) and warnings."""
    rows = service.errors(account, batch.id, None, _ERRORS_SHOWN + 1)
    errors = [_error(batch.error_code, batch.error_message or "")] if batch.error_code else []
    errors += [_item_error(row) for row in rows[:_ERRORS_SHOWN]]
    warnings = [_error("WARNING", text) for text in batch.warnings]
    if len(rows) > _ERRORS_SHOWN:
        more = f"only the first {_ERRORS_SHOWN} item errors are listed; /v1/batches/{batch.id}/errors has all"
        warnings.append(_error("ERRORS_TRUNCATED", more))
    return errors, warnings


def _item_error(row: ErrorRow) -> dict[str, Any]:
    error = _error(row.code, row.message, row.field)
    return error | {"itemId": row.external_id, "index": row.record_index}


def _error(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message} | ({"field": field} if field else {})


def _envelope(
    result: Mapping[str, Any] | None,
    errors: Iterable[Mapping[str, Any]] = (),
    warnings: Iterable[Mapping[str, Any]] = (),
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    errors, warnings = list(errors), list(warnings)
    body: dict[str, Any] = {"result": result, "errors": errors, "warnings": warnings}
    body |= {"hasErrors": bool(errors), "hasWarnings": bool(warnings)}
    return _Json(body, status_code=status, headers=headers)


class _Json(JSONResponse):
    """JSON in ASCII: items echo as sent, even text UTF-8 cannot encode (a lone surrogate)."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, allow_nan=False, separators=(",", ":"))
        except ValueError:  # a page stored before numbers past a float were refused (1e999)
            text = _NOT_FINITE.sub(_finite, json.dumps(content, separators=(",", ":")))
        return text.encode("ascii")


# Infinity, -Infinity and NaN where json.dumps writes them (outside strings), which no JSON
# has; written as a client sends them (1e999: a JSON number any reader takes), NaN as null
_NOT_FINITE = re.compile(r'"(?:[^"\\]++|\\.)*+"|(-?Infinity|NaN)')
_FINITE = {"Infinity": "1e999", "-Infinity": "-1e999", "NaN": "null"}


def _finite(found: re.Match[str]) -> str:
    return found.group(0) if found.group(1) is None else _FINITE[found.group(1)]


# errors as envelopes ------------------------------------------------------------------


async def _loadbay_error(_request: Request, exc: LoadbayError) -> JSONResponse:
    status = 403 if isinstance(exc, UnknownKey) else http_status(exc)
    headers = {"WWW-Authenticate": 'Bearer realm="loadbay"'} if status == 401 else None
    return _envelope(None, [_error(exc.code, exc.message)], status=status, headers=headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = field_errors(_unplaced(exc.errors()))
    return _envelope(None, [_error(e.code, e.message, e.field) for e in errors], status=400)


def _unplaced(errors: Iterable[ErrorDetails]) -> list[ErrorDetails]:
    """Errors without their place (body, query, path) at the head of the location."""
    out = []
    for error in errors:
        copy = error.copy()
        copy["loc"] = tuple(error["loc"][1:]) or tuple(error["loc"])
        out.append(copy)
    return out


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        error = _error("METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.url.path}")
        headers["Allow"] = allowed_methods(request)  # every method of the path, not the first route's
    elif exc.status_code == 404:
        error = _error("NOT_FOUND", f"no such endpoint: {request.url.path}")
    else:
        error = _error("HTTP_ERROR", str(exc.detail))
    return _envelope(None, [error], status=exc.status_code, headers=headers)


async def _server_error(_request: Request, _exc: Exception) -> JSONResponse:
    error = _error("INTERNAL_ERROR", "the server failed to answer; the failure is in its log")
    return _envelope(None, [error], status=500)
