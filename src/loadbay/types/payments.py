"""Payments and write-offs: money that settles invoices (TYPES.md, billing).

Both are checked twice: while staging (so a two-phase batch shows the refusals
at `validated`) and again when applied, against the balances as they are then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Connection, insert

from loadbay.core.staging import refuse
from loadbay.core.types import ApplyContext, BatchType
from loadbay.db.tables import billing_allocations, billing_payments, billing_write_offs
from loadbay.domain.records import Action, Applied, FieldError, StagedRecord
from loadbay.types import ledger
from loadbay.types.numbers import RowId

__all__ = ["PaymentRecord", "PaymentType", "WriteOffRecord", "WriteOffType"]

Positive = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
_CONFIG = ConfigDict(str_strip_whitespace=True, extra="ignore", coerce_numbers_to_str=True)


class WriteOffRecord(BaseModel):
    """A write-off of an invoice's open balance (all of it unless `amount` says less)."""

    model_config = _CONFIG

    invoice_id: RowId | None = None
    invoice_number: str | None = Field(default=None, max_length=40)
    amount: Positive | None = None
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _names_an_invoice(self) -> WriteOffRecord:
        if self.invoice_id is None and self.invoice_number is None:
            raise PydanticCustomError("REQUIRED", "invoice_id or invoice_number is required")
        return self


class WriteOffType(BatchType):
    """Write-offs by invoice: lower the invoice's open balance (WrittenOff when none is left)."""

    name = "billing.write_off"
    key = "invoice"
    model = WriteOffRecord
    description = "Write off invoices' open balances, by invoice_id or invoice_number."
    applies_while_validating = False  # check reads the invoices' balances that applying lowers

    def external_id(self, raw: Mapping[str, Any]) -> str | None:
        value = raw.get("invoice_id", raw.get("invoice_number"))
        return None if value is None else str(value)

    def record_key(self, data: Mapping[str, Any]) -> str | None:
        return (
            f"id:{data['invoice_id']}"
            if data.get("invoice_id") is not None
            else f"number:{data['invoice_number']}"
        )

    def check(
        self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
    ) -> list[StagedRecord]:
        book = _WriteOffBook.load(conn, ctx, records)
        return refuse(records, {r.index: e for r in records if r.data and (e := book.refusal(r.data))})

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        now = datetime.now(UTC)
        book = _WriteOffBook.load(conn, ctx, records, lock=True)
        failures: list[Applied] = []
        rows: list[tuple[int, dict[str, Any]]] = []
        for record in (r for r in records if r.data is not None):
            assert record.data is not None
            error = book.refusal(record.data)
            if error:
                failures.append(Applied(record.index, error=error))
            else:
                rows.append((record.index, book.write_off(record.data, ctx, now)))
        ids = _insert_in_order(conn, billing_write_offs, [row for _, row in rows])
        book.save(conn, now)
        created = [
            Applied(i, action=Action.CREATED, entity_id=str(id_))
            for (i, _), id_ in zip(rows, ids, strict=True)
        ]
        return failures + created


