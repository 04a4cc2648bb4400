"""The native JSON API under /v1 (DESIGN.md, "External contracts")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response, Security
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from loadbay.api.schemas import (
    CREATE_EXAMPLES,
    FILE_EXAMPLES,
    PAGE_EXAMPLES,
    PAGE_SCHEMA,
    RETRY_EXAMPLES,
    UPLOAD_URL_EXAMPLES,
    AccountOut,
    BatchOut,
    CreateBatch,
    ErrorGroupOut,
    ErrorOut,
    ErrorSummaryOut,
    EventOut,
    InputOut,
    Page,
    RetryBatch,
    StoredFileOut,
    Text,
    TypeOut,
    UploadUrlOut,
    UploadUrlRequest,
)
from loadbay.core.service import BatchService
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Account, Batch
from loadbay.errors import InvalidInput
from loadbay.http.auth import api_key, authenticated, signed
from loadbay.http.bodies import streams_files
from loadbay.http.deps import current_account, quick_read, the_service
from loadbay.http.docs import API_KEY, BEARER, keyed
from loadbay.http.jsonroute import JsonRoute
from loadbay.http.problems import problem_responses
from loadbay.http.streaming import receive

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["batches"], route_class=JsonRoute)

Service = Annotated[BatchService, Depends(the_service)]
Caller = Annotated[Account, Depends(keyed(current_account))]

# What each operation answers besides its result, as problems (http.problems). Every
# operation that takes a key can answer 401, and any operation 503 (BUSY); 400 where it has
# parameters or a body; 413 where it takes a body.
_NOT_OPEN = "`BATCH_NOT_OPEN`: the batch takes data only while it is `open`"
_STATE = "`INVALID_STATE`: the batch's status does not allow this now (`detail` names what does)"
_FILE = {
    "description": "The file, in the format its Content-Type names (`?name=` for a batch of several "
    "files). It is stored as sent and read once the batch is submitted: a file that cannot be read "
    "makes the batch `error` (`MALFORMED_FILE`, `MISSING_COLUMN`, …), not this request.",
    "required": True,
    "content": {
        media: {"schema": {"contentMediaType": media}, "example": example}
        for media, example in FILE_EXAMPLES.items()
    },
}
_CSV = {
    "description": "The result file (CSV, UTF-8): each input record with `loadbay_status`, "
    "`loadbay_action`, `loadbay_entity_id`, `loadbay_error_code` and `loadbay_error_message`",
    "content": {
        "text/csv": {
            "schema": {"type": "string"},
            "example": "customer_number,name,loadbay_status,loadbay_action,loadbay_entity_id,"
            "loadbay_error_code,loadbay_error_message\r\nC1001,Ada Lovelace,succeeded,created,17,,\r\n"
            "C1002,,invalid,,,REQUIRED,name is required\r\n",
        }
    },
}


@router.post(
    "/batches",
    status_code=201,
    response_model=BatchOut,
    response_description="The new batch",
    responses={
        200: {"model": BatchOut, "description": "The batch this job_id already names (same body)"},
        **problem_responses(
            400,
            401,
            403,
            404,
            409,
            413,
            503,
            said={
                403: "`TEST_MODE_MISMATCH`: `test` differs from the API key's account",
                404: "`NOT_FOUND`: no such `parent_id` batch",
                409: "`JOB_ID_CONFLICT`: the job_id names a batch made with another body; `MIXED_INPUT`: "
                "`items` with `source_url` or `upload_url` (a batch takes pages or files, not both); "
                "`INVALID_PARENT`: the `parent_id` batch is a child itself, or the type makes children "
                "of its own (a family is one level deep); `BATCH_NOT_OPEN`: the `parent_id` batch is no "
                "longer open (children join open batches only); or the items or submit asked for are "
                "refused (`NO_DATA`, `INCOMPLETE_BATCH`); or the upload URL asked for is (`BATCH_NOT_OPEN`: "
                "the batch is submitted on create; `NO_DATA_TAKEN`)",
            },
        ),
    },
)
def create_batch(
    body: Annotated[CreateBatch, Body(openapi_examples=CREATE_EXAMPLES)],
    service: Service,
    account: Caller,
    response: Response,
) -> BatchOut:
    """Create a batch; the same job_id with the same body answers the existing batch (200)."""
    upload = None
    if body.upload_url:  # one step: a URL refused leaves no batch behind
        batch, created, signed = service.create_with_upload(
            account, body.spec(), body.file_name, items=body.items, submit=body.submit
        )
        upload = UploadUrlOut(url=signed.url, method=signed.method, expires_at=signed.expires_at)
    else:
        batch, created = service.create(account, body.spec(), items=body.items, submit=body.submit)
    if not created:
        response.status_code = 200
    return _out(service, batch, upload)


def _out(service: BatchService, batch: Batch, upload: UploadUrlOut | None = None) -> BatchOut:
    return BatchOut.of(batch, service.progress([batch])[batch.id], upload)


_LIST_400 = (
    "`INVALID_STATUS`: a `status` that is no batch status; `UNKNOWN_TYPE`: a `type` that is no "
    "registered type (each names the known ones); or a malformed parameter"
)


@router.get(
    "/batches",
    response_model=Page[BatchOut],
    responses=problem_responses(400, 401, 503, said={400: _LIST_400}),
)
def list_batches(
    service: Service,
    account: Caller,
    status: Annotated[
        list[Text] | None,
        Query(description="Only batches in one of these statuses: comma-separated or repeated"),
    ] = None,
    type: Annotated[
        list[Text] | None,
        Query(description="Only batches of one of these types: comma-separated or repeated"),
    ] = None,
    job_id: Text | None = None,
    q: Annotated[
        Text | None, Query(max_length=200, description="Text the job id or description holds")
    ] = None,
    cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[BatchOut]:
    """Newest first; pass `next_cursor` back as `cursor` for the next page. `q` finds the
    batches whose job id or description holds the text, in any letter case."""
    statuses, types = _listed(status), _listed(type)
    if unknown := [s for s in statuses if s not in set(Status)]:
        raise InvalidInput(
            f"unknown status {', '.join(map(repr, unknown))}; a batch's status is one of {', '.join(Status)}",
            code="INVALID_STATUS",
        )
    for name in types:
        service.batch_type(name)  # UnknownType, naming the known ones
    filters = {k: v for k, v in {"status": statuses, "type": types, "job_id": job_id}.items() if v}
    batches = service.list_batches(account, filters, cursor, limit, search=q)
    progress = service.progress(batches)
    next_cursor = str(batches[-1].id) if len(batches) == limit else None
    data = [BatchOut.of(b, progress[b.id]) for b in batches]
    return Page[BatchOut](data=data, next_cursor=next_cursor)


def _listed(values: list[str] | None) -> list[str]:
    """A parameter's values, given repeated or comma-separated (or both), in order, once each."""
    names = (name.strip() for value in values or [] for name in value.split(","))
    return list(dict.fromkeys(name for name in names if name))


