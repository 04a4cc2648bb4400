"""eBill's Batch File Upload API (seed 000) over the core, under /compat/ebill.

    POST /rest/batchProcess?mode=BatchInit      a billing.carry_forward batch (its children
                                                carry each kind of document); answered once
                                                it and its children are final (10 s at most)
    POST /rest/batchProcess?mode=S3FileUpload   a batch in Draft, with a signed uploadUrl
    PUT  {uploadUrl}                            the file itself, to S3's presigned URL (the
                                                store's own when loadbay keeps files on S3;
                                                else loadbay's, under /compat/ebill/files/,
                                                which takes it as S3 does): no API key, any
                                                or no Content-Type (the file's format is
                                                inputFilename's: CSV for a .csv); 200 with
                                                an empty body
    PUT  /rest/batchProcess?mode=BatchFinalize  submits the batch with its line-item files
    GET  /rest/batchProcess?id=N | ?jobId=J     the batch process and its children
    GET  {downloadUrl}                          the result file (no API key)

The eBill `id` is the core batch id and `jobId` its job_id: unique per account. The same
S3FileUpload again (its jobId and body) answers the batch process it made, while it is
Draft, with a new uploadUrl (for one that expired); any other use of a jobId used before
is refused (409), a BatchInit's even with the same body. `subOperation` names the
batch type (`Customer`, `Invoice`, `Invoice Line Item`, `CreditMemo`, `DebitMemo`, as the
seed spells the kinds; in any letter case and with or without spaces, so `Credit Memo`
and `InvoiceLineItem` too), and is answered as the request wrote it (batch option
`ebill_sub_operation`); an `Invoice Line Item` file is a child batch of its invoice batch.

Statuses come from the core's: open → Draft, queued → Queued, validating, validated and
processing → Processing, completed → Success, Partial Success or Failed (all, some or none
of the records succeeded); error, cancelled and cleared → Failed, with errorMessage saying
why. A parent (an invoice batch, a carry-forward) is Processing, with no downloadUrl,
until its children are final too. successCount counts succeeded records, failCount the
invalid, failed and unprocessed ones. downloadUrl is the core's signed URL of the result
file (every record with its loadbay_status; a presigned GET on S3) once the batch is
final; a batch that failed before it had records (an unreadable file: error; cleared) has
a result file of one row that says why (loadbay_status `error` or `cleared`,
loadbay_error_code and loadbay_error_message). A batch whose files were removed
(LOADBAY_RETENTION_DAYS) has none.

Request bodies are read by the shared reader (loadbay.http.bodies): at most
LOADBAY_MAX_BODY_BYTES, over it 413 PAYLOAD_TOO_LARGE. Uploaded files are streamed and
held to LOADBAY_MAX_UPLOAD_BYTES instead.

Errors are XML, with the HTTP status of the error (400 bad request, 401 no or unknown
key, 403 a signed URL that is forged or expired, 404 unknown id or jobId, 409 the batch's
state or a used jobId refuses it, 413 a body over the limit):

    <batchProcess><errorCode>NOT_FOUND</errorCode><errorMessage>…</errorMessage></batchProcess>
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, TypeVar
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from loadbay.core.service import BatchService
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Account, Batch, NewBatch
from loadbay.errors import (
    Conflict,
    Gone,
    InvalidInput,
    JobIdConflict,
    LoadbayError,
    NoData,
    NotFound,
    ParentNotOpen,
    UnsupportedMediaType,
)
from loadbay.http.auth import signed
from loadbay.http.bodies import LimitedRoute, streams_files
from loadbay.http.problems import http_status, install_error_handlers
from loadbay.http.streaming import receive
from loadbay.profiles.common import account_of, profile_app, the_service, whole_number
from loadbay.readers import format_for_content_type, unstorable
from loadbay.xmlsafe import charset_of, local_name, parse_xml

__all__ = ["PREFIX", "SUB_OPERATIONS", "build"]

PREFIX = "/compat/ebill"
PATH = "/rest/batchProcess"

IMPORT, CARRY_FORWARD = "eBill-Import", "CarryForward"
# each subOperation as the seed spells it, and its batch type; a request may write it in any
# letter case, with or without spaces (_sub_operation_key), and is answered as it wrote it
SUB_OPERATIONS = {
    "Customer": "billing.customer",
    "Invoice": "billing.invoice",
    "Invoice Line Item": "billing.invoice_line",
    "CreditMemo": "billing.credit_memo",
    "DebitMemo": "billing.debit_memo",
}
INVOICES, LINE_ITEMS = SUB_OPERATIONS["Invoice"], SUB_OPERATIONS["Invoice Line Item"]
CARRY_FORWARD_TYPE = "billing.carry_forward"
# each carry-forward child type: its node in the BatchInit answer and its subOperation
CARRIED = {
    "billing.carry_forward_invoice": ("carryForwardInvoice", "Invoice"),
    "billing.carry_forward_credit_memo": ("carryForwardCreditMemo", "CreditMemo"),
    "billing.carry_forward_debit_memo": ("carryForwardDebitMemo", "DebitMemo"),
}
_OPERATIONS: dict[str, tuple[str, str]] = (
    {core: (IMPORT, sub) for sub, core in SUB_OPERATIONS.items()}
    | {core: (CARRY_FORWARD, sub) for core, (_node, sub) in CARRIED.items()}
    | {CARRY_FORWARD_TYPE: (CARRY_FORWARD, "")}
)

SENT_AS = "ebill_sub_operation"  # the batch option that keeps the subOperation as the client wrote it

_STATUSES = {
    Status.OPEN: ("Draft", "BatchProcess is created"),
    Status.QUEUED: ("Queued", "BatchProcess is in Queue"),
    Status.VALIDATING: ("Processing", "BatchProcess is Processing"),
    Status.VALIDATED: ("Processing", "BatchProcess is Processing"),
    Status.PROCESSING: ("Processing", "BatchProcess is Processing"),
}
_OUTCOMES = {"succeeded": "Success", "partial": "Partial Success", "failed": "Failed"}
_SUMMARY = (
    "id",
    "jobId",
    "status",
    "operation",
    "subOperation",
    "successCount",
    "successMessage",
    "errorMessage",
    "failCount",
)
_INIT_WAIT, _INIT_POLL = 10.0, 0.05


# requests ---------------------------------------------------------------------------


def _storable(value: str) -> str:
    if (found := unstorable(value)) is not None:
        raise ValueError(f"must not hold {found}")
    return value


def _digits(value: str) -> int:
    """An id as eBill writes it: ASCII digits only (not `1_0`, `1.0`, ` 1` or `+1`)."""
    number = whole_number(value)
    if number is None:
        raise ValueError(f"must be a batch process id, digits only, below {2**63}")
    return number


Id = Annotated[int, BeforeValidator(_digits), Field(ge=1)]
JobId = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_storable)]
_REQUEST = ConfigDict(str_strip_whitespace=True)


class BatchRef(BaseModel):
    """A batch process named by id, jobId or both (BatchFinalize's body, GET's query)."""

    model_config = _REQUEST

    id: Id | None = Field(default=None, alias="id")
    job_id: JobId | None = Field(default=None, alias="jobId")


class InitRequest(BaseModel):
    """BatchInit's body; its fields but job_id are the options of billing.carry_forward."""

    model_config = _REQUEST

    job_id: JobId | None = Field(default=None, alias="jobId")
    invoices: bool = Field(default=False, alias="carryForwardInvoices")
    credit_memos: bool = Field(default=False, alias="carryForwardCreditMemos")
    debit_memos: bool = Field(default=False, alias="carryForwardDebitMemos")
    zero_out_customer_balance: bool = Field(default=False, alias="zeroOutCustomerBalance")


