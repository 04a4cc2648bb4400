"""Fusebill BulkApi profile (seed 001): bulk write-off and payment jobs, two-phase.

A job is a loadbay batch with `process: manual`: creating it validates it
(`Validated` / `ValidatedWithErrors`), `POST /v1/BulkApi/Process` applies it and
answers the job once applied (as the seed's example answer does), waiting at most
LOADBAY_FUSEBILL_PROCESS_WAIT seconds. As on Fusebill's ASP.NET servers, paths, query
names and JSON property names match in any letter case.
This module only translates Fusebill's JSON to the core and back.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from loadbay import errors
from loadbay.core.service import BatchService
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Account, Batch, NewBatch
from loadbay.domain.records import RecordView
from loadbay.http.jsonbody import json_text, parse_json
from loadbay.http.problems import http_status, install_error_handlers, on_error
from loadbay.profiles.common import (
    account_of,
    allowed_methods,
    any_case_paths,
    profile_app,
    service_of,
    whole_number,
)
from loadbay.readers import unstorable

__all__ = ["PREFIX", "build"]

PREFIX = "/compat/fusebill"
UPLOAD_TYPES = {"BulkWriteOff": "billing.write_off", "BulkPayment": "billing.payment"}
JOB_TYPES = {v: k for k, v in UPLOAD_TYPES.items()}
MAX_ITEMS = 1000
_PAYMENT_FIELDS = {
    "customerId": "customer_id",
    "amount": "amount",
    "reference": "reference",
    "paymentDate": "payment_date",
    "method": "method",
}
_CREATE_FIELDS = ("accountUploadType", "data", "reference", "fileName")
_BARE_KEY = re.compile(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:")
_RECORD_STATUS = {
    "valid": "PassedValidation",
    "invalid": "FailedValidation",
    "succeeded": "Processed",
    "failed": "FailedProcessing",
    "unprocessed": "FailedProcessing",
}


class FusebillError(Exception):
    """An answer in Fusebill's error body."""

    def __init__(self, status: int, message: str, key: str = "Api Error") -> None:
        super().__init__(message)
        self.status, self.message, self.key = status, message, key


def build(service: BatchService) -> FastAPI:
    app = profile_app("Fusebill", service, key_style="`Authorization: Basic {APIKey}`")
    on_error(app, FusebillError, _fusebill_error)
    install_error_handlers(app, loadbay_error=_loadbay_error, http_error=_http_error)
    app.add_api_route("/v1/BulkApi", create_job, methods=["POST"])
    app.add_api_route("/v1/BulkApi/Process", process_job, methods=["POST"])
    app.add_api_route("/v1/BulkApi/{job_id:fusebill_upload_id}", read_job, methods=["GET"])
    app.add_api_route("/v1/BulkApi/{job_id:fusebill_upload_id}/Cancel", cancel_job, methods=["POST"])
    any_case_paths(app, app.router.routes)
    return app


class _UploadId(StringConvertor):
    """An upload id in a path: any segment but `Process`, the literal segment of the Process
    call, which outranks a parameter as it does in ASP.NET's routing. So `/v1/BulkApi/Process`
    is the Process call's path whatever the method: GET is 405 (Allow: POST), not a job."""

    regex = "(?!Process$)[^/]+"


register_url_convertor("fusebill_upload_id", _UploadId())


# requests -------------------------------------------------------------------


async def _body(request: Request) -> Any:
    """The JSON body; the seed's own curl sends `{id:123456}` (a bare key), so that is read too.
    It is read by the one reader of JSON bodies (`parse_json`): its bytes UTF-8 whatever its
    Content-Type says, nested at most 64 levels, no NaN; its errors name the line and column
    of the body as sent."""
    try:
        text = json_text(await request.body())
    except ValueError as exc:
        raise _not_json(exc) from None
    if not text.strip():
        raise FusebillError(400, "The request body is empty.")
    try:
        return parse_json(text)
    except ValueError as exc:
        first = exc
    try:
        return parse_json(_BARE_KEY.sub(r'\1"\2":', text))
    except ValueError:
        raise _not_json(first) from None