async def _polling_key(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    _api_key: Annotated[str | None, Security(API_KEY)],
) -> str | None:
    """The key of a status request, which `get_batch` checks itself, in the same read as the
    batch's. Without a key, or with a batch id that is no number, the key is checked here
    first: a 401 comes before a 400, as on every other operation."""
    key = api_key(request)
    if key is None or not _is_id(request.path_params.get("batch_id", "")):
        await authenticated(request, current_account)
    return key


def _is_id(text: str) -> bool:
    """Whether FastAPI takes `text` as an int path parameter (it validates it the same way)."""
    try:
        _ID.validate_python(text)
    except ValidationError:
        return False
    return True


_ID = TypeAdapter(int)
_BATCH_OUT = TypeAdapter(BatchOut)


@router.get("/batches/{batch_id}", response_model=BatchOut, responses=problem_responses(400, 401, 404, 503))
async def get_batch(
    batch_id: int, service: Service, key: Annotated[str | None, Depends(_polling_key)]
) -> Response:
    # Clients poll this one (50 at once while a big import runs). One read checks the key
    # and reads the batch and its progress, and the answer is rendered as FastAPI would
    # render its BatchOut; on SQLite with no switch to the thread pool (`quick_read`), where
    # FastAPI's way made three: the key, a sync endpoint, then validating its answer.
    return await quick_read(service, _status, service, key, batch_id)


def _status(service: BatchService, key: str | None, batch_id: int) -> Response:
    """The batch as JSON: the bytes FastAPI renders from a `BatchOut` (the response_model)."""
    batch, progress = service.status(key, batch_id)
    body = _BATCH_OUT.dump_json(BatchOut.of(batch, progress), by_alias=True)
    return Response(body, media_type="application/json")