class UploadRequest(BaseModel):
    """S3FileUpload's body."""

    model_config = _REQUEST

    job_id: JobId | None = Field(default=None, alias="jobId")
    input_type: str | None = Field(default=None, alias="inputType")
    operation: str = Field(alias="operation")
    sub_operation: str = Field(alias="subOperation")
    input_filename: str = Field(alias="inputFilename", max_length=200)
    parent_id: Id | None = Field(default=None, alias="parentBatchProcess")
    parent_job_id: JobId | None = Field(default=None, alias="parentBatchProcessJobId")


M = TypeVar("M", bound=BaseModel)


def _root(body: _XmlBody) -> Element:
    root = parse_xml(body.data, body.charset)
    if root.tag.lower() != "batchprocess":
        raise InvalidInput(f"the root element is <{root.tag}>; send a <batchProcess>", code="INVALID_XML")
    return root


def _aliases(model: type[BaseModel]) -> dict[str, str]:
    """The model's field names as eBill spells them, by their lower-case spelling."""
    return {(f.alias or name).lower(): f.alias or name for name, f in model.model_fields.items()}


def _request(values: Mapping[str, str | None], model: type[M]) -> M:
    """`values` (by element name, any letter case; empty ones left out) as `model`, or InvalidInput."""
    aliases = _aliases(model)
    known = {aliases[k.lower()]: v for k, v in values.items() if k.lower() in aliases and v}
    try:
        return model.model_validate(known)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(problems, code="INVALID_REQUEST") from None


