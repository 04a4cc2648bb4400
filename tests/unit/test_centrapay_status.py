"""Centrapay's `copied` status follows the validation attempt that holds the file."""

from __future__ import annotations

from datetime import UTC, datetime

from loadbay.core.models import BatchEvent
from loadbay.profiles.centrapay import _copied

AT = datetime(2026, 11, 23, tzinfo=UTC)


def events(*pairs: tuple[str, str | None]) -> list[BatchEvent]:
    return [BatchEvent(i, AT, event, "validating", detail) for i, (event, detail) in enumerate(pairs)]


def test_a_new_attempt_fetches_the_file_again() -> None:
    assert not _copied(events(("start", "attempt 1")))
    assert _copied(events(("start", "attempt 1"), ("copied", "10 bytes from https://x/a.csv")))
    assert not _copied(events(("start", "attempt 1"), ("copied", "10 bytes"), ("start", "attempt 2")))


def test_an_attempt_that_resumes_keeps_the_copy() -> None:
    resumed = events(
        ("start", "attempt 1"), ("copied", "10 bytes"), ("start", "attempt 2, resuming at record 2000")
    )
    assert _copied(resumed)
