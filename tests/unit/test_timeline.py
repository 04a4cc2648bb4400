"""A batch's timeline (core.timeline): validation steps follow the attempt that holds the file
(Centrapay's `copied` status reads `file_copied`), other steps their latest event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loadbay.core.timeline import timeline
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Batch, BatchEvent, Counts

AT = datetime(2026, 11, 23, tzinfo=UTC)
LATER = datetime(2026, 11, 24, tzinfo=UTC)


def batch(*, apply_early: bool) -> Batch:
    return Batch(
        1, 1, "ref", "assets.external_asset", None, None, False, None, "auto", {}, "https://x/a.csv",
        None, None, Status.VALIDATING, None, None, None, [], Counts(), AT, AT, AT, None,
        apply_early=apply_early,
    )  # fmt: skip


def events(*pairs: tuple[str, str | None]) -> list[BatchEvent]:
    return [BatchEvent(i, AT, event, "validating", detail) for i, (event, detail) in enumerate(pairs)]


def _copied(of: Batch, log: list[BatchEvent]) -> bool:
    return timeline(of, log).file_copied


@pytest.mark.parametrize("early", [False, True])
def test_the_first_attempt_is_copied_once_it_stored_the_file(early: bool) -> None:
    # (a batch is marked as applied early only after its file was copied and read through)
    assert not _copied(batch(apply_early=False), events(("start", "attempt 1")))
    stored = events(("start", "attempt 1"), ("copied", "10 bytes from https://x/a.csv"))
    assert _copied(batch(apply_early=early), stored)


def test_a_new_attempt_fetches_the_file_again() -> None:
    again = events(("start", "attempt 1"), ("copied", "10 bytes"), ("start", "attempt 2"))
    assert not _copied(batch(apply_early=False), again)


def test_an_attempt_of_a_batch_applied_early_keeps_the_copy() -> None:
    resumed = events(
        ("start", "attempt 1"), ("copied", "10 bytes"), ("read", "3 records in 1 file read through"),
        ("start", "attempt 2, resuming at record 2000"),
    )  # fmt: skip
    assert _copied(batch(apply_early=True), resumed)


def test_each_step_is_the_time_of_its_latest_event() -> None:
    log = [
        BatchEvent(1, AT, "created", "open", None),
        BatchEvent(2, AT, "submit", "queued", None),
        BatchEvent(3, AT, "start", "validating", "attempt 1"),
        BatchEvent(4, AT, "read", "validating", None),
        BatchEvent(5, LATER, "chunked", "validating", None),
        BatchEvent(6, LATER, "validated", "validated", None),
        BatchEvent(7, LATER, "process", "processing", None),
    ]
    line = timeline(batch(apply_early=False), log)
    assert (line.started_at, line.read_at, line.chunked_at, line.applying_at) == (AT, AT, LATER, LATER)
    assert line.copied_at is None and not line.file_copied
    assert line.created_at == AT and line.finished_at is None