def _elements(root: Element, model: type[M]) -> M:
    """`model` from the root's children that name its fields."""
    return _request(_values(root, _aliases(model)), model)


def _values(root: Element, aliases: Mapping[str, str]) -> dict[str, str]:
    """The text of each child of the root that `aliases` names (by its name without namespace,
    in any letter case: `JobId` is `jobId`), stripped (XML's indentation is no part of a
    value). INVALID_XML for one given twice, which cannot be told from a mistake; as
    xmlsafe.children_by_name, but in any letter case."""
    found: dict[str, str] = {}
    for child in root:
        name = aliases.get(local_name(child.tag).lower())
        if name is None:
            continue
        if name in found:
            raise InvalidInput(
                f"<{name}> appears more than once in <batchProcess>; send it once", code="INVALID_XML"
            )
        found[name] = _text(child, name)
    return found


def _text(element: Element, name: str) -> str:
    """The element's text, stripped; INVALID_REQUEST when it holds elements where its value goes."""
    if len(element):
        raise InvalidInput(
            f"<{name}> holds an element, <{local_name(element[0].tag)}>; it takes a value, as text",
            code="INVALID_REQUEST",
        )
    return (element.text or "").strip()


# finding batches ----------------------------------------------------------------------


def _find(service: BatchService, account: Account, batch_id: int | None, job_id: str | None) -> Batch:
    """The eBill batch process named by id, jobId or both (which must agree)."""
    if batch_id is None and job_id is None:
        raise InvalidInput("name the batch process by id, jobId or both", code="MISSING_ID")
    by_id = _by_id(service, account, batch_id) if batch_id is not None else None
    by_job = _by_job_id(service, account, job_id) if job_id is not None else None
    if by_id is not None and by_job is not None and by_id.id != by_job.id:
        raise InvalidInput(
            f"id {batch_id} and jobId {job_id!r} name different batch processes", code="ID_MISMATCH"
        )
    found = by_id or by_job
    assert found is not None
    return found


def _by_id(service: BatchService, account: Account, batch_id: int) -> Batch:
    return service.get(account, batch_id, types=_OPERATIONS)


def _by_job_id(service: BatchService, account: Account, job_id: str) -> Batch:
    found = service.list_batches(account, {"job_id": job_id}, None, 1)
    if not found or found[0].type not in _OPERATIONS:
        raise NotFound(f"no batch process with jobId {job_id!r}")
    return found[0]


# modes ---------------------------------------------------------------------------------


def _init(service: BatchService, account: Account, root: Element) -> Element:
    """BatchInit: carry forward; answered with the children as they stand after a short wait."""
    request = _elements(root, InitRequest)
    options = request.model_dump(exclude={"job_id"})  # invoices, credit_memos, …
    spec = NewBatch(type=CARRY_FORWARD_TYPE, job_id=request.job_id, options=options)
    batch = _create(service, account, spec, submit=True)
    batch, children = _settled(service, account, batch.id)
    node = Element("batchProcess")
    _add(node, {"id": batch.id, "jobId": batch.job_id})
    node.append(_carried(service, account, children, urls=False))
    return node


