"""The Click2Mail profile (seed 004): batches of mail jobs, XML in and out.

    POST /batches                         201 <batchjob>: a new, empty `mail.job` batch
    PUT  /batches/{id}  application/pdf   200, no body: the batch's document (its PDF)
    PUT  /batches/{id}  application/xml   200, no body: the <batch> XML, one record per <job>
    POST /batches/{id}                    200, no body: submit (batches run first in, first out)
    GET  /batches/{id}                    <batchjob>: submitted, received, hasErrors, errorMessage
    GET  /batches/{id}/details            <batchDetails>: the jobs created, refused jobs, count
    GET  /batches/{id}/tracking           <tracking>, or "Tracking data not available …"

Auth is HTTP Basic with the loadbay API key as the password (or `Basic KEY`). Any
other Content-Type on PUT is 415. Errors are
`<error><status/><code/><description/></error>`; a call out of order (the XML
before the PDF, a submit before both, a PDF after the XML or after the submit) is a
400 that says which call comes first. The rules (call order, page ranges,
addresses, test accounts never tracked) live in the core and the `mail.job` type:
this module only translates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from loadbay import errors
from loadbay.core.service import BatchService
from loadbay.domain.lifecycle import ACTIVE, FINAL, Status
from loadbay.domain.models import Account, Batch, ErrorRow, NewBatch
from loadbay.domain.text import byte_size, many
from loadbay.http.bodies import LimitedRoute, read_limited, streams_files
from loadbay.http.problems import http_status, install_error_handlers
from loadbay.http.streaming import receive
from loadbay.profiles.common import account_of, profile_app, service_of, whole_number
from loadbay.types.mail import DOCUMENT, MailJob, jobs_page
from loadbay.types.mail_tracking import TrackingEvent, tracking_page
from loadbay.xmlsafe import charset_of, children_by_name, local_name, parse_xml

__all__ = ["PREFIX", "build", "manifest_items"]

PREFIX = "/compat/click2mail"
TYPE = "mail.job"
PROLOG = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
NO_TRACKING = "Tracking data not available for this batch."
_XML_TYPES = frozenset({"application/xml", "text/xml"})
_RECEIVED = (ACTIVE | FINAL) - {Status.QUEUED}  # a final batch reads as received: no more to wait for
_ENDED = frozenset({Status.CANCELLED, Status.CLEARED})  # through the native API or the dashboard
_PAGE = 500
_SHOWN_ERRORS = 3
_ORDER = (
    "Click2Mail batches take their calls in this order: POST /batches, PUT the PDF "
    "(application/pdf), PUT the batch XML (application/xml), POST /batches/{id} to submit"
)
_HINTS = {"ATTACHMENT_MISSING": _ORDER}
_SAID = {  # the core's words for these name calls Click2Mail has not (pages, files, cancel)
    "NO_DATA": f"the batch has no batch XML yet. {_ORDER}",
    "ATTACHMENT_AFTER_DATA": f"the batch has its batch XML already, and its PDF comes before it. {_ORDER}",
    "BATCH_NOT_OPEN": "a batch takes no uploads once submitted, cancelled or cleared; create a new batch",
    "INVALID_STATE": (
        "the batch was submitted already, or cancelled or cleared (its status says which): "
        "a batch is submitted once, after its PDF and its batch XML"
    ),
}

router = APIRouter(prefix="/batches", route_class=LimitedRoute)
T = TypeVar("T")


def build(service: BatchService) -> FastAPI:
    app = profile_app(
        "Click2Mail", service, key_style="the password of HTTP Basic authentication (`curl -u USER:KEY`)"
    )
    app.include_router(router)
    install_error_handlers(
        app, loadbay_error=_loadbay_error, http_error=_http_error, invalid_request=_validation_error
    )
    return app


# submission calls ----------------------------------------------------------


@router.post("", status_code=201)
def create_batch(request: Request) -> Response:
    """Create an empty batch: the container its PDF, its XML and its jobs go into."""
    service, account = service_of(request), account_of(request)
    batch, _created = service.create(account, NewBatch(type=TYPE))
    return _xml(_document("batchjob", _batchjob(batch, [])), 201)


@router.put("/{batch_id}")
@streams_files
async def upload(batch_id: str, request: Request) -> Response:
    """The PDF (application/pdf) first, then the batch XML (application/xml or text/xml)."""
    service = service_of(request)
    account = await run_in_threadpool(account_of, request)
    batch = await run_in_threadpool(_find, service, account, batch_id)  # before the body is read
    media_type = _media_type(request)
    if media_type == "application/pdf":
        await receive(await run_in_threadpool(service.attach, account, batch.id, DOCUMENT), request)
    elif media_type in _XML_TYPES:
        body = await _batch_xml(request)
        items = await run_in_threadpool(_manifest, body, charset_of(request.headers.get("content-type")))
        await run_in_threadpool(service.put_page, account, batch.id, 0, items)
    else:
        raise errors.UnsupportedMediaType(
            f"unsupported Content-Type {media_type or '(none)'!r}; "
            "send the PDF as application/pdf and the batch XML as application/xml"
        )
    return Response(status_code=200)


@router.post("/{batch_id}")
def submit(batch_id: str, request: Request) -> Response:
    """Queue the batch; batches are taken first in, first out."""
    service, account = service_of(request), account_of(request)
    service.submit(account, _find(service, account, batch_id).id)
    return Response(status_code=200)


async def _batch_xml(request: Request) -> bytes:
    """The body, read whole within LOADBAY_MAX_BODY_BYTES; over it, a 413 in Click2Mail's calls."""
    try:
        return await read_limited(request)
    except errors.PayloadTooLarge:
        limit = service_of(request).rt.settings.max_body_bytes
        raise errors.PayloadTooLarge(
            f"the batch XML is over {byte_size(limit)}, the most this server reads in one request "
            "(LOADBAY_MAX_BODY_BYTES): split its jobs into several batches, each sent as this one "
            "(POST /batches, PUT the PDF, PUT its share of the batch XML, POST /batches/{id})"
        ) from None


