"""A batch's timeline: when it reached each step, read from its event log.

Profiles and the dashboard ask for this instead of reading events: the log's event names
are the core's to change."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from loadbay.domain.lifecycle import Event, Milestone
from loadbay.domain.models import Batch, BatchEvent, Timeline

__all__ = ["timeline"]

# steps that a new validation attempt (Event.START) does again
_ATTEMPT_STEPS = ("copied_at", "read_at", "chunked_at")

_FIELDS: dict[str, str] = {
    Event.SUBMIT: "submitted_at",
    Event.START: "started_at",
    Milestone.COPIED: "copied_at",
    Milestone.READ: "read_at",
    Milestone.CHUNKED: "chunked_at",
    Event.APPLY: "applying_at",
    Event.PROCESS: "applying_at",
}


def timeline(batch: Batch, events: Iterable[BatchEvent]) -> Timeline:
    """The batch's timeline from its events (in the order they were written).

    A batch applied while it is validated (apply_early) keeps the steps of the attempt that
    read its files through: every later attempt resumes from the copy that attempt read."""
    steps: dict[str, datetime | None] = {}
    for event in events:
        field = _FIELDS.get(event.event)
        if field is None:
            continue
        if event.event == Event.START and not batch.apply_early:
            steps.update(dict.fromkeys(_ATTEMPT_STEPS))
        steps[field] = event.at
    steps["submitted_at"] = batch.submitted_at  # the time clients were told
    return Timeline(created_at=batch.created_at, finished_at=batch.finished_at, **steps)
