"""The native API's JSON shapes (requests and responses)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from loadbay.core.progress import Progress
from loadbay.domain.models import Account, Batch, BatchEvent, BatchInput, ErrorGroup, ErrorRow, NewBatch
from loadbay.readers import unstorable

__all__ = [
    "CREATE_EXAMPLES",
    "FILE_EXAMPLES",
    "PAGE_EXAMPLES",
    "PAGE_SCHEMA",
    "RETRY_EXAMPLES",
    "UPLOAD_URL_EXAMPLES",
    "AccountOut",
    "BatchOut",
    "CreateBatch",
    "ErrorOut",
    "ErrorSummaryOut",
    "EventOut",
    "InputOut",
    "Page",
    "RetryBatch",
    "StoredFileOut",
    "Text",
    "TypeOut",
    "UploadUrlOut",
    "UploadUrlRequest",
]

V = TypeVar("V")


def _storable(value: V) -> V:
    """Refuse text no database column can hold (U+0000 on PostgreSQL, unpaired surrogates anywhere)."""
    if (found := unstorable(value)) is not None:
        raise ValueError(f"holds {found}, which text cannot hold")
    return value


Text = Annotated[str, AfterValidator(_storable)]
Name = Annotated[str, Field(max_length=200), AfterValidator(_storable)]


class CreateBatch(BaseModel):
    """Body of `POST /v1/batches`."""

    model_config = ConfigDict(extra="forbid")

    type: Text = Field(description="A registered batch type, e.g. billing.customer")
    job_id: Name | None = Field(default=None, description="Idempotency key")
    description: Text | None = None
    test: bool | None = Field(default=None, description="Must match the key's account when given")
    parent_id: int | None = None
    process: Literal["auto", "manual"] = "auto"
    options: Annotated[dict[str, Any], AfterValidator(_storable)] = Field(
        default_factory=dict,
        description="The options the type takes: `csv_delimiter` and `unknown_columns` for a type that "
        "reads files, a carry-forward's flags; any other is a 400 `UNKNOWN_OPTION`",
    )
    source_url: Text | None = Field(default=None, description="http(s) URL the server fetches")
    page_size: int | None = Field(default=None, ge=1, le=2**31 - 1)
    total_items: int | None = Field(default=None, ge=0, le=2**63 - 1)
    items: list[Any] | None = Field(
        default=None,
        description="Page 0 of JSON items, inline (not with `source_url` or `upload_url`: a batch takes "
        "pages or files, `MIXED_INPUT`)",
    )
    submit: bool | None = Field(default=None, description="Submit right away (default: only with source_url)")
    upload_url: bool = Field(default=False, description="Answer with a signed upload URL too")
    file_name: Name = Field(default="data", description="Name of the file the upload URL takes")

    def spec(self) -> NewBatch:
        return NewBatch(
            type=self.type,
            job_id=self.job_id,
            description=self.description,
            test=self.test,
            parent_id=self.parent_id,
            process=self.process,
            options=self.options,
            source_url=self.source_url,
            page_size=self.page_size,
            total_items=self.total_items,
        )


class UploadUrlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="data", max_length=200)


class RetryBatch(BaseModel):
    """Body of `POST /v1/batches/{id}/retry` (optional)."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[Literal["succeeded", "invalid", "failed", "unprocessed"]] | None = Field(
        default=None, min_length=1, description="The records that ended so (default: failed and unprocessed)"
    )
    submit: StrictBool = Field(
        default=True, description="Submit the new batch at once (false: leave it open)"
    )


class UploadUrlOut(BaseModel):
    url: str
    method: str
    expires_at: datetime


class CountsOut(BaseModel):
    total: int
    valid: int
    invalid: int
    succeeded: int
    failed: int
    unprocessed: int


class ProgressOut(BaseModel):
    done: int = Field(description="Records with their final outcome")
    total: int | None = Field(
        description="Records in the batch: known once its pages are stored or its files read through "
        "(at the latest when validation ends); null until then"
    )
    fraction: float | None = Field(description="done / total, 0..1; null while the total is unknown")
    rate: float | None = Field(
        description="Records per second over the current stage (validating, or applying); "
        "null while the batch waits or is final"
    )
    eta_seconds: int | None = Field(
        description="Seconds left at that rate; null when not known, 0 once the batch is final"
    )

    @classmethod
    def of(cls, progress: Progress) -> ProgressOut:
        fraction = progress.fraction
        return cls(
            done=progress.done,
            total=progress.total,
            fraction=None if fraction is None else round(fraction, 4),
            rate=progress.rate,
            eta_seconds=progress.eta_seconds,
        )


class ProblemOut(BaseModel):
    code: str
    message: str