@router.put(
    "/batches/{batch_id}/data",
    response_model=BatchOut,
    responses=problem_responses(
        400,
        401,
        404,
        409,
        413,
        415,
        503,
        said={
            400: "`INVALID_NAME`: `name` cannot name a file, or a malformed parameter",
            409: f"{_NOT_OPEN}; `MIXED_INPUT`: it has pages already, or is a retry (it takes pages)",
        },
    ),
    openapi_extra={"requestBody": _FILE},
)
@streams_files
async def put_data(
    batch_id: int, request: Request, service: Service, account: Caller, name: str = "data"
) -> BatchOut:
    """Stream a file into the batch; Content-Type picks the format; `?name=` for several files."""
    upload = await run_in_threadpool(
        service.start_upload, account, batch_id, name, request.headers.get("content-type")
    )
    await receive(upload, request)
    batch = await run_in_threadpool(service.get, account, batch_id)
    return await run_in_threadpool(_out, service, batch)


@router.put(
    "/batches/{batch_id}/pages/{number}",
    response_model=BatchOut,
    responses=problem_responses(
        400,
        401,
        404,
        409,
        413,
        503,
        said={
            400: "`INVALID_PAGE`, `PAGE_TOO_LARGE` (over the batch's `page_size`) or a malformed body",
            409: f"{_NOT_OPEN}; `MIXED_INPUT`: it has files already, or reads its file from its "
            "`source_url`; `PAGE_BEYOND_TOTAL`: the page holds items beyond `total_items`",
        },
    ),
)
def put_page(
    batch_id: int,
    number: int,
    service: Service,
    account: Caller,
    body: Annotated[
        Any,
        Body(
            description='A JSON array of items, or {"items": [...]}',
            openapi_examples=PAGE_EXAMPLES,
            json_schema_extra=PAGE_SCHEMA,
        ),
    ],
) -> BatchOut:
    """Store one page of items; sending the same page again replaces it."""
    return _out(service, service.put_page(account, batch_id, number, _items(body)))


def _items(body: Any) -> list[Any]:
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return list(body["items"])
    if isinstance(body, list):
        return body
    raise InvalidInput(
        "a page is a JSON array of items, or an object with an `items` array", code="INVALID_PAGE"
    )


@router.get(
    "/batches/{batch_id}/inputs",
    response_model=Page[InputOut],
    responses=problem_responses(400, 401, 404, 503),
)
def inputs(batch_id: int, service: Service, account: Caller) -> Page[InputOut]:
    """The batch's files and pages in the order they are read: files by arrival (a file sent
    again under its name keeps its place), then pages by number. A file whose upload URL was
    handed out is listed `pending` until it is received; if the batch leaves open (is
    cancelled) without it, it stays listed, not pending, with no `received_at`."""
    return Page[InputOut](data=[InputOut.of(i) for i in service.inputs(account, batch_id)])


@router.post(
    "/batches/{batch_id}/upload-url",
    response_model=UploadUrlOut,
    responses=problem_responses(
        400,
        401,
        404,
        409,
        413,
        503,
        said={409: f"{_NOT_OPEN}; `MIXED_INPUT`: it has pages already, or is a retry (it takes pages)"},
    ),
)
def upload_url(
    batch_id: int,
    service: Service,
    account: Caller,
    body: Annotated[UploadUrlRequest | None, Body(openapi_examples=UPLOAD_URL_EXAMPLES)] = None,
) -> UploadUrlOut:
    """A signed URL that takes `PUT`s of one file, without the API key, until it expires or
    the batch is submitted (a second `PUT` replaces the first, as on S3)."""
    signed = service.upload_url(account, batch_id, (body or UploadUrlRequest()).name)
    return UploadUrlOut(url=signed.url, method=signed.method, expires_at=signed.expires_at)


@router.post(
    "/batches/{batch_id}/submit",
    response_model=BatchOut,
    responses=problem_responses(
        400,
        401,
        404,
        409,
        503,
        said={
            409: f"{_STATE}; `NO_DATA`: the batch has no data: no file, no `source_url`, and no item "
            "in its pages (pages sent empty hold none), or nothing at an upload URL it handed out; "
            "`FILE_NOT_UPLOADED`: nothing at an upload URL it handed out, though it has other data; "
            "`INCOMPLETE_BATCH`: fewer items than `total_items`; `ATTACHMENT_MISSING`"
        },
    ),
)
def submit(batch_id: int, service: Service, account: Caller) -> BatchOut:
    return _out(service, service.submit(account, batch_id))


