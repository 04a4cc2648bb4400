"""Mail record type (TYPES.md, mail): `mail.job`, one per `<job>` of a Click2Mail batch.

A mail batch has one attachment, `document`: the PDF its jobs print from. Its page
count (read with pypdf when it arrives) is what the page-range rule checks. Each
record is a job: a page range of that PDF, print options, a return address and
recipients. Jobs have no id of their own: a job is known by its position in the
batch (`job-<n>`, from 1), which the core keeps as the record index.

Applying a chunk creates one `mail_jobs` row per valid job; its id is the entity id.
A job's status is one of:

- `Queued`: a live account's job, accepted for printing and mailing; once tracking
  events are loaded (`loadbay tracking load`), the status of its newest event
  (for example `Mailed`, `In Transit`, `Delivered`);
- `Processed`: a test account's job, accepted but never printed, mailed or tracked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pypdf import PdfReader
from sqlalchemy import Connection, insert, select

from loadbay.core.intake import ATTACHMENTS
from loadbay.core.types import ApplyContext, BatchType, DocsPage
from loadbay.db.tables import mail_jobs
from loadbay.domain.models import Batch
from loadbay.domain.records import Action, Applied, FieldError, StagedRecord
from loadbay.errors import InvalidInput
from loadbay.types.numbers import Integer

__all__ = [
    "DOCUMENT",
    "JOB_KEY",
    "LIVE_STATUS",
    "TEST_STATUS",
    "Address",
    "MailJob",
    "MailJobRecord",
    "MailJobType",
    "PrintProductionOptions",
    "jobs_page",
    "pdf_pages",
]

DOCUMENT = "document"
JOB_KEY = "job-{n}"  # a job's name, by its position in the batch from 1, as Click2Mail names it
LIVE_STATUS = "Queued"
TEST_STATUS = "Processed"
_PDF_MAGIC = b"%PDF-"


def _blank_is_absent(value: Any) -> Any:
    """An empty or all-blank element says nothing: treat it as absent."""
    return None if isinstance(value, str) and not value.strip() else value


Line = Annotated[Annotated[str, Field(max_length=100)] | None, BeforeValidator(_blank_is_absent)]
Short = Annotated[Annotated[str, Field(max_length=40)] | None, BeforeValidator(_blank_is_absent)]
_CONFIG = ConfigDict(str_strip_whitespace=True, extra="ignore", coerce_numbers_to_str=True)


class Address(BaseModel):
    """A recipient or return address (`name` or `organization` names it). Field names are
    the wire's own (camelCase), as in every `<job>`."""

    model_config = _CONFIG

    name: Line = None
    organization: Line = None
    address1: Line = None
    address2: Line = None
    address3: Line = None
    city: Line = None
    state: Line = None
    postalCode: Short = None
    country: Line = None

    def missing(self) -> list[str]:
        """What a mailable address lacks: name or organization, address1, city, postalCode."""
        lacks = [] if self.name or self.organization else ["name or organization"]
        return lacks + [f for f in ("address1", "city", "postalCode") if not getattr(self, f)]


class PrintProductionOptions(BaseModel):
    """How the job is printed and mailed, in Click2Mail's own words (kept as given)."""

    model_config = _CONFIG

    documentClass: Line = None
    layout: Line = None
    productionTime: Line = None
    envelope: Line = None
    color: Line = None
    paperType: Line = None
    printOption: Line = None
    mailClass: Line = None


class MailJobRecord(BaseModel):
    """One `<job>`: pages `startingPage`..`endingPage` of the batch's PDF, to each recipient."""

    model_config = ConfigDict(extra="ignore")

    startingPage: Integer
    endingPage: Integer
    printProductionOptions: PrintProductionOptions | None = None
    returnAddress: Address | None = None
    recipients: list[Address] = Field(default_factory=list, validate_default=True)

    @field_validator("startingPage")
    @classmethod
    def _first_page(cls, value: int) -> int:
        if value < 1:
            raise _out_of_document(f"page {value} is outside the document: pages count from 1")
        return value

    @field_validator("endingPage")
    @classmethod
    def _last_page(cls, value: int, info: ValidationInfo) -> int:
        start = info.data.get("startingPage")
        if start is not None and value < start:
            raise _out_of_document(f"the page range {start}-{value} is reversed")
        return value

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: list[Address]) -> list[Address]:
        if not value:
            raise PydanticCustomError("NO_RECIPIENTS", "the job has no recipients")
        lacking = [
            f"recipient {n} lacks {', '.join(a.missing())}" for n, a in enumerate(value, 1) if a.missing()
        ]
        if lacking:
            raise PydanticCustomError("INCOMPLETE_ADDRESS", "{why}", {"why": "; ".join(lacking)})
        return value


def _out_of_document(message: str) -> PydanticCustomError:
    return PydanticCustomError("PAGE_RANGE_OUT_OF_DOCUMENT", "{why}", {"why": message})