class BatchOut(BaseModel):
    id: int
    ref: str = Field(description="The batch's opaque reference (the id profiles with string ids show)")
    type: str
    status: str
    outcome: str | None
    job_id: str | None
    description: str | None
    test: bool
    parent_id: int | None
    origin: str | None = Field(
        description='The API that created it: "api" (this API, the dashboard, the CLI) or an API '
        'profile ("ebill", "fusebill", "centrapay", "alliant", "click2mail"); null for batches '
        "created before loadbay recorded it"
    )
    retry_of: int | None = Field(
        description="The batch whose records this one sends again (POST /v1/batches/{id}/retry)"
    )
    unread_pending: bool = Field(
        description="Cancelled before its data was read through: loadbay reads the rest now, each such "
        "record ending `unprocessed`. Its counts grow until then, and its result file (409 "
        "RESULTS_NOT_READY) and its webhook event come once it is false"
    )
    process: str
    options: dict[str, Any]
    source_url: str | None
    page_size: int | None
    total_items: int | None
    counts: CountsOut
    progress: ProgressOut
    warnings: list[str]
    error: ProblemOut | None
    created_at: datetime
    submitted_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    upload_url: str | None = Field(
        default=None,
        description="Signed URL that takes PUTs of the file until it expires or the batch is submitted",
    )
    upload_url_expires_at: datetime | None = None

    @classmethod
    def of(cls, batch: Batch, progress: Progress, upload: UploadUrlOut | None = None) -> BatchOut:
        counts = batch.counts
        error = (
            ProblemOut(code=batch.error_code, message=batch.error_message or "") if batch.error_code else None
        )
        return cls(
            id=batch.id,
            ref=batch.ref,
            type=batch.type,
            status=batch.status.value,
            outcome=batch.outcome,
            job_id=batch.job_id,
            description=batch.description,
            test=batch.test,
            parent_id=batch.parent_id,
            origin=batch.origin,
            retry_of=batch.retry_of,
            unread_pending=batch.unread_pending,
            process=batch.process_mode,
            options=batch.options,
            source_url=batch.source_url,
            page_size=batch.page_size,
            total_items=batch.total_items,
            counts=CountsOut(**asdict(counts)),
            progress=ProgressOut.of(progress),
            warnings=batch.warnings,
            error=error,
            created_at=batch.created_at,
            submitted_at=batch.submitted_at,
            updated_at=batch.updated_at,
            finished_at=batch.finished_at,
            upload_url=upload.url if upload else None,
            upload_url_expires_at=upload.expires_at if upload else None,
        )


class ErrorOut(BaseModel):
    id: int
    index: int
    external_id: str | None
    field: str | None
    code: str
    message: str

    @classmethod
    def of(cls, row: ErrorRow) -> ErrorOut:
        return cls(
            id=row.id,
            index=row.record_index,
            external_id=row.external_id,
            field=row.field,
            code=row.code,
            message=row.message,
        )


class ExampleOut(BaseModel):
    index: int
    external_id: str | None
    message: str
    value: str | None = Field(description="The field's value in the record as read, when it has one")


class ErrorGroupOut(BaseModel):
    code: str
    field: str | None
    count: int = Field(description="Records refused with this code on this field")
    examples: list[ExampleOut] = Field(description="The first few of them")

    @classmethod
    def of(cls, group: ErrorGroup) -> ErrorGroupOut:
        examples = [
            ExampleOut(index=e.record_index, external_id=e.external_id, message=e.message, value=e.value)
            for e in group.examples
        ]
        return cls(code=group.code, field=group.field, count=group.count, examples=examples)


class ErrorSummaryOut(BaseModel):
    total: int = Field(description="Record errors in all (a record refused on two fields has two)")
    groups: list[ErrorGroupOut] = Field(description="Errors by code and field, the largest groups first")
    not_listed: int = Field(
        description="Record errors in the groups past those listed (50 at most): `GET …/errors` has them"
    )


class AccountOut(BaseModel):
    id: int
    name: str
    test: bool

    @classmethod
    def of(cls, account: Account) -> AccountOut:
        return cls(id=account.id, name=account.name, test=account.test)


class EventOut(BaseModel):
    at: datetime
    event: str
    status: str
    detail: str | None

    @classmethod
    def of(cls, event: BatchEvent) -> EventOut:
        return cls(at=event.at, event=event.event, status=event.status, detail=event.detail)


