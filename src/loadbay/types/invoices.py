"""Invoices and their line items (TYPES.md, billing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Connection

from loadbay.core.staging import refuse
from loadbay.core.types import ApplyContext, BatchType, ChildTotals
from loadbay.db.tables import billing_invoice_lines, billing_invoices
from loadbay.domain.records import Applied, FieldError, StagedRecord
from loadbay.types import ledger
from loadbay.types.iso import CURRENCIES
from loadbay.types.numbers import Integer
from loadbay.types.upsert import Upsert, UpsertSpec, find

__all__ = ["InvoiceLineRecord", "InvoiceLineType", "InvoiceRecord", "InvoiceType"]

Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2)]
_CONFIG = ConfigDict(str_strip_whitespace=True, extra="ignore", coerce_numbers_to_str=True)


def currency_code(value: str | None) -> str | None:
    if value is not None and value.upper() not in CURRENCIES:
        raise PydanticCustomError(
            "INVALID_CURRENCY", "not an ISO 4217 currency code: {value}", {"value": value}
        )
    return None if value is None else value.upper()


class InvoiceRecord(BaseModel):
    """A row of a `billing.invoice` file."""

    model_config = _CONFIG

    invoice_number: str = Field(min_length=1, max_length=40)
    customer_number: str = Field(min_length=1, max_length=40)
    invoice_date: date
    due_date: date | None = None
    currency: str | None = None
    amount: Money = Field(ge=0)

    @field_validator("due_date")
    @classmethod
    def _due_after_invoice(cls, value: date | None, info: ValidationInfo) -> date | None:
        issued = info.data.get("invoice_date")
        if value is not None and issued is not None and value < issued:
            raise PydanticCustomError(
                "INVALID_DUE_DATE",
                "due_date {due} is before invoice_date {issued}",
                {"due": value, "issued": issued},
            )
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        return currency_code(value)


INVOICES = UpsertSpec(
    billing_invoices,
    ("account_id", "invoice_number"),
    ("customer_id", "invoice_date", "due_date", "currency", "amount", "balance"),
    on_create=("status",),
    read=("amount", "balance", "status", "customer_id"),
)


class InvoiceType(BatchType):
    """Invoices, by invoice_number; a changed invoice must still be open and untouched."""

    name = "billing.invoice"
    key = "invoice_number"
    model = InvoiceRecord
    description = "Invoices of existing customers; their line items come in child batches."
    child_totals = ChildTotals("billing.invoice_line", "amount", "AMOUNT_MISMATCH", "line items")
    applies_while_validating = False  # line items are summed first, and check reads customers

    def check(
        self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
    ) -> list[StagedRecord]:
        return ledger.check_customers(conn, ctx.account_id, records)

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        now = datetime.now(UTC)
        customers = ledger.customers_named(conn, ctx.account_id, records)
        ledger.lock_customers(conn, customers.values())  # before the invoices are read: see ledger
        valid = [r for r in records if r.data is not None]
        stored = find(conn, INVOICES, [(ctx.account_id, r.data["invoice_number"]) for r in valid if r.data])
        failures: dict[int, FieldError] = {}
        rows: dict[int, dict[str, Any]] = {}
        for record in valid:
            error = ledger.unknown_customer(record, customers) or _not_changeable(record, stored, ctx)
            error = error or _moved(record, stored, ctx, customers)
            if error:
                failures[record.index] = error
            else:
                rows[record.index] = _invoice_row(record, ctx, customers)
        saved = Upsert(INVOICES, list(rows.values())).run(conn, now)
        deltas = [
            (row["customer_id"], ledger.amount_change(row, result.before))
            for row, result in zip(rows.values(), saved, strict=True)
        ]
        ledger.move_balances(conn, customers.values(), deltas, now)
        applied = [Applied(i, error=e) for i, e in failures.items()]
        for index, result in zip(rows, saved, strict=True):
            applied.append(Applied(index, action=result.action, entity_id=str(result.id)))
        return applied


def _not_changeable(
    record: StagedRecord, stored: Mapping[Any, dict[str, Any]], ctx: ApplyContext
) -> FieldError | None:
    assert record.data is not None
    before = stored.get((ctx.account_id, record.data["invoice_number"]))
    if before is None or (
        before["status"] == "Open" and Decimal(before["balance"]) == Decimal(before["amount"])
    ):
        return None
    return FieldError(
        "INVOICE_NOT_OPEN",
        f"invoice {record.data['invoice_number']} is {before['status']} or partly settled; it cannot change",
        "invoice_number",
    )


def _moved(
    record: StagedRecord,
    stored: Mapping[Any, dict[str, Any]],
    ctx: ApplyContext,
    customers: Mapping[Any, ledger.CustomerRef],
) -> FieldError | None:
    assert record.data is not None
    number = record.data["invoice_number"]
    before = stored.get((ctx.account_id, number))
    return ledger.moved("invoice", number, before, customers[record.data["customer_number"]])


def _invoice_row(
    record: StagedRecord, ctx: ApplyContext, customers: Mapping[Any, ledger.CustomerRef]
) -> dict[str, Any]:
    data = record.data
    assert data is not None
    customer = customers[data["customer_number"]]
    amount = ledger.money(data["amount"])
    return {
        "account_id": ctx.account_id,
        "invoice_number": data["invoice_number"],
        "customer_id": customer.id,
        "invoice_date": date.fromisoformat(data["invoice_date"]),
        "due_date": date.fromisoformat(data["due_date"]) if data.get("due_date") else None,
        "currency": data.get("currency") or customer.currency,
        "amount": amount,
        "balance": amount,
        "status": "Open",
    }


class InvoiceLineRecord(BaseModel):
    """A row of a `billing.invoice_line` (ITM) file."""

    model_config = _CONFIG

    invoice_number: str = Field(min_length=1, max_length=40)
    line_number: Integer = Field(ge=1)
    description: str | None = Field(default=None, max_length=500)
    quantity: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=4)]
    unit_price: Annotated[Decimal, Field(max_digits=18, decimal_places=4)]
    amount: Money | None = None

    @field_validator("amount")
    @classmethod
    def _amount_is_quantity_times_price(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        quantity, price = info.data.get("quantity"), info.data.get("unit_price")
        if value is None or quantity is None or price is None:
            return value
        expected = line_amount(quantity, price)
        if value != expected:
            raise PydanticCustomError(
                "AMOUNT_MISMATCH",
                "amount {value} is not quantity × unit_price = {expected}",
                {"value": value, "expected": expected},
            )
        return value


def _amount(data: Mapping[str, Any]) -> Decimal:
    """A valid line's amount: its own, or quantity × unit_price."""
    if data.get("amount") is not None:
        return Decimal(str(data["amount"]))
    return line_amount(Decimal(str(data["quantity"])), Decimal(str(data["unit_price"])))