@router.post(
    "/batches/{batch_id}/process",
    response_model=BatchOut,
    responses=problem_responses(
        400, 401, 404, 409, 503, said={409: f"{_STATE}: only a manual batch waiting at `validated`"}
    ),
)
def process(batch_id: int, service: Service, account: Caller) -> BatchOut:
    return _out(service, service.process(account, batch_id))


@router.post(
    "/batches/{batch_id}/cancel",
    response_model=BatchOut,
    responses=problem_responses(400, 401, 404, 409, 503, said={409: _STATE}),
)
def cancel(batch_id: int, service: Service, account: Caller) -> BatchOut:
    return _out(service, service.cancel(account, batch_id))


@router.post(
    "/batches/{batch_id}/clear",
    response_model=BatchOut,
    responses=problem_responses(400, 401, 404, 409, 503, said={409: _STATE}),
)
def clear(batch_id: int, service: Service, account: Caller) -> BatchOut:
    return _out(service, service.clear(account, batch_id))


@router.post(
    "/batches/{batch_id}/retry",
    status_code=201,
    response_model=BatchOut,
    response_description="The new batch, linked to this one by retry_of",
    responses={
        200: {"model": BatchOut, "description": "The retry made already of the same outcomes"},
        **problem_responses(
            400,
            401,
            404,
            409,
            413,
            503,
            said={
                409: "`RESULTS_NOT_READY`: the batch is not completed or cancelled, or its records a "
                "cancel left unread are still being read (`unread_pending`); `NOTHING_TO_RETRY`: "
                "no record ended so; `RETRY_NOT_SUPPORTED`: its records cannot be sent alone; "
                "`ALREADY_RETRIED`: an earlier retry took some of those records (retry it instead)",
            },
        ),
    },
)
def retry(
    batch_id: int,
    service: Service,
    account: Caller,
    response: Response,
    body: Annotated[RetryBatch | None, Body(openapi_examples=RETRY_EXAMPLES)] = None,
) -> BatchOut:
    """A new batch of the same type of the records that ended `failed` or `unprocessed` (or
    the `outcomes` named), as they were sent; submitted at once unless `submit` is false.
    Asked for again with the same outcomes, the retry made (200)."""
    asked = body or RetryBatch()
    batch, made = service.retry(account, batch_id, asked.outcomes, submit=asked.submit)
    if not made:
        response.status_code = 200
    return _out(service, batch)


