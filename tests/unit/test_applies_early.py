"""Which batches apply their chunks while they are still validated: what each type declares
(`BatchType.applies_while_validating`), and the declaration a type cannot leave out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel
from sqlalchemy import Connection

from loadbay.core.processing import applies_early
from loadbay.core.types import ApplyContext, BatchType, ChildTotals
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Batch, Counts
from loadbay.domain.records import Applied, StagedRecord
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
        "billing.write_off",
        "billing.credit_memo",  # its customers must exist (check)
        "billing.carry_forward",  # generates its records from stored invoices
        "catalog.user1",
        "mail.job",
    ],
)
def test_types_whose_staging_reads_stored_data_wait_for_validation(name: str) -> None:
    assert not applies_early(batch(name), TYPES.get(name))


def test_every_registered_type_is_one_of_these() -> None:
    early = {t.name for t in TYPES if t.applies_while_validating}
    assert early == {"billing.customer", "assets.external_asset", "assets.terminal_status"}


class Item(BaseModel):
    key: str


class Plain(BatchType):
    name = "test.plain"
    key = "key"
    model = Item

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        return []


def test_overriding_check_without_declaring_it_is_refused() -> None:
    with pytest.raises(TypeError, match="Checked defines check\\(\\) but not applies_while_validating"):

        class Checked(Plain):
            def check(
                self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
            ) -> list[StagedRecord]:
                return list(records)


def test_the_declaration_decides_not_the_override() -> None:
    class ChecksOnlyItsOwnRecords(Plain):
        applies_while_validating = True

        def check(
            self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
        ) -> list[StagedRecord]:
            return list(records)

    class Declared(ChecksOnlyItsOwnRecords):  # inherits check and its declaration
        applies_while_validating = False

    assert applies_early(batch("test.plain"), Plain())
    assert applies_early(batch("test.plain"), ChecksOnlyItsOwnRecords())
    assert not applies_early(batch("test.plain"), Declared())


def test_a_subclass_that_redefines_check_declares_again() -> None:
    class Waits(Plain):
        applies_while_validating = False

        def check(
            self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
        ) -> list[StagedRecord]:
            return list(records)

    with pytest.raises(TypeError, match="applies_while_validating"):

        class Again(Waits):
            def check(
                self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
            ) -> list[StagedRecord]:
                return []


@pytest.mark.parametrize(
    "rule",
    [{"generates": True}, {"child_totals": ChildTotals("test.child", "amount", "MISMATCH", "children")}],
)
def test_generated_records_and_child_totals_cannot_apply_while_validating(rule: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="applies_while_validating = False"):
        type("Ruled", (Plain,), dict(rule))
    waits: type[Plain] = type("Ruled", (Plain,), {**rule, "applies_while_validating": False})
    assert not waits.applies_while_validating