class _WriteOffBook:
    """The invoices and customers a chunk of write-offs touches, moved in memory then saved."""

    def __init__(
        self,
        by_id: dict[Any, ledger.InvoiceRef],
        by_number: dict[Any, ledger.InvoiceRef],
        customers: dict[Any, ledger.CustomerRef],
    ) -> None:
        self.by_id, self.by_number, self.customers = by_id, by_number, customers
        self.touched: dict[int, ledger.InvoiceRef] = {}

    @classmethod
    def load(
        cls, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord], *, lock: bool = False
    ) -> _WriteOffBook:
        """The invoices the records name and their customers; `lock`: locked, customers first
        (see ledger), as applying moves their balances."""
        data = [r.data for r in records if r.data is not None]
        by_id = ledger.invoices_by(conn, ctx.account_id, "id", [d.get("invoice_id") for d in data])
        by_number = ledger.invoices_by(
            conn, ctx.account_id, "invoice_number", [d.get("invoice_number") for d in data]
        )
        by_number = ledger.same_objects(by_id, by_number)
        invoices = [*by_id.values(), *by_number.values()]
        customers = ledger.customers_by(conn, ctx.account_id, "id", [ref.customer_id for ref in invoices])
        if lock:
            ledger.lock_customers(conn, customers.values())
            ledger.lock_invoices(conn, invoices)
            moved = {ref.customer_id for ref in invoices} - customers.keys()  # another customer's now
            if moved:
                more = ledger.customers_by(conn, ctx.account_id, "id", moved)
                ledger.lock_customers(conn, more.values())
                customers |= more
        return cls(by_id, by_number, customers)

    def invoice(self, data: Mapping[str, Any]) -> ledger.InvoiceRef | None:
        if data.get("invoice_id") is not None:
            return self.by_id.get(data["invoice_id"])
        return self.by_number.get(data["invoice_number"])

    def refusal(self, data: Mapping[str, Any]) -> FieldError | None:
        invoice = self.invoice(data)
        field = "invoice_id" if data.get("invoice_id") is not None else "invoice_number"
        if invoice is None:
            return ledger.unknown("UNKNOWN_INVOICE", "invoice", data.get(field), field)
        if invoice.status != "Open":
            return FieldError("INVOICE_NOT_OPEN", f"invoice {invoice.number} is {invoice.status}", field)
        if invoice.balance <= 0:
            return FieldError("ZERO_BALANCE", f"invoice {invoice.number} has no open balance", field)
        amount = ledger.money(data["amount"]) if data.get("amount") is not None else invoice.balance
        if amount > invoice.balance:
            message = f"amount {amount} exceeds invoice {invoice.number}'s open balance {invoice.balance}"
            return FieldError("AMOUNT_EXCEEDS_BALANCE", message, "amount")
        customer = self.customers[invoice.customer_id]
        if customer.status not in ledger.PAYABLE_CUSTOMER:
            message = f"customer {customer.number} is {customer.status}, not Active or Cancelled"
            return FieldError("CUSTOMER_NOT_ACTIVE", message, field)
        return None

    def write_off(self, data: Mapping[str, Any], ctx: ApplyContext, now: datetime) -> dict[str, Any]:
        invoice = self.invoice(data)
        assert invoice is not None
        amount = ledger.money(data["amount"]) if data.get("amount") is not None else invoice.balance
        invoice.balance -= amount
        invoice.status = "WrittenOff" if invoice.balance == 0 else invoice.status
        self.customers[invoice.customer_id].balance -= amount
        self.touched[invoice.id] = invoice
        return {
            "account_id": ctx.account_id,
            "invoice_id": invoice.id,
            "amount": amount,
            "reason": data.get("reason"),
            "created_at": now,
        }

    def save(self, conn: Connection, now: datetime) -> None:
        ledger.save_invoices(conn, self.touched.values(), now)
        owners = {ref.customer_id for ref in self.touched.values()}
        ledger.save_customer_balances(conn, (self.customers[c] for c in owners), now)


class PaymentRecord(BaseModel):
    """A payment from a customer, applied to their open invoices oldest first."""

    model_config = _CONFIG

    customer_id: RowId | None = None
    customer_number: str | None = Field(default=None, max_length=40)
    amount: Positive
    payment_date: date = Field(default_factory=lambda: datetime.now(UTC).date())
    reference: str | None = Field(default=None, max_length=100)
    method: str | None = Field(default=None, max_length=40)

    @model_validator(mode="after")
    def _names_a_customer(self) -> PaymentRecord:
        if self.customer_id is None and self.customer_number is None:
            raise PydanticCustomError("REQUIRED", "customer_id or customer_number is required")
        return self


