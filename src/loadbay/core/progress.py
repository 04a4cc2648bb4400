"""A batch's progress as a client sees it: records done of how many, how fast, how long.

`total` is the number of records in the batch once it is known: the items of its pages as
soon as they are stored, its files' records once they were read through (a batch applied
while it is validated reads them first), and in any case once validation is over. Until
then it is None: a total that grows while the file is read would make any share wrong.

`rate` is records per second over the stage the batch is in (since validation began, or
since applying did), so it is the same on every server that answers; `eta_seconds` is the
records left at that rate. Both are None while the batch waits (open, queued, a two-phase
batch at `validated`) and while a stage has just begun; a final batch has no rate and no
time left (0). A batch that ended in `error` or was cleared has no total.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from loadbay.domain.lifecycle import Event, Milestone, Status
from loadbay.domain.models import Batch

__all__ = ["STAGE_EVENTS", "Progress", "progress"]

# The events whose times start a stage. READ: the batch's files were read through, and an
# apply-early batch's chunks are applied as they are staged from then on.
STAGE_EVENTS = (Event.START.value, Milestone.READ.value, Event.APPLY.value, Event.PROCESS.value)


@dataclass(frozen=True, slots=True)
class Progress:
    done: int  # records with their final outcome
    total: int | None  # records in the batch, None until known
    rate: float | None = None  # records per second over the current stage
    eta_seconds: int | None = None  # time left at that rate

    @property
    def fraction(self) -> float | None:
        """done / total, 0..1; None while the total is unknown."""
        if self.total is None:
            return None
        return min(1.0, self.done / self.total) if self.total else 1.0


def progress(
    batch: Batch, input_total: int | None, stages: Mapping[str, datetime], now: datetime
) -> Progress:
    """The batch's progress, given the records its inputs were counted to hold (None if not
    every input was) and the last time each of STAGE_EVENTS happened to it."""
    counts = batch.counts
    if batch.status in (Status.ERROR, Status.CLEARED):
        return Progress(done=counts.done, total=None)
    if batch.final:
        return Progress(done=counts.done, total=counts.total, eta_seconds=0)
    validated = batch.status in (Status.VALIDATED, Status.PROCESSING)
    total = counts.total if validated else input_total
    if batch.status not in (Status.VALIDATING, Status.PROCESSING):
        return Progress(done=counts.done, total=total)
    moved, left, since = _stage(batch, total, stages)
    rate = _rate(moved, since, now)
    eta = math.ceil(left / rate) if rate and left is not None else None
    return Progress(done=counts.done, total=total, rate=rate, eta_seconds=eta)


def _stage(
    batch: Batch, total: int | None, stages: Mapping[str, datetime]
) -> tuple[int, int | None, datetime | None]:
    """(records the current stage has moved on, records it has left (None: not known yet),
    when it began)."""
    counts = batch.counts
    if batch.apply_early:  # staged and applied at once, since the files were read through
        return counts.done, _left(total, counts.done), stages.get(Milestone.READ) or stages.get(Event.START)
    if batch.status == Status.VALIDATING:  # staged, not applied yet
        return counts.total, _left(total, counts.total), stages.get(Event.START)
    began = [at for at in (stages.get(Event.APPLY), stages.get(Event.PROCESS)) if at is not None]
    return counts.done - counts.invalid, _left(total, counts.done), max(began, default=None)


def _left(total: int | None, moved: int) -> int | None:
    return None if total is None else max(0, total - moved)


def _rate(moved: int, since: datetime | None, now: datetime) -> float | None:
    if since is None:
        return None
    seconds = (now - since).total_seconds()
    if seconds <= 0:
        return None
    return round(moved / seconds, 1)