def _not_json(exc: ValueError) -> FusebillError:
    return FusebillError(400, f"The request body is {exc}.")


async def create_job(request: Request) -> JSONResponse:
    """POST /v1/BulkApi: create a job from {accountUploadType, data}; validation starts at once."""
    body = await _body(request)
    return await run_in_threadpool(_create_job, service_of(request), account_of(request), body)


def _create_job(service: BatchService, account: Account, body: Any) -> JSONResponse:
    body = _named(body, _CREATE_FIELDS)
    upload_type, items = _job_items(body)
    batch_type = UPLOAD_TYPES[upload_type]
    spec = NewBatch(
        type=batch_type,
        process="manual",
        description=_text(body, "reference", f"{upload_type} via API"),
        options={"fileName": _text(body, "fileName", f"{upload_type}-{datetime.now():%Y%m%d}.json")},
        exclusive_of=frozenset(UPLOAD_TYPES.values()),
    )
    try:
        batch, _created = service.create(account, spec, items=items, submit=True)
    except errors.BatchInProgress as busy:
        message = f"Cannot create a new Upload while Upload {busy.batch_id} is still in progress."
        raise FusebillError(400, message) from None
    return JSONResponse(job(service, account, batch))


def _named(body: Any, names: tuple[str, ...]) -> Any:
    """A body object with its property names spelt as `names` spells them: Json.NET binds
    them in any letter case (`{"Id": 1}`, `{"ACCOUNTUPLOADTYPE": …}`); of two spellings of one
    name the later wins, as it does there. Other bodies as they are."""
    if not isinstance(body, dict):
        return body
    spelling = {name.lower(): name for name in names}
    return {spelling.get(str(key).lower(), str(key)): value for key, value in body.items()}


def _text(body: dict[str, Any], name: str, default: str) -> str:
    """The body's text field `name` as sent (`default` when it is left out or null); a number is
    taken as its JSON text (`"reference": 0` is "0"), as Json.NET reads one into a string; a
    boolean, an array or an object is refused, and so is text that cannot be stored (a NUL, an
    unpaired surrogate)."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FusebillError(400, f"{name} must be text, not {_kind(value)}.")
    text = value if isinstance(value, str) else json.dumps(value)
    if (found := unstorable(text)) is not None:
        raise FusebillError(400, f"{name} must not hold {found}.")
    return text


def _kind(value: bool | list[Any] | dict[str, Any]) -> str:
    """What a JSON value that is no text is, for a message."""
    return "a boolean" if isinstance(value, bool) else "an array" if isinstance(value, list) else "an object"


def _job_items(body: Any) -> tuple[str, list[Any]]:
    if not isinstance(body, dict):
        raise FusebillError(400, "The request body must be a JSON object.")
    upload_type = body.get("accountUploadType")
    if not isinstance(upload_type, str) or upload_type not in UPLOAD_TYPES:
        allowed = ", ".join(UPLOAD_TYPES)
        raise FusebillError(400, f"accountUploadType must be one of {allowed}; got {upload_type!r}.")
    data = body.get("data")
    if not isinstance(data, list) or not data:
        raise FusebillError(400, "data must be a non-empty list.")
    if len(data) > MAX_ITEMS:
        raise FusebillError(400, f"data has {len(data)} items; a job takes at most {MAX_ITEMS}.")
    to_item = _write_off_item if upload_type == "BulkWriteOff" else _payment_item
    return upload_type, [to_item(value) for value in data]


def _write_off_item(value: Any) -> dict[str, Any]:
    """BulkWriteOff data are invoice ids: each invoice's whole open balance is written off."""
    return {"invoice_id": value}


def _payment_item(value: Any) -> Any:
    if not isinstance(value, dict):
        return value  # refused as a record: "item 2 is not an object" (INVALID_RECORD)
    fields = {name.lower(): column for name, column in _PAYMENT_FIELDS.items()}
    return {fields.get(str(key).lower(), str(key)): item for key, item in value.items()}