class InputOut(BaseModel):
    name: str = Field(
        description="The file's name in the batch (`page-000000003` for page 3; `source` for a fetched "
        "copy; `batch-12` for a retry's records, those of batch 12)"
    )
    kind: Literal["file", "page", "fetched", "retry"] = Field(
        description='"file": uploaded (directly or at an upload URL); "page": a page of JSON items; '
        '"fetched": the copy of the batch\'s `source_url`; "retry": a retry\'s records, read from the '
        "batch it retries when the retry is validated (before any page added to it)"
    )
    format: str | None = Field(
        description="How it is read (csv, tsv, jsonl, json, …); null for a file not received and for "
        "a retry's records"
    )
    size: int | None = Field(
        description="Bytes stored (a page: its JSON text; a retry's records: 0, they stay in the batch "
        "they come from); null for a file not received"
    )
    pending: bool = Field(
        description="An upload URL was handed out for this file, loadbay has not received it yet, and "
        "the batch is open: loadbay looks for it when the batch is submitted. On S3 the file goes to "
        "the store straight and is looked for there at submit: it is pending until then. A batch that "
        "left open without it (cancelled) never looks for it: false, with received_at null"
    )
    received_at: datetime | None = Field(
        description="When it was received (sent again under its name: the last time); null for a file "
        "not received: pending, or never received before the batch left open"
    )
    item_count: int | None = Field(
        description="Records it holds: a page's items; a file's records once the batch has read it "
        "through (validation); null until then"
    )

    @classmethod
    def of(cls, found: BatchInput) -> InputOut:
        return cls(
            name=found.name,
            kind=found.kind,
            format=found.format,
            size=found.size,
            pending=found.pending,
            received_at=found.received_at,
            item_count=found.item_count,
        )


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = None


class TypeOut(BaseModel):
    name: str
    key: str | None = Field(
        description="The record's key: its key field (a record's external id), the fields that make "
        'it ("invoice_number + line_number"), or null for records with no key of their own'
    )
    description: str
    columns: list[str] = Field(description="The CSV columns, in template order")
    required: list[str] = Field(description="The columns a CSV must have")
    schema_: dict[str, Any] = Field(alias="schema", description="One record's JSON Schema")


class StoredFileOut(BaseModel):
    ok: bool
    name: str = Field(description="The file's name in the batch")


# Request examples (the OpenAPI document's; Swagger UI offers them in "Try it out") ------

_ADA = {"customer_number": "C1001", "name": "Ada Lovelace", "email": "ada@example.com", "country": "GB"}
_GRACE = {"customer_number": "C1002", "name": "Grace Hopper", "email": "grace@example.com", "country": "US"}

CREATE_EXAMPLES: dict[str, Any] = {
    "file": {
        "summary": "A batch for a file, with a signed upload URL",
        "description": "Then `PUT` the file to `upload_url` (or to `/v1/batches/{id}/data`) and submit.",
        "value": {"type": "billing.customer", "description": "CRM export, April", "upload_url": True},
    },
    "items": {
        "summary": "Records inline, submitted at once",
        "value": {"type": "billing.customer", "items": [_ADA, _GRACE], "submit": True},
    },
    "pages": {
        "summary": "Pages of JSON items to come",
        "description": "Then `PUT /v1/batches/{id}/pages/0`, `…/1` and so on, and submit.",
        "value": {"type": "billing.customer", "page_size": 1000, "total_items": 2500},
    },
    "two-phase": {
        "summary": "Check first, apply on request",
        "description": "The batch waits at `validated` until `POST /v1/batches/{id}/process`.",
        "value": {"type": "billing.payment", "process": "manual", "description": "March payments"},
    },
    "idempotent": {
        "summary": "With a job_id (the same body again answers the same batch)",
        "value": {"type": "billing.customer", "job_id": "crm-export-2026-04"},
    },
}

# A page's body as PUT /v1/batches/{id}/pages/{n} reads it (any other shape is INVALID_PAGE).
PAGE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "array", "description": "The page's items"},
        {
            "type": "object",
            "properties": {"items": {"type": "array", "description": "The page's items"}},
            "required": ["items"],
        },
    ]
}

PAGE_EXAMPLES: dict[str, Any] = {
    "array": {"summary": "A JSON array of items", "value": [_ADA, _GRACE]},
    "object": {"summary": "An object with an `items` array", "value": {"items": [_ADA]}},
}

RETRY_EXAMPLES: dict[str, Any] = {
    "default": {"summary": "The failed and unprocessed records, submitted at once", "value": {}},
    "invalid": {
        "summary": "The invalid records, left open",
        "value": {"outcomes": ["invalid"], "submit": False},
    },
}

UPLOAD_URL_EXAMPLES: dict[str, Any] = {
    "named": {"summary": "For a file of this name", "value": {"name": "customers.csv"}},
}

# An upload's body is a file: one example per format it can be in (Content-Type picks it).
FILE_EXAMPLES: dict[str, str] = {
    "text/csv": "customer_number,name,email,country\nC1001,Ada Lovelace,ada@example.com,GB\n",
    "text/tab-separated-values": "customer_number\tname\tcountry\nC1001\tAda Lovelace\tGB\n",
    "application/x-ndjson": '{"customer_number": "C1001", "name": "Ada Lovelace"}\n',
    "application/json": '[{"customer_number": "C1001", "name": "Ada Lovelace"}]',
}