def _settled(service: BatchService, account: Account, batch_id: int) -> tuple[Batch, list[Batch]]:
    """The batch and its children once all are final, or as they are after _INIT_WAIT seconds."""
    deadline = time.monotonic() + _INIT_WAIT
    while True:
        batch, children = service.get(account, batch_id), service.children(account, batch_id)
        if all(b.final for b in (batch, *children)) or time.monotonic() > deadline:
            return batch, children
        time.sleep(_INIT_POLL)


def _file_upload(service: BatchService, account: Account, root: Element) -> Element:
    """S3FileUpload: a Draft batch for one file, and the signed URL that takes the file."""
    request = _elements(root, UploadRequest)
    batch_type = _batch_type(request)
    _check_filename(request.input_filename)
    parent_id = _parent(service, account, request, batch_type)
    spec = NewBatch(
        type=batch_type,
        job_id=request.job_id,
        parent_id=parent_id,
        description=request.input_filename,
        options={SENT_AS: request.sub_operation},
    )
    batch = _create_with_upload(service, account, spec, request.input_filename)
    # the file's format is its name's whatever the PUT's Content-Type: asked again, the URL
    # notes it (create_with_upload cannot yet), after every check passed with the create
    upload = service.upload_url(account, batch.id, request.input_filename, format_by_name=True)
    node = _summary(batch)
    _add(node, {"uploadUrl": _ebill_url(upload.url)})
    return node


def _sub_operation_key(word: str) -> str:
    """A subOperation as it is looked up: the seed writes `CreditMemo` where a reader may
    write `Credit Memo`, and `Invoice Line Item` where one may write `InvoiceLineItem`."""
    return "".join(word.split()).casefold()


_BY_SUB_OPERATION = {_sub_operation_key(word): core for word, core in SUB_OPERATIONS.items()}


def _batch_type(request: UploadRequest) -> str:
    if request.operation.lower() != IMPORT.lower():
        raise InvalidInput(f"unknown operation {request.operation!r}; use {IMPORT}", code="UNKNOWN_OPERATION")
    found = _BY_SUB_OPERATION.get(_sub_operation_key(request.sub_operation))
    if found is None:
        raise InvalidInput(
            f"unknown subOperation {request.sub_operation!r}; use one of {', '.join(SUB_OPERATIONS)}",
            code="UNKNOWN_SUB_OPERATION",
        )
    return found


def _check_filename(name: str) -> None:
    """InvalidInput unless the name's extension says the file's format (whether it can be
    stored is the upload URL's to say, in the transaction that creates the batch)."""
    try:
        format_for_content_type(None, name)
    except UnsupportedMediaType:
        raise InvalidInput(
            f"inputFilename {name!r}: its extension says the format: .csv (or .tsv, .jsonl, .ndjson, .json)",
            code="INVALID_FILENAME",
        ) from None


def _parent(service: BatchService, account: Account, request: UploadRequest, batch_type: str) -> int | None:
    """The invoice batch a line-item file belongs to (other files have none)."""
    named = request.parent_id is not None or request.parent_job_id is not None
    if batch_type != LINE_ITEMS:
        if named:
            raise InvalidInput(
                "only an Invoice Line Item file names a parentBatchProcess", code="UNEXPECTED_PARENT"
            )
        return None
    if not named:
        raise InvalidInput(
            "an Invoice Line Item file names its invoice batch by parentBatchProcess "
            "or parentBatchProcessJobId",
            code="PARENT_REQUIRED",
        )
    parent = _find(service, account, request.parent_id, request.parent_job_id)
    if parent.type != INVOICES:
        raise InvalidInput(f"batch process {parent.id} is not an Invoice batch", code="NOT_AN_INVOICE_BATCH")
    return parent.id


def _create_with_upload(service: BatchService, account: Account, spec: NewBatch, name: str) -> Batch:
    """A batch process in Draft that expects file `name` at an upload URL, made with the URL's
    checks in one transaction (a URL refused leaves none behind). The same request again (its
    jobId and body) answers the batch process it made, while it is Draft, for a new uploadUrl."""
    try:
        batch, _created, _upload = service.create_with_upload(account, spec, name)
    except JobIdConflict:
        raise _job_id_taken(service, account, spec, "made by another request") from None
    except Conflict as exc:
        raise _upload_refused(service, account, spec, exc) from None
    return batch


