"""Which batches apply their chunks while they are still validated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loadbay.core.processing import applies_early
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Batch, Counts
from loadbay.types import default_registry

TYPES = default_registry()


def batch(type_name: str, process_mode: str = "auto") -> Batch:
    at = datetime(2026, 11, 23, tzinfo=UTC)
    return Batch(
        id=1, account_id=1, ref="r", type=type_name, job_id=None, description=None, test=False,
        parent_id=None, process_mode=process_mode, options={}, source_url=None, page_size=None,
        total_items=None, status=Status.QUEUED, outcome=None, error_code=None, error_message=None,
        warnings=[], counts=Counts(), created_at=at, submitted_at=at, updated_at=at, finished_at=None,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["billing.customer", "assets.external_asset", "assets.terminal_status"])
def test_types_whose_staging_reads_nothing_stored_apply_early(name: str) -> None:
    assert applies_early(batch(name), TYPES.get(name))
    assert not applies_early(batch(name, "manual"), TYPES.get(name)), "a two-phase batch waits for process"


@pytest.mark.parametrize(
    "name",
    [
        "billing.invoice",  # line items must add up (child totals) and customers must exist (check)
        "billing.invoice_line",  # its invoice must be stored
        "billing.payment",
        "billing.carry_forward",  # generates its records from stored invoices
        "catalog.user1",
        "mail.job",
    ],
)
def test_types_whose_staging_reads_stored_data_wait_for_validation(name: str) -> None:
    assert not applies_early(batch(name), TYPES.get(name))