@router.get(
    "/batches/{batch_id}/errors",
    response_model=Page[ErrorOut],
    responses=problem_responses(400, 401, 404, 503),
)
def list_errors(
    batch_id: int,
    service: Service,
    account: Caller,
    cursor: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    code: Annotated[Text | None, Query(max_length=60, description="Only errors with this code")] = None,
    field: Annotated[
        Text | None,
        Query(
            max_length=200,
            description="Only errors on this field; empty: errors of a whole record (no field)",
        ),
    ] = None,
) -> Page[ErrorOut]:
    """Record errors in record order of discovery; `next_cursor` pages on. `code` and `field`
    keep one group of `errors/summary`."""
    rows = service.errors(account, batch_id, cursor, limit, code=code, field=field)
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    return Page[ErrorOut](data=[ErrorOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/batches/{batch_id}/errors/summary",
    response_model=ErrorSummaryOut,
    responses=problem_responses(400, 401, 404, 503),
)
def error_summary(batch_id: int, service: Service, account: Caller) -> ErrorSummaryOut:
    """Record errors counted by code and field, the largest groups first (at most 50), each
    with its first three errors and the values they refused."""
    total, groups = service.error_summary(account, batch_id)
    listed = [ErrorGroupOut.of(g) for g in groups]
    return ErrorSummaryOut(total=total, groups=listed, not_listed=total - sum(g.count for g in listed))


@router.get(
    "/batches/{batch_id}/results",
    response_class=StreamingResponse,
    responses={
        200: _CSV,
        **problem_responses(
            400,
            401,
            404,
            409,
            503,
            said={
                400: "`INVALID_OUTCOME`: an `outcome` that is none of the four, or a malformed parameter",
                409: "`RESULTS_NOT_READY`: the result file exists once the batch is completed or cancelled; "
                "before that only `outcome=invalid` is answered, once validation has ended (`validated`, "
                "`processing`)",
            },
        ),
    },
)
def results(
    batch_id: int,
    service: Service,
    account: Caller,
    outcome: Annotated[
        list[str] | None,
        Query(
            description="Only records that ended so: succeeded, invalid, failed or unprocessed; "
            "several as a comma-separated list or repeated (invalid,failed,unprocessed: the refused records)"
        ),
    ] = None,
) -> StreamingResponse:
    """The result CSV: every input record with loadbay_status, action, entity id and error.

    Once validation has ended (`validated`, `processing`), `outcome=invalid` gives the invalid
    records' rows before the batch is final, as its result file will have them."""
    outcomes = [name.strip() for value in outcome or [] for name in value.split(",") if name.strip()]
    parts = service.results(account, batch_id, outcomes)
    name = f"batch-{batch_id}-{'-'.join(sorted(set(outcomes))) if outcomes else 'results'}.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(_encoded(parts), media_type="text/csv; charset=utf-8", headers=headers)


def _encoded(parts: Iterator[str]) -> Iterator[bytes]:
    for part in parts:
        yield part.encode()


@router.get(
    "/batches/{batch_id}/children",
    response_model=Page[BatchOut],
    responses=problem_responses(400, 401, 404, 503),
)
def children(batch_id: int, service: Service, account: Caller) -> Page[BatchOut]:
    batches = service.children(account, batch_id)
    progress = service.progress(batches)
    return Page[BatchOut](data=[BatchOut.of(b, progress[b.id]) for b in batches])


@router.get(
    "/batches/{batch_id}/events",
    response_model=Page[EventOut],
    responses=problem_responses(400, 401, 404, 503),
)
def events(batch_id: int, service: Service, account: Caller) -> Page[EventOut]:
    return Page[EventOut](data=[EventOut.of(e) for e in service.events(account, batch_id)])


@router.get("/account", tags=["account"], response_model=AccountOut, responses=problem_responses(401, 503))
def whoami(account: Caller) -> AccountOut:
    """The account the API key belongs to."""
    return AccountOut.of(account)


@router.get("/types", tags=["types"], response_model=Page[TypeOut], responses=problem_responses(401, 503))
def types(service: Service, account: Caller) -> Page[TypeOut]:
    """Every batch type a client asks for: its key, CSV columns and JSON Schema (the types
    loadbay makes batches of itself, a carry-forward's children, are not listed)."""
    data = [
        TypeOut(
            name=t.name,
            key=t.key_name(),
            description=t.description,
            columns=list(t.columns().names),
            required=list(t.columns().required),
            schema=t.json_schema(),
        )
        for t in service.listed_types()
    ]
    return Page[TypeOut](data=data)


_SIGNATURE = "`BAD_SIGNATURE`: the signed URL is expired, tampered with, or for another object"


@router.put(
    "/blobs/{key:path}",
    tags=["signed"],
    response_model=StoredFileOut,
    responses=problem_responses(
        403,
        404,
        409,
        413,
        415,
        503,
        said={403: _SIGNATURE, 404: "`NOT_FOUND`: no such upload target", 409: _NOT_OPEN},
    ),
    openapi_extra={"requestBody": _FILE},
)
@streams_files
@signed
async def signed_put(
    key: str, request: Request, service: Service, expires: str = "", signature: str = ""
) -> StoredFileOut:
    """The target of a signed upload URL: the signature is the credential, no API key."""
    upload = await run_in_threadpool(
        service.start_signed_upload, key, expires, signature, request.headers.get("content-type")
    )
    await receive(upload, request)
    return StoredFileOut(ok=True, name=upload.name)


@router.get(
    "/blobs/{key:path}",
    tags=["signed"],
    response_class=StreamingResponse,
    responses={
        200: _CSV,
        **problem_responses(
            403,
            404,
            409,
            503,
            said={
                403: _SIGNATURE,
                404: "`NOT_FOUND`: no such result file",
                409: "`RESULTS_NOT_READY`: the batch has no result file (cleared, or an error)",
            },
        ),
    },
)
def signed_get(key: str, service: Service, expires: str = "", signature: str = "") -> StreamingResponse:
    """The target of a signed download URL (a batch's result file): the signature is the credential."""
    batch_id, parts = service.signed_results(key, expires, signature)
    headers = {"Content-Disposition": f'attachment; filename="batch-{batch_id}-results.csv"'}
    return StreamingResponse(_encoded(parts), media_type="text/csv; charset=utf-8", headers=headers)