class PaymentType(BatchType):
    """Payments: settle the customer's open invoices oldest first; the rest stays as credit."""

    name = "billing.payment"
    key = "reference"
    model = PaymentRecord
    description = "Customer payments, applied to open invoices oldest first."
    applies_while_validating = False  # check reads the stored customers, as applying does

    def check(
        self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
    ) -> list[StagedRecord]:
        customers = _payers(conn, ctx, records)
        return refuse(
            records, {r.index: e for r in records if r.data and (e := _unknown_payer(r.data, customers))}
        )

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        now = datetime.now(UTC)
        customers = _payers(conn, ctx, records)
        ledger.lock_customers(conn, customers.values())  # then their invoices: see ledger
        invoices = ledger.locked_open_invoices(conn, ctx.account_id, [c.id for c in customers.values()])
        failures: list[Applied] = []
        payments: list[tuple[int, dict[str, Any], list[tuple[ledger.InvoiceRef, Decimal]]]] = []
        for record in (r for r in records if r.data is not None):
            assert record.data is not None
            error = _unknown_payer(record.data, customers)
            if error:
                failures.append(Applied(record.index, error=error))
                continue
            customer = customers[ledger.customer_key(record.data)]
            payment, allocations = _settle(record.data, customer, invoices.get(customer.id, []), ctx, now)
            payments.append((record.index, payment, allocations))
        ids = _insert_in_order(conn, billing_payments, [p for _, p, _ in payments])
        _save_allocations(conn, payments, ids, now)
        ledger.save_customer_balances(conn, {c.id: c for c in customers.values()}.values(), now)
        created = [
            Applied(i, action=Action.CREATED, entity_id=str(id_))
            for (i, _, _), id_ in zip(payments, ids, strict=True)
        ]
        return failures + created


def _payers(
    conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
) -> dict[Any, ledger.CustomerRef]:
    """The customers the payments name, keyed as ledger.customer_key names them."""
    data = [r.data for r in records if r.data is not None]
    by_id = ledger.customers_by(conn, ctx.account_id, "id", [d.get("customer_id") for d in data])
    by_number = ledger.customers_by(
        conn, ctx.account_id, "customer_number", [d.get("customer_number") for d in data]
    )
    by_number = ledger.same_objects(by_id, by_number)
    return {("id", k): v for k, v in by_id.items()} | {
        ("customer_number", k): v for k, v in by_number.items()
    }


def _unknown_payer(data: Mapping[str, Any], customers: Mapping[Any, ledger.CustomerRef]) -> FieldError | None:
    column, value = ledger.customer_key(data)
    if (column, value) in customers:
        return None
    field = "customer_id" if column == "id" else "customer_number"
    return ledger.unknown("UNKNOWN_CUSTOMER", "customer", value, field)


def _settle(
    data: Mapping[str, Any],
    customer: ledger.CustomerRef,
    open_invoices: list[ledger.InvoiceRef],
    ctx: ApplyContext,
    now: datetime,
) -> tuple[dict[str, Any], list[tuple[ledger.InvoiceRef, Decimal]]]:
    """The payment row and its allocations, oldest invoice first (balances moved in memory)."""
    left = ledger.money(data["amount"])
    allocations: list[tuple[ledger.InvoiceRef, Decimal]] = []
    for invoice in open_invoices:
        if left <= 0:
            break
        share = min(left, invoice.balance)
        if share > 0:
            invoice.balance -= share
            invoice.status = "Paid" if invoice.balance == 0 else invoice.status
            allocations.append((invoice, share))
            left -= share
    customer.balance -= ledger.money(data["amount"])
    payment = {
        "account_id": ctx.account_id,
        "customer_id": customer.id,
        "amount": ledger.money(data["amount"]),
        "unapplied": left,
        "payment_date": date.fromisoformat(str(data["payment_date"])),
        "reference": data.get("reference"),
        "method": data.get("method"),
        "created_at": now,
    }
    return payment, allocations


def _save_allocations(
    conn: Connection,
    payments: list[tuple[int, dict[str, Any], list[tuple[ledger.InvoiceRef, Decimal]]]],
    ids: list[int],
    now: datetime,
) -> None:
    rows = [
        {"payment_id": payment_id, "invoice_id": invoice.id, "amount": share}
        for (_, _, allocations), payment_id in zip(payments, ids, strict=True)
        for invoice, share in allocations
    ]
    if rows:
        conn.execute(insert(billing_allocations), rows)
    touched = {invoice.id: invoice for _, _, allocations in payments for invoice, _ in allocations}
    ledger.save_invoices(conn, touched.values(), now)


def _insert_in_order(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows in one executemany; their new ids in the rows' order."""
    if not rows:
        return []
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [row.id for row in conn.execute(statement, rows)]
