"""Credit and debit memos (TYPES.md, billing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection

from loadbay.core.types import ApplyContext, BatchType
from loadbay.db.tables import billing_memos
from loadbay.domain.records import Applied, StagedRecord
from loadbay.types import ledger
from loadbay.types.invoices import currency_code
from loadbay.types.upsert import Upsert, UpsertSpec, find

__all__ = ["CreditMemoType", "DebitMemoType", "MemoRecord"]


class MemoRecord(BaseModel):
    """A row of a `billing.credit_memo` or `billing.debit_memo` file."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore", coerce_numbers_to_str=True)

    memo_number: str = Field(min_length=1, max_length=40)
    customer_number: str = Field(min_length=1, max_length=40)
    memo_date: date
    amount: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
    currency: str | None = None
    reason: str | None = Field(default=None, max_length=500)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        return currency_code(value)


MEMOS = UpsertSpec(
    billing_memos,
    ("account_id", "kind", "memo_number"),
    ("customer_id", "memo_date", "amount", "currency", "reason"),
    on_create=("status",),
    read=("amount", "customer_id"),
)


class _MemoType(BatchType):
    """Memos by memo_number; a credit lowers what the customer owes, a debit raises it."""

    key = "memo_number"
    model = MemoRecord
    kind: ClassVar[str]
    sign: ClassVar[int]
    applies_while_validating = False  # check reads the stored customers, as applying does

    def check(
        self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
    ) -> list[StagedRecord]:
        return ledger.check_customers(conn, ctx.account_id, records)

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        now = datetime.now(UTC)
        customers = ledger.customers_named(conn, ctx.account_id, records)
        ledger.lock_customers(conn, customers.values())  # their balances move: see ledger
        applied: list[Applied] = []
        rows: dict[int, dict[str, Any]] = {}
        valid = [r for r in records if r.data is not None]
        found = find(
            conn, MEMOS, [(ctx.account_id, self.kind, r.data["memo_number"]) for r in valid if r.data]
        )
        for record in valid:
            assert record.data is not None
            number = record.data["memo_number"]
            before = found.get((ctx.account_id, self.kind, number))
            error = ledger.unknown_customer(record, customers) or ledger.moved(
                f"{self.kind} memo", number, before, customers[record.data["customer_number"]]
            )
            if error:
                applied.append(Applied(record.index, error=error))
            else:
                rows[record.index] = self._row(record, ctx, customers)
        saved = Upsert(MEMOS, list(rows.values())).run(conn, now)
        deltas = [
            (row["customer_id"], self.sign * ledger.amount_change(row, stored.before))
            for row, stored in zip(rows.values(), saved, strict=True)
        ]
        ledger.move_balances(conn, customers.values(), deltas, now)
        for index, stored in zip(rows, saved, strict=True):
            applied.append(Applied(index, action=stored.action, entity_id=str(stored.id)))
        return applied

    def _row(
        self, record: StagedRecord, ctx: ApplyContext, customers: Mapping[Any, ledger.CustomerRef]
    ) -> dict[str, Any]:
        data = record.data
        assert data is not None
        customer = customers[data["customer_number"]]
        return {
            "account_id": ctx.account_id,
            "kind": self.kind,
            "memo_number": data["memo_number"],
            "customer_id": customer.id,
            "memo_date": date.fromisoformat(data["memo_date"]),
            "amount": ledger.money(data["amount"]),
            "currency": data.get("currency") or customer.currency,
            "reason": data.get("reason"),
            "status": "Open",
        }


class CreditMemoType(_MemoType):
    name = "billing.credit_memo"
    description = "Credit memos: lower what a customer owes."
    kind = "credit"
    sign = -1


class DebitMemoType(_MemoType):
    name = "billing.debit_memo"
    description = "Debit memos: raise what a customer owes."
    kind = "debit"
    sign = 1
