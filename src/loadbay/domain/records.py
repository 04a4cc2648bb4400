"""Records as they move through the pipeline, and their outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "Action",
    "Applied",
    "FieldError",
    "OutcomeStatus",
    "RecordOutcome",
    "RecordView",
    "StagedRecord",
    "error_row",
]


class OutcomeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    INVALID = "invalid"
    FAILED = "failed"
    UNPROCESSED = "unprocessed"


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class FieldError:
    """Why one field of one record was refused: a stable code and a message."""

    code: str
    message: str
    field: str | None = None


def error_row(index: int, external_id: str | None, error: FieldError) -> dict[str, Any]:
    """One row of a batch's errors table: a record's error, its id and field cut to fit."""
    return {
        "record_index": index,
        "external_id": external_id[:300] if external_id else external_id,
        "field": error.field[:200] if error.field else error.field,
        "code": error.code,
        "message": error.message,
    }


@dataclass(frozen=True, slots=True)
class StagedRecord:
    """One record after validation, as it waits in a chunk.

    `raw` is the record as read (echoed in the result file); `data` the
    validated, JSON-ready values, or None when `errors` says why not.
    """

    index: int
    external_id: str | None
    raw: dict[str, Any]
    data: dict[str, Any] | None
    errors: tuple[FieldError, ...] = ()

    def to_json(self) -> list[Any]:
        """The record as a chunk payload keeps it. Validated values that are the values read,
        all text and in the same order (most records of a CSV file), are written as
        `SAME_AS_RAW`: a payload is then about half as long, and as much faster to write and read."""
        errors = [[e.code, e.message, e.field] for e in self.errors]
        data = self.data
        if data is not None and _same_text(data, self.raw):
            return [self.index, self.external_id, self.raw, SAME_AS_RAW, errors]
        return [self.index, self.external_id, self.raw, data, errors]

    @classmethod
    def from_json(cls, item: Sequence[Any]) -> StagedRecord:
        index, external_id, raw, data, errors = item
        if data == SAME_AS_RAW:
            data = dict(raw)
        return cls(index, external_id, raw, data, tuple(FieldError(*e) for e in errors))


SAME_AS_RAW = 1  # (a record's data is a JSON object or null: a number cannot be mistaken for it)


def _same_text(data: dict[str, Any], raw: dict[str, Any]) -> bool:
    """Whether `data` holds exactly `raw`'s items, in its order, every value text."""
    return data == raw and all(v.__class__ is str for v in data.values()) and list(data) == list(raw)


@dataclass(frozen=True, slots=True)
class Applied:
    """What a batch type's `apply` did with one valid record."""

    index: int
    action: Action | None = None
    entity_id: str | None = None
    error: FieldError | None = None
    note: FieldError | None = None  # why a succeeded record was skipped (e.g. STALE_STATUS)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """The one outcome of one record: what the result file says about it."""

    status: OutcomeStatus
    action: Action | None = None
    entity_id: str | None = None
    errors: tuple[FieldError, ...] = ()

    def to_json(self) -> list[Any]:
        action = self.action.value if self.action else None
        return [
            self.status.value,
            action,
            self.entity_id,
            [[e.code, e.message, e.field] for e in self.errors],
        ]

    @classmethod
    def from_json(cls, item: list[Any]) -> RecordOutcome:
        status, action, entity_id, errors = item
        return cls(
            OutcomeStatus(status),
            Action(action) if action else None,
            entity_id,
            tuple(FieldError(*e) for e in errors),
        )


@dataclass(frozen=True, slots=True)
class RecordView:
    """One record as a client may look at it: what was sent and where it stands.

    `status` is the outcome once the record has one; before that `valid` or
    `invalid` (validated, not yet applied)."""

    index: int
    external_id: str | None
    raw: dict[str, Any]
    status: str
    action: Action | None = None
    entity_id: str | None = None
    errors: tuple[FieldError, ...] = ()
