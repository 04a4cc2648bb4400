"""The native JSON API under /v1 (DESIGN.md, "External contracts")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from loadbay.api.schemas import (
    AccountOut,
    BatchOut,
    CreateBatch,
    ErrorGroupOut,
    ErrorOut,
    ErrorSummaryOut,
    EventOut,
    Page,
    Text,
    UploadUrlOut,
    UploadUrlRequest,
)
from loadbay.core.service import BatchService
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Account, Batch
from loadbay.errors import InvalidInput
from loadbay.http.auth import signed
from loadbay.http.bodies import LimitedRoute, streams_files
from loadbay.http.deps import current_account, service_of
from loadbay.http.streaming import receive

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["batches"], route_class=LimitedRoute)

Service = Annotated[BatchService, Depends(service_of)]
Caller = Annotated[Account, Depends(current_account)]


@router.post("/batches", status_code=201, response_model=BatchOut)
def create_batch(body: CreateBatch, service: Service, account: Caller, response: Response) -> BatchOut:
    """Create a batch; the same job_id with the same body answers the existing batch (200)."""
    batch, created = service.create(account, body.spec(), items=body.items, submit=body.submit)
    if not created:
        response.status_code = 200
    upload = None
    if body.upload_url:
        signed = service.upload_url(account, batch.id, body.file_name)
        upload = UploadUrlOut(url=signed.url, method=signed.method, expires_at=signed.expires_at)
    return _out(service, batch, upload)


def _out(service: BatchService, batch: Batch, upload: UploadUrlOut | None = None) -> BatchOut:
    return BatchOut.of(batch, service.progress([batch])[batch.id], upload)


@router.get("/batches", response_model=Page[BatchOut])
def list_batches(
    service: Service,
    account: Caller,
    status: Text | None = None,
    type: Text | None = None,
    job_id: Text | None = None,
    q: Annotated[
        Text | None, Query(max_length=200, description="Text the job id or description holds")
    ] = None,
    cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[BatchOut]:
    """Newest first; pass `next_cursor` back as `cursor` for the next page. `q` finds the
    batches whose job id or description holds the text, in any letter case."""
    if status and status not in set(Status):
        raise InvalidInput(f"status must be one of {', '.join(Status)}", code="INVALID_STATUS")
    filters = {k: v for k, v in {"status": status, "type": type, "job_id": job_id}.items() if v}
    batches = service.list_batches(account, filters, cursor, limit, search=q)
    progress = service.progress(batches)
    next_cursor = str(batches[-1].id) if len(batches) == limit else None
    data = [BatchOut.of(b, progress[b.id]) for b in batches]
    return Page[BatchOut](data=data, next_cursor=next_cursor)


@router.get("/batches/{batch_id}", response_model=BatchOut)
def get_batch(batch_id: int, service: Service, account: Caller) -> BatchOut:
    return _out(service, service.get(account, batch_id))


@router.put("/batches/{batch_id}/data", response_model=BatchOut)
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


@router.put("/batches/{batch_id}/pages/{number}", response_model=BatchOut)
def put_page(
    batch_id: int,
    number: int,
    service: Service,
    account: Caller,
    body: Annotated[Any, Body(description='A JSON array of items, or {"items": [...]}')],
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


@router.post("/batches/{batch_id}/upload-url", response_model=UploadUrlOut)
def upload_url(
    batch_id: int, service: Service, account: Caller, body: UploadUrlRequest | None = None
) -> UploadUrlOut:
    """A signed URL that takes `PUT`s of one file, without the API key, until it expires or
    the batch is submitted (a second `PUT` replaces the first, as on S3)."""
    signed = service.upload_url(account, batch_id, (body or UploadUrlRequest()).name)
    return UploadUrlOut(url=signed.url, method=signed.method, expires_at=signed.expires_at)


@router.post("/batches/{batch_id}/submit", response_model=BatchOut)
def submit(batch_id: int, service: Service, account: Caller) -> BatchOut:
    return _out(service, service.submit(account, batch_id))


@router.post("/batches/{batch_id}/process", response_model=BatchOut)
def process(batch_id: int, service: Service, account: Caller) -> BatchOut:
    return _out(service, service.process(account, batch_id))


@router.post("/batches/{batch_id}/cancel", response_model=BatchOut)
def cancel(batch_id: int, service: Service, account: Caller) -> BatchOut:
    return _out(service, service.cancel(account, batch_id))


@router.post("/batches/{batch_id}/clear", response_model=BatchOut)
def clear(batch_id: int, service: Service, account: Caller) -> BatchOut:
    return _out(service, service.clear(account, batch_id))


@router.get("/batches/{batch_id}/errors", response_model=Page[ErrorOut])
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


@router.get("/batches/{batch_id}/errors/summary", response_model=ErrorSummaryOut)
def error_summary(batch_id: int, service: Service, account: Caller) -> ErrorSummaryOut:
    """Record errors counted by code and field, the largest groups first (at most 50), each
    with its first three errors and the values they refused."""
    total, groups = service.error_summary(account, batch_id)
    return ErrorSummaryOut(total=total, groups=[ErrorGroupOut.of(g) for g in groups])


@router.get("/batches/{batch_id}/results", response_class=StreamingResponse)
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
    """The result CSV: every input record with loadbay_status, action, entity id and error."""
    outcomes = [name.strip() for value in outcome or [] for name in value.split(",") if name.strip()]
    parts = service.results(account, batch_id, outcomes)
    name = f"batch-{batch_id}-{'-'.join(sorted(set(outcomes))) if outcomes else 'results'}.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(_encoded(parts), media_type="text/csv; charset=utf-8", headers=headers)


def _encoded(parts: Iterator[str]) -> Iterator[bytes]:
    for part in parts:
        yield part.encode()


@router.get("/batches/{batch_id}/children", response_model=Page[BatchOut])
def children(batch_id: int, service: Service, account: Caller) -> Page[BatchOut]:
    batches = service.children(account, batch_id)
    progress = service.progress(batches)
    return Page[BatchOut](data=[BatchOut.of(b, progress[b.id]) for b in batches])


@router.get("/batches/{batch_id}/events", response_model=Page[EventOut])
def events(batch_id: int, service: Service, account: Caller) -> Page[EventOut]:
    return Page[EventOut](data=[EventOut.of(e) for e in service.events(account, batch_id)])


@router.get("/account", tags=["account"], response_model=AccountOut)
def whoami(account: Caller) -> AccountOut:
    """The account the API key belongs to."""
    return AccountOut.of(account)


@router.get("/types", tags=["types"])
def types(service: Service, account: Caller) -> dict[str, Any]:
    """Every batch type: its key, CSV columns and JSON Schema."""
    return {
        "data": [
            {
                "name": t.name,
                "key": t.key,
                "description": t.description,
                "columns": list(t.columns().names),
                "required": list(t.columns().required),
                "schema": t.json_schema(),
            }
            for t in service.batch_types()
        ]
    }


@router.put("/blobs/{key:path}", status_code=200, tags=["signed"], include_in_schema=True)
@streams_files
@signed
async def signed_put(
    key: str, request: Request, service: Service, expires: str = "", signature: str = ""
) -> dict[str, Any]:
    """The target of a signed upload URL: the signature is the credential, no API key."""
    upload = await run_in_threadpool(
        service.start_signed_upload, key, expires, signature, request.headers.get("content-type")
    )
    await receive(upload, request)
    return {"ok": True, "name": upload.name}


@router.get("/blobs/{key:path}", tags=["signed"], response_class=StreamingResponse)
def signed_get(key: str, service: Service, expires: str = "", signature: str = "") -> StreamingResponse:
    """The target of a signed download URL (a batch's result file): the signature is the credential."""
    batch_id, parts = service.signed_results(key, expires, signature)
    headers = {"Content-Disposition": f'attachment; filename="batch-{batch_id}-results.csv"'}
    return StreamingResponse(_encoded(parts), media_type="text/csv; charset=utf-8", headers=headers)