def _upload_refused(service: BatchService, account: Account, spec: NewBatch, exc: Conflict) -> LoadbayError:
    """The core's refusal of an S3FileUpload in eBill's words."""
    if isinstance(exc, ParentNotOpen):
        parent = _by_id(service, account, exc.parent_id)
        return Conflict(
            f"{_named(parent)} is {_status(parent)[0]}: line-item files join an invoice batch "
            "process while it is Draft; send them before its BatchFinalize",
            code="PARENT_NOT_DRAFT",
        )
    if exc.code == "BATCH_NOT_OPEN" and spec.job_id is not None:  # the one this jobId made before
        return _job_id_taken(service, account, spec, "which was finalized and takes no file any more")
    return exc


def _job_id_taken(service: BatchService, account: Account, spec: NewBatch, how: str) -> JobIdConflict:
    found = service.list_batches(account, {"job_id": spec.job_id}, None, 1)
    named = _named(found[0]) if found and found[0].type in _OPERATIONS else "another batch of this account"
    return JobIdConflict(f"jobId {spec.job_id!r} already names {named}, {how}; use a new jobId")


def _named(batch: Batch) -> str:
    """A batch process as an eBill client knows it."""
    job_id = f" (jobId {batch.job_id!r})" if batch.job_id is not None else ""
    return f"batch process {batch.id}{job_id}"


def _create(service: BatchService, account: Account, spec: NewBatch, *, submit: bool = False) -> Batch:
    try:
        batch, created = service.create(account, spec, submit=submit)
    except JobIdConflict:
        raise _job_id_taken(service, account, spec, "made by another request") from None
    if not created:
        raise _job_id_taken(service, account, spec, "which is not run twice")
    return batch


def _finalize(service: BatchService, account: Account, root: Element) -> Element:
    """BatchFinalize: submit the batch process (an invoice batch with its line-item files)."""
    ref = _elements(root, BatchRef)
    batch = _find(service, account, ref.id, ref.job_id)
    if batch.parent_id is not None:
        raise Conflict(
            f"batch process {batch.id} belongs to batch process {batch.parent_id}; finalize that one",
            code="FINALIZE_PARENT",
        )
    try:
        submitted = service.submit(account, batch.id)
    except Conflict as exc:
        raise _finalize_refused(service, account, batch, exc) from None
    return _full(service, account, submitted)


def _finalize_refused(service: BatchService, account: Account, batch: Batch, exc: Conflict) -> LoadbayError:
    """A file never uploaded, in eBill's words: the batch process (the invoice's, or one of its
    line-item files) named by id and jobId, and what an eBill client can do about it."""
    if not isinstance(exc, NoData) or exc.batch_id is None:
        return exc
    missing = batch if exc.batch_id == batch.id else _by_id(service, account, exc.batch_id)
    again = (
        "send its S3FileUpload again (the same jobId and body) for a new one"
        if missing.job_id is not None
        else "make a new batch process for the file (it has no jobId to ask again by)"
    )
    finalize = "it" if missing.id == batch.id else _named(batch)
    return Conflict(
        f"{_named(missing)} has no file {missing.description!r} yet: nothing was PUT to its "
        f"uploadUrl; PUT the file there and finalize {finalize} again (if the uploadUrl expired, {again})",
        code=exc.code,
    )


Mode = Callable[[BatchService, Account, Element], Element]
_POST_MODES: dict[str, Mode] = {"BatchInit": _init, "S3FileUpload": _file_upload}
_PUT_MODES: dict[str, Mode] = {"BatchFinalize": _finalize}


def _mode(modes: Mapping[str, Mode], mode: str, method: str) -> Mode:
    for name, action in modes.items():
        if name.lower() == mode.strip().lower():
            return action
    raise InvalidInput(f"unknown mode {mode!r} for {method}; use {' or '.join(modes)}", code="UNKNOWN_MODE")


# rendering ------------------------------------------------------------------------------


def _add(node: Element, values: Mapping[str, Any]) -> None:
    for tag, value in values.items():
        SubElement(node, tag).text = "" if value is None else str(value)


