"""Accounts and batches as the core sees them: immutable snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loadbay.domain.lifecycle import FINAL, Status

__all__ = [
    "Account",
    "Batch",
    "BatchEvent",
    "BatchInput",
    "Counts",
    "ErrorExample",
    "ErrorGroup",
    "ErrorRow",
    "NewBatch",
    "Timeline",
]


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    test: bool


@dataclass(frozen=True, slots=True)
class Counts:
    total: int = 0
    valid: int = 0
    invalid: int = 0
    succeeded: int = 0
    failed: int = 0
    unprocessed: int = 0

    @property
    def done(self) -> int:
        """Records that have their final outcome."""
        return self.invalid + self.succeeded + self.failed + self.unprocessed


@dataclass(frozen=True, slots=True)
class NewBatch:
    """What a client asks for when it creates a batch (the job_id fingerprint covers it)."""

    type: str
    job_id: str | None = None
    description: str | None = None
    test: bool | None = None
    parent_id: int | None = None
    process: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)
    source_url: str | None = None
    page_size: int | None = None
    total_items: int | None = None
    # the account may not have another submitted, unfinished batch of these types when this
    # one is created (checked in the transaction that creates it): BatchInProgress otherwise
    exclusive_of: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Batch:
    id: int
    account_id: int
    ref: str
    type: str
    job_id: str | None
    description: str | None
    test: bool
    parent_id: int | None
    process_mode: str
    options: dict[str, Any]
    source_url: str | None
    page_size: int | None
    total_items: int | None
    status: Status
    outcome: str | None
    error_code: str | None
    error_message: str | None
    warnings: list[str]
    counts: Counts
    created_at: datetime
    submitted_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    apply_early: bool = False  # chunks are applied while the batch is still validated
    staged_attempt: int = 0  # the last validation attempt that staged a chunk (apply_early)
    origin: str | None = None  # the API that created it: "api" or a profile's name (None: not recorded)
    results_at: datetime | None = None  # its result files are in the blob store (from then)
    files_removed_at: datetime | None = None  # its files were removed: LOADBAY_RETENTION_DAYS ran out
    retry_of: int | None = None  # the batch whose records it sends again (POST /v1/batches/{id}/retry)
    retry_outcomes: str | None = None  # the outcomes it sends again, comma-separated (None: the default)
    unread_pending: bool = False  # cancelled before all its data was read: the rest is being read

    @property
    def final(self) -> bool:
        return self.status in FINAL


@dataclass(frozen=True, slots=True)
class Timeline:
    """When a batch reached each step of its life (None: not yet). The validation steps are
    those of its current attempt: a worker that takes over a batch copies and reads its file
    again, so `copied_at`, `read_at` and `chunked_at` restart with each `started_at`."""

    created_at: datetime
    submitted_at: datetime | None = None
    started_at: datetime | None = None  # a worker took it for validation (the latest attempt)
    copied_at: datetime | None = None  # its source_url file is stored
    read_at: datetime | None = None  # its files were read through
    chunked_at: datetime | None = None  # every record staged: validation is over
    applying_at: datetime | None = None  # applying began (automatically, or on process)
    finished_at: datetime | None = None  # it reached a final status

    @property
    def file_copied(self) -> bool:
        return self.copied_at is not None


@dataclass(frozen=True, slots=True)
class BatchEvent:
    id: int
    at: datetime
    event: str
    status: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class BatchInput:
    """One of a batch's inputs as a client may know it (never where it is stored).

    `kind`: "file" (uploaded), "page" (of JSON items), "fetched" (the copy of its
    source_url) or "retry" (a retry's records, read from the batch it retries). A file
    expected at its upload URL and not received has no size, format or received_at; it is
    `pending` while the batch is open, and not once the batch has left open without it (then
    it is never received)."""

    name: str
    kind: str
    format: str | None
    size: int | None
    pending: bool
    received_at: datetime | None
    item_count: int | None  # a page's items; a file's records once read through; else None


@dataclass(frozen=True, slots=True)
class ErrorRow:
    id: int
    record_index: int
    external_id: str | None
    field: str | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ErrorExample:
    """One record refused with a group's code on its field, and that field's value as read
    (None when the record has no such value, or it was not looked up)."""

    record_index: int
    external_id: str | None
    message: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """A batch's record errors of one code on one field: how many, and the first few."""

    code: str
    field: str | None
    count: int
    examples: tuple[ErrorExample, ...] = ()
