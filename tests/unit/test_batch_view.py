"""A webhook's payload shows the batch as the native API does: core.views.batch_view (which
the core renders by itself, knowing nothing of the API) equals the API's BatchOut, field for
field. A field added to BatchOut belongs in batch_view too."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from loadbay.api.schemas import BatchOut
from loadbay.core.progress import Progress
from loadbay.core.views import batch_view
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Batch, Counts

AT = datetime(2026, 12, 5, 10, 0, 1, 123456, tzinfo=UTC)
BATCH = Batch(
    id=7,
    account_id=1,
    ref="r" * 22,
    type="billing.customer",
    job_id="job",
    description="Ümlaut",
    test=False,
    parent_id=None,
    process_mode="manual",
    options={"csv_delimiter": ";"},
    source_url=None,
    page_size=None,
    total_items=None,
    status=Status.VALIDATED,
    outcome=None,
    error_code=None,
    error_message=None,
    warnings=["unknown column 'x' ignored"],
    counts=Counts(total=3, valid=2, invalid=1, succeeded=0, failed=0, unprocessed=0),
    created_at=AT,
    submitted_at=AT,
    updated_at=AT,
    finished_at=None,
    origin="api",
)


@pytest.mark.parametrize(
    ("batch", "progress"),
    [
        (BATCH, Progress(done=1, total=3)),
        (
            replace(BATCH, status=Status.COMPLETED, outcome="partial", finished_at=AT, retry_of=3),
            Progress(3, 3, eta_seconds=0),
        ),
        (
            replace(BATCH, status=Status.ERROR, error_code="MISSING_COLUMN", error_message="no name"),
            Progress(0, None),
        ),
        (replace(BATCH, status=Status.PROCESSING), Progress(done=2, total=3, rate=12.5, eta_seconds=1)),
    ],
)
def test_the_view_is_the_batch_as_the_api_shows_it(batch: Batch, progress: Progress) -> None:
    assert batch_view(batch, progress) == BatchOut.of(batch, progress).model_dump(mode="json")
