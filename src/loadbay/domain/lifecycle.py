"""The batch lifecycle: statuses, the events that move a batch between them (the one table
of allowed moves), and the milestones it passes inside a status.

Every event and milestone is written to the batch's event log; clients read a batch's
milestones as its `Timeline` (domain.models), never by matching event names."""

from __future__ import annotations

from enum import StrEnum

from loadbay.errors import InvalidTransition

__all__ = ["ACTIVE", "FINAL", "TRANSITIONS", "Event", "Milestone", "Status", "next_status"]


class Status(StrEnum):
    OPEN = "open"
    QUEUED = "queued"
    VALIDATING = "validating"
    VALIDATED = "validated"
    PROCESSING = "processing"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"
    CLEARED = "cleared"


class Event(StrEnum):
    SUBMIT = "submit"
    START = "start"  # a worker took the batch for validation
    VALIDATED = "validated"  # validation done, waiting for an explicit process (manual)
    APPLY = "apply"  # validation done, an automatic batch goes on to be applied
    PROCESS = "process"  # the client asks a validated (two-phase) batch to be applied
    COMPLETE = "complete"  # every record has an outcome
    FAIL = "fail"  # the batch's data could not be read
    CANCEL = "cancel"
    CLEAR = "clear"


class Milestone(StrEnum):
    """Steps a batch takes without changing status (written to its event log like events)."""

    CREATED = "created"  # the batch exists (status open)
    FILE_RECEIVED = "file_received"  # a file was uploaded to it
    ATTACHMENT_RECEIVED = "attachment_received"  # a file its records refer to was uploaded
    PAGE_RECEIVED = "page_received"  # a page of items was stored
    COPIED = "copied"  # validating: the file at its source_url was fetched and stored
    READ = "read"  # validating: its files were read through (apply-early batches apply from here)
    SUMMED = "summed"  # validating: its child batches' shares were summed (ChildTotals types)
    CHUNKED = "chunked"  # validating: every record is staged in chunks; validation is over


S, E = Status, Event

TRANSITIONS: dict[tuple[Status, Event], Status] = {
    (S.OPEN, E.SUBMIT): S.QUEUED,
    (S.QUEUED, E.START): S.VALIDATING,
    (S.VALIDATING, E.START): S.VALIDATING,  # a new worker took over an expired lease
    (S.VALIDATING, E.VALIDATED): S.VALIDATED,
    (S.VALIDATING, E.APPLY): S.PROCESSING,
    (S.VALIDATED, E.PROCESS): S.PROCESSING,
    (S.PROCESSING, E.COMPLETE): S.COMPLETED,
    (S.QUEUED, E.FAIL): S.ERROR,
    (S.VALIDATING, E.FAIL): S.ERROR,
    (S.OPEN, E.CANCEL): S.CANCELLED,
    (S.QUEUED, E.CANCEL): S.CANCELLED,
    (S.VALIDATING, E.CANCEL): S.CANCELLED,
    (S.VALIDATED, E.CANCEL): S.CANCELLED,
    (S.PROCESSING, E.CANCEL): S.CANCELLED,
    (S.OPEN, E.CLEAR): S.CLEARED,
    (S.ERROR, E.CLEAR): S.CLEARED,
}

FINAL = frozenset({S.COMPLETED, S.ERROR, S.CANCELLED, S.CLEARED})
ACTIVE = frozenset({S.QUEUED, S.VALIDATING, S.VALIDATED, S.PROCESSING})


def next_status(current: Status | str, event: Event) -> Status:
    """The status `event` leads to from `current`, or InvalidTransition."""
    try:
        return TRANSITIONS[(Status(current), event)]
    except KeyError:
        allowed = sorted(e.value for (s, e) in TRANSITIONS if s == current)
        raise InvalidTransition(
            f"cannot {event.value} a batch that is {current}"
            + (f" (allowed now: {', '.join(allowed)})" if allowed else "")
        ) from None