class MailJobType(BatchType):
    """Mail jobs: pages of the batch's PDF, printed and mailed to each job's recipients."""

    name = "mail.job"
    key = "position"
    model = MailJobRecord
    description = (
        "Mail jobs (Click2Mail batches): a page range of the batch's PDF (its `document` "
        "attachment), print options and recipients. Jobs are known by position (job-<n>)."
    )
    attachments = {DOCUMENT: "the PDF the jobs print from"}
    named_by_position = JOB_KEY
    docs = DocsPage(
        "/compat/click2mail/docs",
        "Click2Mail API reference",
        "Mail jobs print from their batch's PDF, so they are sent through the Click2Mail API, not "
        "from this dashboard: a new Click2Mail batch takes the PDF and a batch XML of the jobs (to "
        "send refused jobs again, that XML with them fixed).",
    )
    # Its check reads only the PDF's page count, which applying does not change; jobs are
    # still made only once the whole manifest is validated, as before this was declared.
    applies_while_validating = False

    def key_name(self) -> str | None:
        return None  # a job has no key of its own: it is known by its position

    def external_id(self, raw: Mapping[str, Any]) -> str | None:
        return None  # a job has no id of its own; its position is the record index

    def record_key(self, data: Mapping[str, Any]) -> str | None:
        return None  # positions never repeat, so there is nothing to find duplicates of

    def inspect_attachment(self, name: str, stream: BinaryIO) -> dict[str, Any]:
        return {"pages": pdf_pages(stream)}

    def check(
        self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
    ) -> list[StagedRecord]:
        pages = document_pages(ctx.options)
        return [_within(record, pages) for record in records]

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        now = datetime.now(UTC)
        rows = [_row(ctx, record, now) for record in records]
        statement = insert(mail_jobs).returning(mail_jobs.c.record_index, mail_jobs.c.id)
        ids = {index: job_id for index, job_id in conn.execute(statement, rows)}
        return [Applied(r.index, Action.CREATED, str(ids[r.index])) for r in records]


def pdf_pages(stream: BinaryIO) -> int:
    """The page count of the PDF in `stream`, or InvalidInput (INVALID_PDF) saying why not."""
    if _PDF_MAGIC not in stream.read(1024):
        raise InvalidInput("the body is not a PDF: it lacks the %PDF- header", code="INVALID_PDF")
    stream.seek(0)
    try:
        pages = len(PdfReader(stream).pages)
    except Exception as exc:  # pypdf raises many kinds of error on a damaged file
        raise InvalidInput(f"the PDF cannot be read: {exc}", code="INVALID_PDF") from exc
    if pages == 0:
        raise InvalidInput("the PDF has no pages", code="INVALID_PDF")
    return pages


def document_pages(options: Mapping[str, Any]) -> int:
    """The page count of the batch's document, as its attachment's inspection found (0: none)."""
    attachments = options.get(ATTACHMENTS) or {}
    pages = (attachments.get(DOCUMENT) or {}).get("pages")
    return pages if isinstance(pages, int) else 0


def _within(record: StagedRecord, pages: int) -> StagedRecord:
    if record.data is None or record.data["endingPage"] <= pages:
        return record
    start, end = record.data["startingPage"], record.data["endingPage"]
    message = f"pages {start}-{end} are outside the document, which has {pages} page(s)"
    error = FieldError("PAGE_RANGE_OUT_OF_DOCUMENT", message, "endingPage")
    return replace(record, data=None, errors=(error,))


def _row(ctx: ApplyContext, record: StagedRecord, now: datetime) -> dict[str, Any]:
    assert record.data is not None
    return {
        "account_id": ctx.account_id,
        "batch_id": ctx.batch_id,
        "record_index": record.index,
        "status": TEST_STATUS if ctx.test else LIVE_STATUS,
        "starting_page": record.data["startingPage"],
        "ending_page": record.data["endingPage"],
        "data": json.dumps(record.data, sort_keys=True),
        "created_at": now,
        "updated_at": now,
    }


# reads (what the Click2Mail profile shows) ---------------------------------


@dataclass(frozen=True, slots=True)
class MailJob:
    """A created mail job: `position` is its place in the batch, from 1 (`job-<n>`)."""

    id: int
    position: int
    status: str
    starting_page: int
    ending_page: int
    recipients: int

    @property
    def key(self) -> str:
        return JOB_KEY.format(n=self.position)


def jobs_page(conn: Connection, batch: Batch, after_position: int, limit: int) -> list[MailJob]:
    """The batch's created jobs after `after_position`, in batch order."""
    c = mail_jobs.c
    query = (
        select(c.id, c.record_index, c.status, c.starting_page, c.ending_page, c.data)
        .where(c.batch_id == batch.id, c.record_index >= after_position)
        .order_by(c.record_index)
        .limit(limit)
    )
    return [_job(row) for row in conn.execute(query)]


def _job(row: Any) -> MailJob:
    recipients = len(json.loads(row.data).get("recipients", []))
    return MailJob(row.id, row.record_index + 1, row.status, row.starting_page, row.ending_page, recipients)