def _summary(batch: Batch, tag: str = "batchProcess") -> Element:
    """The fields every batch process node has, in the seed's order."""
    operation, sub_operation = _OPERATIONS[batch.type]
    sub_operation = batch.options.get(SENT_AS, sub_operation)  # as the client wrote it, if it did
    word, message = _status(batch)
    counts = batch.counts
    failed = counts.invalid + counts.failed + counts.unprocessed
    node = Element(tag)
    _add(
        node,
        {
            "id": batch.id,
            "jobId": batch.job_id,
            "status": word,
            "operation": operation,
            "subOperation": sub_operation,
            "successCount": counts.succeeded,
            "successMessage": message,
            "errorMessage": _error_message(batch),
            "failCount": failed,
        },
    )
    return node


def _status(batch: Batch) -> tuple[str, str]:
    """The eBill status word and successMessage."""
    if batch.status in _STATUSES:
        return _STATUSES[batch.status]
    counts = batch.counts
    failed = counts.invalid + counts.failed + counts.unprocessed
    word = _OUTCOMES.get(batch.outcome or "", "Failed") if batch.status == Status.COMPLETED else "Failed"
    return word, f"Success, {counts.succeeded} records successfully processed, {failed} failed"


def _error_message(batch: Batch) -> str:
    if batch.status == Status.ERROR:
        return f"{batch.error_code}: {batch.error_message}"
    if batch.status in (Status.CANCELLED, Status.CLEARED):
        return f"the batch process was {batch.status}"
    return ""


def _download_url(service: BatchService, account: Account, batch: Batch) -> str:
    """The result file's signed URL once the batch is final (the seed's statuses 3-5), else ""
    (and "" while a cancelled batch's unread records are being read, and once its files were
    removed at the end of their retention)."""
    if not batch.final or batch.unread_pending:
        return ""
    try:
        return _ebill_url(service.result_url(account, batch.id))
    except Gone:
        return ""


def _with_download(service: BatchService, account: Account, batch: Batch) -> Element:
    node = _summary(batch)
    _add(node, {"downloadUrl": _download_url(service, account, batch)})
    return node


def _full(service: BatchService, account: Account, batch: Batch) -> Element:
    """A batch process with its children: a carry-forward's as in BatchInit's answer,
    any other's (line-item files) as <child><batchProcess>…</batchProcess>…</child>."""
    children = service.children(account, batch.id)
    node = _with_download(service, account, _as_family(batch, children))
    if batch.type == CARRY_FORWARD_TYPE:
        node.append(_carried(service, account, children, urls=True))
    elif children:
        child = SubElement(node, "child")
        child.extend(_with_download(service, account, c) for c in children)
    return node


def _as_family(batch: Batch, children: Iterable[Batch]) -> Batch:
    """The batch as eBill shows a parent: Processing (no downloadUrl) until its children are
    final too. The core validates children only once their parent is final, but eBill's
    BatchFinalize processes "the Invoice file and all the ITM files" as one batch process,
    whose final status (and downloadUrl) says they are all done."""
    if batch.final and not all(child.final for child in children):
        return replace(batch, status=Status.PROCESSING)
    return batch


def _carried(service: BatchService, account: Account, children: Iterable[Batch], *, urls: bool) -> Element:
    """<child> with one node per kind of document, empty for a kind not carried forward."""
    by_type = {c.type: c for c in children}
    node = Element("child")
    for core, (tag, _sub) in CARRIED.items():
        batch = by_type.get(core)
        if batch is None:
            empty = SubElement(node, tag)
            _add(empty, dict.fromkeys(_SUMMARY))
            continue
        found = _summary(batch, tag)
        if urls:
            _add(found, {"downloadUrl": _download_url(service, account, batch)})
        node.append(found)
    return node


def _xml(node: Element, status: int = 200) -> Response:
    indent(node)
    text = tostring(node, encoding="unicode", short_empty_elements=False)
    return Response(text, status_code=status, media_type="application/xml")


# signed URLs: uploadUrl and downloadUrl ----------------------------------------------------

_CORE_BLOBS = "/v1/blobs/"  # where the core's signed URLs point on the local store
FILES = "/files"  # where eBill's point: the same objects and signatures, taken as S3 takes them