async def process_job(request: Request) -> JSONResponse:
    """POST /v1/BulkApi/Process with {id}: apply a validated job; the answer is the job once
    applied (`Processed` / `ProcessedWithErrors`, as in the seed), or, when applying takes
    longer than LOADBAY_FUSEBILL_PROCESS_WAIT seconds, as it stands then (`Processing`)."""
    body = await _body(request)
    service, account = service_of(request), account_of(request)
    batch = await run_in_threadpool(_process_job, service, account, body)
    batch = await _applied(service, account, batch, service.rt.settings.fusebill_process_wait)
    return await run_in_threadpool(lambda: JSONResponse(job(service, account, batch)))


async def _applied(service: BatchService, account: Account, batch: Batch, wait: float) -> Batch:
    """The job once it is no longer `Processing`, or as it stands after `wait` seconds;
    polled on the event loop's clock, each read in a thread."""
    deadline = time.monotonic() + wait
    pause = 0.02
    while batch.status == Status.PROCESSING and (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, 0.25)
        batch = await run_in_threadpool(service.get, account, batch.id, types=JOB_TYPES)
    return batch


def _process_job(service: BatchService, account: Account, body: Any) -> Batch:
    body = _named(body, ("id",))
    job_id = _upload_id(body.get("id") if isinstance(body, dict) else None)
    batch = _find(service, account, job_id)
    refused = f"Cannot process Upload {job_id} that is not in status Validated or ValidatedWIthErrors"
    if batch.status != Status.VALIDATED:
        raise FusebillError(400, refused)
    try:
        return service.process(account, batch.id)
    except errors.InvalidTransition:  # another Process of this job won the race
        raise FusebillError(400, refused) from None


def _upload_id(value: Any) -> int:
    """Process's `id`: a whole number, as Json.NET reads one into a long (`6`, and `6.0` or
    `6e0` too), or a string of ASCII digits (`"6"`), which ASP.NET's model binding reads so
    too; a boolean, a fraction (which Json.NET would round) or any other text is refused. A
    number past any id is not found."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        number = whole_number(value)
        if number is None:
            raise FusebillError(404, f"Upload {_shown(value)} was not found.")
        return number
    if not isinstance(value, int) or isinstance(value, bool):
        raise FusebillError(400, "id is required and must be a whole number.")
    return value


def read_job(job_id: str, request: Request) -> JSONResponse:
    """GET /v1/BulkApi/{id}[?view=Full]: a job in any status; Full adds its records. The
    query's name and value match in any letter case, as ASP.NET binds them."""
    service, account = service_of(request), account_of(request)
    batch = _find(service, account, _job_number(job_id))
    answer = job(service, account, batch)
    views = [v for k, v in request.query_params.multi_items() if k.lower() == "view"]
    if views and views[-1].strip().lower() == "full":
        answer["records"] = [
            _record(batch, view_) for view_ in service.records(account, batch.id, 0, MAX_ITEMS)
        ]
    return JSONResponse(answer)


def cancel_job(job_id: str, request: Request) -> JSONResponse:
    """POST /v1/BulkApi/{id}/Cancel: every incomplete record fails; the account is free again."""
    service, account = service_of(request), account_of(request)
    batch = _find(service, account, _job_number(job_id))
    if batch.final:
        raise FusebillError(400, f"Cannot cancel Upload {batch.id} that is already {job_status(batch)}")
    return JSONResponse(job(service, account, service.cancel(account, batch.id)))


def _job_number(text: str) -> int:
    """The upload id in a path: ASCII digits (not `²` or `١`); a number past any id is not found."""
    number = whole_number(text)
    if number is not None:
        return number
    if text.isascii() and text.isdigit():
        raise FusebillError(404, f"Upload {_shown(text)} was not found.")
    raise FusebillError(400, f"The upload id {_shown(text)!r} is not a number.")