def _find(service: BatchService, account: Account, batch_id: str) -> Batch:
    """The account's mail batch: another account's batch, or a batch of another type (a
    native billing.customer batch, say), is NotFound, as an id that names no batch is. An id
    is plain ASCII digits: anything else (`+1`, `1_0`, ` 1`, `²`) is InvalidInput."""
    number = whole_number(batch_id)
    if number is None and not (batch_id.isascii() and batch_id.isdigit()):
        raise errors.InvalidInput(
            f"the batch id {_shown(batch_id)!r} is not plain digits: send the <id> POST /batches answered"
        )
    if number is None:  # more digits than any id has
        raise errors.NotFound(f"batch {_shown(batch_id)} not found")
    return service.get(account, number, types={TYPE})


def _shown(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[:most] + "…"


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _manifest(body: bytes, charset: str | None) -> list[dict[str, Any]]:
    return manifest_items(parse_xml(body, charset))


def manifest_items(root: Element) -> list[dict[str, Any]]:
    """The records of a `<batch>` document: one JSON item per `<job>`, in order.

    Only `<job>` (in `<batch>`) and `<address>` (in `<recipients>`) may come more than once;
    any other element twice, an element where text goes (inside an address or the print
    options, say) or another element in `<recipients>` is InvalidInput (INVALID_XML) naming
    it and its job, as a value given twice cannot be told from a mistake."""
    if local_name(root.tag) != "batch":
        raise errors.InvalidInput(
            f"the body is not a Click2Mail batch XML: its root is <{local_name(root.tag)}>, not <batch>",
            code="NOT_A_BATCH",
        )
    children_by_name(root, ("filename", "appSignature"))
    jobs = [child for child in root if local_name(child.tag) == "job"]
    if not jobs:
        raise errors.InvalidInput("the batch XML has no <job>", code="NO_JOBS")
    return [_job(job, n) for n, job in enumerate(jobs, 1)]


def _job(job: Element, n: int) -> dict[str, Any]:
    try:
        return {name: _value(child) for name, child in children_by_name(job).items()}
    except errors.InvalidInput as exc:
        raise errors.InvalidInput(f"job-{n} (<job> number {n}): {exc.message}", code=exc.code) from None


def _value(element: Element) -> Any:
    if local_name(element.tag) == "recipients":
        return [_fields(address) for address in _addresses(element)]
    return _fields(element) if len(element) else _text(element)


def _addresses(recipients: Element) -> list[Element]:
    for child in recipients:
        if local_name(child.tag) != "address":
            raise errors.InvalidInput(
                f"<recipients> holds <{local_name(child.tag)}>; each recipient is an <address>",
                code="INVALID_XML",
            )
    return list(recipients)


def _fields(element: Element) -> dict[str, str | None]:
    return {name: _text(child) for name, child in children_by_name(element).items()}


def _text(element: Element) -> str | None:
    if len(element):
        raise errors.InvalidInput(
            f"<{local_name(element.tag)}> holds <{local_name(element[0].tag)}> where its text goes",
            code="INVALID_XML",
        )
    return (element.text or "").strip() or None


# post-submission calls -----------------------------------------------------


@router.get("/{batch_id}")
def status(batch_id: str, request: Request) -> Response:
    service, account = service_of(request), account_of(request)
    batch = _find(service, account, batch_id)
    shown = service.errors(account, batch.id, None, _SHOWN_ERRORS) if _refused(batch) else []
    return _xml(_document("batchjob", _batchjob(batch, shown)))


@router.get("/{batch_id}/details")
def details(batch_id: str, request: Request) -> StreamingResponse:
    """The jobs created (id, key, status), the jobs refused and why, and the count created."""
    service, account = service_of(request), account_of(request)
    batch = _find(service, account, batch_id)
    return _xml_stream(_details(service, account, batch))


@router.get("/{batch_id}/tracking", response_model=None)
def tracking(batch_id: str, request: Request) -> Response | StreamingResponse:
    service, account = service_of(request), account_of(request)
    batch = _find(service, account, batch_id)
    first = service.read_applied(account, batch.id, partial(tracking_page, after_id=0, limit=_PAGE))
    if not first:
        fields = {"batchId": batch.id, "status": 1, "description": NO_TRACKING, "items": ""}
        return _xml(_document("tracking", fields))
    return _xml_stream(_tracking(service, account, batch, first))


def _batchjob(batch: Batch, shown: list[ErrorRow]) -> dict[str, Any]:
    """The seed's <batchjob> fields, in the seed's order. A final batch reads submitted and
    received (submitted=true, received=false is "in the queue": a client would poll on)."""
    return {
        "createdAt": _timestamp(batch.created_at),
        "errorMessage": _error_message(batch, shown),
        "hasErrors": batch.status == Status.ERROR or batch.status in _ENDED or _refused(batch) > 0,
        "id": batch.id,
        "received": batch.status in _RECEIVED,
        "submitted": batch.submitted_at is not None or batch.final,
    }


def _refused(batch: Batch) -> int:
    return batch.counts.invalid + batch.counts.failed


def _error_message(batch: Batch, shown: list[ErrorRow]) -> str:
    if batch.status == Status.ERROR:
        return batch.error_message or ""
    said = [_ended(batch)] if batch.status in _ENDED else []
    if shown:
        reasons = "; ".join(f"{e.external_id}: {e.message} ({e.code})" for e in shown)
        more = "; …" if _refused(batch) > len(shown) else ""
        said.append(f"{_refused(batch)} of {batch.counts.total} jobs have errors: {reasons}{more}")
    return "; ".join(said)


def _ended(batch: Batch) -> str:
    """What a batch cancelled or cleared outside Click2Mail's calls left done."""
    how = f"the batch was {batch.status.value}" + (f" ({batch.error_message})" if batch.error_message else "")
    if batch.submitted_at is None:
        return f"{how} before it was submitted: no job was created; create a new batch"
    made = batch.counts.succeeded
    return (
        f"{how} after it was submitted: {many(made, 'job')} {'was' if made == 1 else 'were'} created "
        "(see its details), no other will be; send the others in a new batch"
    )


def _details(service: BatchService, account: Account, batch: Batch) -> Iterator[str]:
    yield f"{PROLOG}<batchDetails>{_leaf('id', batch.id)}<jobs>"
    count = 0
    jobs = partial(jobs_page, limit=_PAGE)
    for job in _pages(
        lambda a: service.read_applied(account, batch.id, partial(jobs, after_position=a)), _position
    ):
        count += 1
        yield _serialize(_element("job", _job_fields(job)))
    yield "</jobs><errors>"
    for row in _pages(lambda after: service.errors(account, batch.id, after, _PAGE), _row_id):
        yield _serialize(_element("error", _error_fields(row)))
    yield f"</errors>{_leaf('count', count)}</batchDetails>"


def _job_fields(job: MailJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "jobKey": job.key,
        "status": job.status,
        "startingPage": job.starting_page,
        "endingPage": job.ending_page,
        "recipients": job.recipients,
    }


def _error_fields(row: ErrorRow) -> dict[str, Any]:
    return {"jobKey": row.external_id, "field": row.field, "code": row.code, "description": row.message}


def _tracking(
    service: BatchService, account: Account, batch: Batch, first: list[TrackingEvent]
) -> Iterator[str]:
    yield f"{PROLOG}<tracking>{_leaf('batchId', batch.id)}{_leaf('status', 0)}"
    yield f"{_leaf('description', 'Success')}<items>"
    yield from (_serialize(_element("item", _event_fields(e))) for e in first)
    after = first[-1].id
    events = partial(tracking_page, limit=_PAGE)
    for event in _pages(
        lambda a: service.read_applied(account, batch.id, partial(events, after_id=a)), _event_id, after
    ):
        yield _serialize(_element("item", _event_fields(event)))
    yield "</items></tracking>"


def _event_fields(event: TrackingEvent) -> dict[str, Any]:
    return {
        "jobId": event.job_id,
        "status": event.status,
        "dateTime": _timestamp(event.at),
        "statusLocation": event.location,
        "detail": event.detail,
    }


def _pages(fetch: Callable[[int], list[T]], cursor: Callable[[T], int], after: int = 0) -> Iterator[T]:
    """Every item of a keyset-paged read (items after the cursor `after`), a page at a time."""
    while page := fetch(after):
        yield from page
        after = cursor(page[-1])


def _position(job: MailJob) -> int:
    return job.position


def _row_id(row: ErrorRow) -> int:
    return row.id


def _event_id(event: TrackingEvent) -> int:
    return event.id


# rendering -----------------------------------------------------------------


def _timestamp(at: datetime) -> str:
    """ISO 8601 to the second with a numeric offset, like the seed's 2022-04-18T10:52:30-04:00."""
    return at.astimezone(UTC).isoformat(timespec="seconds")


def _text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _element(tag: str, fields: Mapping[str, Any]) -> Element:
    element = Element(tag)
    for name, value in fields.items():
        SubElement(element, name).text = _text_of(value)
    return element


def _node(tag: str, value: Any) -> Element:
    element = Element(tag)
    element.text = _text_of(value)
    return element


def _serialize(element: Element) -> str:
    return tostring(element, encoding="unicode", short_empty_elements=False)


def _leaf(tag: str, value: Any) -> str:
    return _serialize(_node(tag, value))


def _document(tag: str, fields: Mapping[str, Any]) -> str:
    """A whole XML document, indented like the seed's examples."""
    element = _element(tag, fields)
    indent(element, space="    ")
    return PROLOG + _serialize(element) + "\n"


def _xml(text: str, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(text, status_code=status_code, media_type="application/xml", headers=headers)


def _xml_stream(parts: Iterator[str]) -> StreamingResponse:
    return StreamingResponse((part.encode() for part in parts), media_type="application/xml")


# errors --------------------------------------------------------------------


def _error(status_code: int, code: str, description: str) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="loadbay"'} if status_code == 401 else None
    fields = {"status": status_code, "code": code, "description": description}
    return _xml(_document("error", fields), status_code, headers)


async def _loadbay_error(_request: Request, exc: errors.LoadbayError) -> Response:
    """Click2Mail answers 400 to a call its batch's state refuses (wrong order, submitted); the
    core's words that name native calls are said in Click2Mail's."""
    status_code = 400 if isinstance(exc, errors.Conflict) else http_status(exc)
    hint = _HINTS.get(exc.code)
    message = _SAID.get(exc.code, f"{exc.message}. {hint}" if hint else exc.message)
    return _error(status_code, exc.code, message)


async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return _error(400, "INVALID_INPUT", detail)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    return _error(exc.status_code, code, str(exc.detail))