def _ebill_url(signed_url: str) -> str:
    """A signed URL of the core's as eBill hands it out. A presigned URL of the store (S3)
    is handed out as it is; one of loadbay's own (the local store) keeps its object key,
    expiry and signature (which sign the method, the key and the expiry, not the path) under
    /compat/ebill/files/, where eBill's routes serve them."""
    head, found, key_and_query = signed_url.rpartition(_CORE_BLOBS)
    if not found:
        return signed_url
    return f"{head}{PREFIX}{FILES}/{key_and_query}"


# routes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _XmlBody:
    """The XML body, as the route read it (loadbay.http.bodies: within LOADBAY_MAX_BODY_BYTES),
    and the charset its Content-Type names."""

    data: bytes
    charset: str | None


async def _body(request: Request) -> _XmlBody:
    return _XmlBody(await request.body(), charset_of(request.headers.get("content-type")))


Caller = Annotated[Account, Depends(account_of)]
Service = Annotated[BatchService, Depends(the_service)]
Body = Annotated[_XmlBody, Depends(_body)]

router = APIRouter(tags=["ebill"], route_class=LimitedRoute)


@router.post(PATH, response_class=Response)
def post_batch_process(account: Caller, service: Service, body: Body, mode: str = "") -> Response:
    """mode=BatchInit (carry forward) or mode=S3FileUpload (a Draft batch and its uploadUrl)."""
    action = _mode(_POST_MODES, mode, "POST")
    return _xml(action(service, account, _root(body)))


@router.put(PATH, response_class=Response)
def put_batch_process(account: Caller, service: Service, body: Body, mode: str = "") -> Response:
    """mode=BatchFinalize: submit the batch process named by id and/or jobId."""
    action = _mode(_PUT_MODES, mode, "PUT")
    return _xml(action(service, account, _root(body)))


@router.get(PATH, response_class=Response)
def get_batch_process(
    account: Caller,
    service: Service,
    batch_id: Annotated[str | None, Query(alias="id")] = None,
    job_id: Annotated[str | None, Query(alias="jobId")] = None,
) -> Response:
    """The batch process named by ?id= or ?jobId= (or both), with its children."""
    ref = _request({"id": batch_id, "jobId": job_id}, BatchRef)
    return _xml(_full(service, account, _find(service, account, ref.id, ref.job_id)))


@router.put(FILES + "/{key:path}", response_class=Response, tags=["signed"])
@streams_files
@signed
async def put_file(
    key: str, request: Request, service: Service, expires: str = "", signature: str = ""
) -> Response:
    """The uploadUrl: the file, as S3 takes it at a presigned URL. The signature is the
    credential (no API key); any or no Content-Type, since the file's format is the one
    inputFilename named (CSV for the seed's .csv files); 200 with an empty body."""
    upload = await run_in_threadpool(service.start_signed_upload, key, expires, signature, None)
    await receive(upload, request)
    return Response(status_code=200)


@router.get(FILES + "/{key:path}", response_class=StreamingResponse, tags=["signed"])
@signed
def get_file(key: str, service: Service, expires: str = "", signature: str = "") -> StreamingResponse:
    """The downloadUrl (on the local store): the batch's result file, as S3 answers a
    presigned GET. The signature is the credential (no API key)."""
    batch_id, parts = service.signed_results(key, expires, signature)
    headers = {"Content-Disposition": f'attachment; filename="batch-{batch_id}-results.csv"'}
    body = (part.encode() for part in parts)
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=headers)


# errors ------------------------------------------------------------------------------------


def _error(status: int, code: str, message: str) -> Response:
    node = Element("batchProcess")
    _add(node, {"errorCode": code, "errorMessage": message})
    return _xml(node, status)


async def _loadbay_error(_request: Request, exc: LoadbayError) -> Response:
    return _error(http_status(exc), exc.code, exc.message)


async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return _error(400, "INVALID_REQUEST", problems)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    return _error(exc.status_code, code, str(exc.detail))


def build(service: BatchService) -> FastAPI:
    app = profile_app("eBill", service, key_style="`X-Api-Key: KEY` or `Authorization: Basic KEY`")
    app.include_router(router)
    install_error_handlers(
        app, loadbay_error=_loadbay_error, http_error=_http_error, invalid_request=_validation_error
    )
    return app