def _shown(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[:most] + "…"


def _find(service: BatchService, account: Account, job_id: int) -> Batch:
    try:
        return service.get(account, job_id, types=JOB_TYPES)
    except errors.NotFound:
        raise FusebillError(404, f"Upload {_shown(str(job_id))} was not found.") from None


# answers --------------------------------------------------------------------


def job_status(batch: Batch) -> str:
    """Fusebill's word for where the job stands."""
    counts = batch.counts
    if batch.status in (Status.OPEN,):
        return "NotStarted"
    if batch.status in (Status.QUEUED, Status.VALIDATING):
        return "Validating"
    if batch.status == Status.VALIDATED:
        return "ValidatedWithErrors" if counts.invalid else "Validated"
    if batch.status == Status.PROCESSING:
        return "Processing"
    if batch.status == Status.COMPLETED:
        troubled = counts.invalid + counts.failed + counts.unprocessed
        return "ProcessedWithErrors" if troubled else "Processed"
    return "Failed"


def job(service: BatchService, account: Account, batch: Batch) -> dict[str, Any]:
    """The job object, with the seed's fields."""
    counts = batch.counts
    line = service.timeline(account, batch)
    processed = batch.status == Status.COMPLETED
    return {
        "accountId": account.id,
        "type": JOB_TYPES[batch.type],
        "status": job_status(batch),
        "createdTimestamp": _stamp(batch.created_at),
        "completedTimestamp": _stamp(line.chunked_at),
        "totalRecords": counts.total,
        "successfulRecords": counts.valid,
        "failedRecords": counts.invalid,
        "totalProcessedRecords": counts.succeeded + counts.failed + counts.unprocessed,
        "processedRecords": counts.succeeded,
        "failedProcessedRecords": counts.failed + counts.unprocessed,
        "importingTimestamp": _stamp(line.applying_at),
        "processedTimestamp": _stamp(batch.finished_at) if processed else None,
        "fileName": batch.options.get("fileName"),
        "reference": batch.description,
        "relatedId": None,
        "internalAutomatedFlag": False,
        "modifiedTimestamp": _stamp(batch.updated_at),
        "id": batch.id,
        "uri": None,
    }


def _record(batch: Batch, view: RecordView) -> dict[str, Any]:
    status = _RECORD_STATUS[view.status]
    details: str | None = "; ".join(e.message for e in view.errors) or None
    if view.status == "unprocessed" and batch.status == Status.CANCELLED:
        details = "Manually marked as Failed."
    entity = whole_number(view.entity_id) if view.entity_id else None
    return {
        "accountUploadId": batch.id,
        "status": status,
        "data": json.dumps(view.raw, default=str),
        "details": details,
        "createdEntityId": entity,
        "id": view.index + 1,
        "uri": None,
    }


def _stamp(moment: datetime | None) -> str | None:
    """Fusebill's timestamps as the seed writes them (.NET's format): ISO 8601 in UTC without
    an offset, to the millisecond with trailing zeros dropped: `2020-12-07T14:26:21`,
    `2020-12-07T14:51:04.02`, `2020-12-07T14:51:05.097`."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    text = utc.replace(tzinfo=None).isoformat(timespec="milliseconds")
    return text.rstrip("0").removesuffix(".")


# errors ---------------------------------------------------------------------


def _error_body(status: int, message: str, key: str = "Api Error") -> JSONResponse:
    body = {"ErrorId": 0, "HttpStatusCode": status, "Errors": [{"Key": key, "Value": message}]}
    return JSONResponse(body, status_code=status)


async def _fusebill_error(_request: Request, exc: FusebillError) -> JSONResponse:
    return _error_body(exc.status, exc.message, exc.key)


async def _loadbay_error(_request: Request, exc: errors.LoadbayError) -> JSONResponse:
    return _error_body(http_status(exc), exc.message)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    answer = _error_body(exc.status_code, str(exc.detail))
    if exc.status_code == 405:  # every method the path takes (HTTP requires the header)
        answer.headers["Allow"] = allowed_methods(request)
    return answer
