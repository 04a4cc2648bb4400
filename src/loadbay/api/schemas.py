"""The native API's JSON shapes (requests and responses)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from loadbay.core.models import Batch, BatchEvent, ErrorRow, NewBatch
from loadbay.readers import unstorable

__all__ = [
    "BatchOut",
    "CreateBatch",
    "ErrorOut",
    "EventOut",
    "Page",
    "Text",
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
    options: Annotated[dict[str, Any], AfterValidator(_storable)] = Field(default_factory=dict)
    source_url: Text | None = Field(default=None, description="http(s) URL the server fetches")
    page_size: int | None = Field(default=None, ge=1, le=2**31 - 1)
    total_items: int | None = Field(default=None, ge=0, le=2**63 - 1)
    items: list[Any] | None = Field(default=None, description="Page 0 of JSON items, inline")
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


class ProblemOut(BaseModel):
    code: str
    message: str


class BatchOut(BaseModel):
    id: int
    type: str
    status: str
    outcome: str | None
    job_id: str | None
    description: str | None
    test: bool
    parent_id: int | None
    process: str
    options: dict[str, Any]
    source_url: str | None
    page_size: int | None
    total_items: int | None
    counts: CountsOut
    progress: float = Field(description="Share of records with a final outcome, 0..1")
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
    def of(cls, batch: Batch, upload: UploadUrlOut | None = None) -> BatchOut:
        counts = batch.counts
        progress = 1.0 if batch.final else (counts.done / counts.total if counts.total else 0.0)
        error = (
            ProblemOut(code=batch.error_code, message=batch.error_message or "") if batch.error_code else None
        )
        return cls(
            id=batch.id,
            type=batch.type,
            status=batch.status.value,
            outcome=batch.outcome,
            job_id=batch.job_id,
            description=batch.description,
            test=batch.test,
            parent_id=batch.parent_id,
            process=batch.process_mode,
            options=batch.options,
            source_url=batch.source_url,
            page_size=batch.page_size,
            total_items=batch.total_items,
            counts=CountsOut(**asdict(counts)),
            progress=round(progress, 4),
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


class EventOut(BaseModel):
    at: datetime
    event: str
    status: str
    detail: str | None

    @classmethod
    def of(cls, event: BatchEvent) -> EventOut:
        return cls(at=event.at, event=event.event, status=event.status, detail=event.detail)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = None