def line_amount(quantity: Decimal, price: Decimal) -> Decimal:
    return (quantity * price).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


LINES = UpsertSpec(
    billing_invoice_lines,
    ("invoice_id", "line_number"),
    ("description", "quantity", "unit_price", "amount"),
)


class InvoiceLineType(BatchType):
    """Invoice line items (a child of an invoice batch: applied after its invoices)."""

    name = "billing.invoice_line"
    key = "invoice_number"
    model = InvoiceLineRecord
    description = "Line items of stored invoices, by invoice_number and line_number."
    applies_while_validating = False  # check reads the stored invoices

    def key_name(self) -> str | None:
        return "invoice_number + line_number"

    def record_key(self, data: Mapping[str, Any]) -> str | None:
        return f"{data.get('invoice_number')}#{data.get('line_number')}"

    def share(self, data: Mapping[str, Any]) -> tuple[str, Decimal] | None:
        """A line adds its amount (quantity × unit_price when it has none) to its invoice."""
        return str(data["invoice_number"]), _amount(data)

    def check(
        self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
    ) -> list[StagedRecord]:
        invoices = _invoices(conn, ctx, records)
        return refuse(records, {r.index: e for r in records if (e := _unknown_invoice(r, invoices))})

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        invoices = _invoices(conn, ctx, records)
        applied: list[Applied] = []
        rows: dict[int, dict[str, Any]] = {}
        for record in (r for r in records if r.data is not None):
            error = _unknown_invoice(record, invoices)
            if error:
                applied.append(Applied(record.index, error=error))
            else:
                rows[record.index] = _line_row(record, invoices)
        saved = Upsert(LINES, list(rows.values())).run(conn, datetime.now(UTC))
        for index, result in zip(rows, saved, strict=True):
            applied.append(Applied(index, action=result.action, entity_id=str(result.id)))
        return applied


def _invoices(
    conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
) -> dict[Any, ledger.InvoiceRef]:
    numbers = [r.data["invoice_number"] for r in records if r.data is not None]
    return ledger.invoices_by(conn, ctx.account_id, "invoice_number", numbers)


def _unknown_invoice(record: StagedRecord, invoices: Mapping[Any, ledger.InvoiceRef]) -> FieldError | None:
    if record.data is None or record.data["invoice_number"] in invoices:
        return None
    return ledger.unknown("UNKNOWN_INVOICE", "invoice", record.data["invoice_number"], "invoice_number")


def _line_row(record: StagedRecord, invoices: Mapping[Any, ledger.InvoiceRef]) -> dict[str, Any]:
    data = record.data
    assert data is not None
    quantity, price = Decimal(str(data["quantity"])), Decimal(str(data["unit_price"]))
    return {
        "invoice_id": invoices[data["invoice_number"]].id,
        "line_number": int(data["line_number"]),
        "description": data.get("description"),
        "quantity": quantity,
        "unit_price": price,
        "amount": _amount(data),
    }
