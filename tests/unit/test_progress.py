"""A batch's progress: the total once known (never a total that grows while the file is
read), records per second over the current stage, and the time left at that rate."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from loadbay.core.progress import progress
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Batch, Counts

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
NONE = Counts()


def _batch(status: Status, counts: Counts = NONE, **values: object) -> Batch:
    batch = Batch(
        id=1, account_id=1, ref="r", type="t", job_id=None, description=None, test=False, parent_id=None,
        process_mode="auto", options={}, source_url=None, page_size=None, total_items=None, status=status,
        outcome=None, error_code=None, error_message=None, warnings=[], counts=counts, created_at=NOW,
        submitted_at=NOW, updated_at=NOW, finished_at=None,
    )  # fmt: skip
    return replace(batch, **values)  # type: ignore[arg-type]


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_a_file_batch_has_no_total_until_it_is_read_through() -> None:
    staged = Counts(total=4000, valid=3900, invalid=100)
    found = progress(_batch(Status.VALIDATING, staged), None, {"start": ago(2)}, NOW)
    assert found.total is None and found.fraction is None
    assert found.rate == 2000.0 and found.eta_seconds is None  # staged per second; time left unknown


def test_pages_are_counted_when_stored() -> None:
    found = progress(_batch(Status.QUEUED), 250, {}, NOW)
    assert (found.total, found.done, found.fraction, found.rate, found.eta_seconds) == (
        250,
        0,
        0.0,
        None,
        None,
    )


def test_applied_early_the_total_is_the_read_through_count() -> None:
    counts = Counts(total=6000, valid=5900, invalid=100, succeeded=3900)
    batch = _batch(Status.VALIDATING, counts, apply_early=True)
    found = progress(batch, 10_000, {"start": ago(10), "read": ago(4)}, NOW)
    assert found.total == 10_000 and found.done == 4000
    assert found.rate == 1000.0 and found.eta_seconds == 6  # since the read, not the start
    assert found.fraction == 0.4


def test_processing_counts_the_records_applied_since_applying_began() -> None:
    counts = Counts(total=10_000, valid=9000, invalid=1000, succeeded=3000)
    stages = {"start": ago(30), "validated": ago(20), "process": ago(3)}
    found = progress(_batch(Status.PROCESSING, counts, process_mode="manual"), None, stages, NOW)
    assert found.total == 10_000 and found.done == 4000
    assert found.rate == 1000.0 and found.eta_seconds == 6


def test_a_two_phase_batch_waiting_at_validated_does_not_move() -> None:
    counts = Counts(total=100, valid=90, invalid=10)
    found = progress(_batch(Status.VALIDATED, counts, process_mode="manual"), None, {}, NOW)
    assert (found.total, found.done, found.rate, found.eta_seconds) == (100, 10, None, None)


def test_final_batches() -> None:
    done = Counts(total=100, valid=90, invalid=10, succeeded=85, failed=5)
    completed = progress(_batch(Status.COMPLETED, done), None, {}, NOW)
    assert (completed.fraction, completed.rate, completed.eta_seconds) == (1.0, None, 0)
    failed = progress(_batch(Status.ERROR), None, {}, NOW)
    assert failed.total is None and failed.fraction is None  # never "100%" for a file that could not be read


def test_no_rate_before_the_stage_has_a_start() -> None:
    found = progress(_batch(Status.PROCESSING, Counts(total=10, valid=10)), None, {}, NOW)
    assert found.rate is None and found.eta_seconds is None and found.total == 10
