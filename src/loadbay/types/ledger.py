"""Reading and moving billing balances: customers and invoices as the billing types see them.

Amounts are computed in Python with Decimal and written back as values (never
as SQL arithmetic), so SQLite's floating-point NUMERIC never rounds money.

Written back as values, they must be read as no other transaction can change them until
this one ends: on PostgreSQL several workers apply chunks at once, and two chunks that
read a balance, moved it and wrote it back would each write over the other's move. So a
type's `apply` reads its rows, then locks them (`lock_customers`, `lock_invoices`: `FOR
UPDATE`), which reads them again as they are once every earlier writer has committed. Locks
are always taken in one order, customers before invoices and each by id, so two chunks
never wait for each other in a circle. (On SQLite the transaction that applies a chunk
holds the one write lock from its start: what it reads nobody else changes.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from loadbay.core.staging import refuse
from loadbay.db.tables import billing_customers, billing_invoices
from loadbay.domain.records import FieldError, StagedRecord

__all__ = [
    "CustomerRef",
    "InvoiceRef",
    "customers_by",
    "invoices_by",
    "lock_customers",
    "lock_invoices",
    "save_customer_balances",
    "save_invoices",
    "unknown",
]

_BATCH = 500
PAYABLE_CUSTOMER = ("Active", "Cancelled")


@dataclass(slots=True)
class CustomerRef:
    id: int
    number: str
    status: str
    currency: str
    balance: Decimal


@dataclass(slots=True)
class InvoiceRef:
    id: int
    number: str
    customer_id: int
    invoice_date: date
    amount: Decimal
    balance: Decimal
    status: str


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), _BATCH):
        yield values[start : start + _BATCH]


def customers_by(
    conn: Connection, account_id: int, column: str, values: Iterable[Any]
) -> dict[Any, CustomerRef]:
    """The account's customers whose `column` (id or customer_number) is among `values`."""
    c = billing_customers.c
    found: dict[Any, CustomerRef] = {}
    for part in _chunks(list(dict.fromkeys(v for v in values if v is not None))):
        query = select(c.id, c.customer_number, c.status, c.currency, c.balance).where(
            c.account_id == account_id, c[column].in_(part)
        )
        for row in conn.execute(query):
            ref = CustomerRef(row.id, row.customer_number, row.status, row.currency, Decimal(row.balance))
            found[ref.id if column == "id" else ref.number] = ref
    return found


def invoices_by(
    conn: Connection, account_id: int, column: str, values: Iterable[Any]
) -> dict[Any, InvoiceRef]:
    """The account's invoices whose `column` (id or invoice_number) is among `values`."""
    i = billing_invoices.c
    found: dict[Any, InvoiceRef] = {}
    for part in _chunks(list(dict.fromkeys(v for v in values if v is not None))):
        query = select(
            i.id, i.invoice_number, i.customer_id, i.invoice_date, i.amount, i.balance, i.status
        ).where(i.account_id == account_id, i[column].in_(part))
        for row in conn.execute(query):
            ref = _invoice(row)
            found[ref.id if column == "id" else ref.number] = ref
    return found


def open_invoices(
    conn: Connection, account_id: int, customer_ids: Iterable[int]
) -> dict[int, list[InvoiceRef]]:
    """Each customer's open invoices with a balance, oldest first."""
    i = billing_invoices.c
    found: dict[int, list[InvoiceRef]] = {}
    for part in _chunks(list(dict.fromkeys(customer_ids))):
        query = (
            select(i.id, i.invoice_number, i.customer_id, i.invoice_date, i.amount, i.balance, i.status)
            .where(i.account_id == account_id, i.customer_id.in_(part), i.status == "Open", i.balance > 0)
            .order_by(i.invoice_date, i.id)
        )
        for row in conn.execute(query):
            found.setdefault(row.customer_id, []).append(_invoice(row))
    return found


def _locks(conn: Connection) -> bool:
    """Whether rows read for a write must be locked: on SQLite the applying transaction
    holds the database's one write lock already."""
    return conn.dialect.name == "postgresql"


def lock_customers(conn: Connection, customers: Iterable[CustomerRef]) -> None:
    """Lock the customers' rows until the transaction ends (by id) and read each one's
    status, currency and balance again, as they are once every earlier writer has committed."""
    by_id: dict[int, list[CustomerRef]] = {}
    for ref in customers:
        by_id.setdefault(ref.id, []).append(ref)
    if not by_id or not _locks(conn):
        return
    c = billing_customers.c
    for part in _chunks(sorted(by_id)):
        query = (
            select(c.id, c.status, c.currency, c.balance)
            .where(c.id.in_(part))
            .order_by(c.id)
            .with_for_update()
        )
        for row in conn.execute(query):
            for ref in by_id[row.id]:
                ref.status, ref.currency, ref.balance = row.status, row.currency, Decimal(row.balance)


def lock_invoices(conn: Connection, invoices: Iterable[InvoiceRef]) -> None:
    """Lock the invoices' rows until the transaction ends (by id, after their customers') and
    read each one again, as it is once every earlier writer has committed."""
    by_id: dict[int, list[InvoiceRef]] = {}
    for ref in invoices:
        by_id.setdefault(ref.id, []).append(ref)
    if not by_id or not _locks(conn):
        return
    i = billing_invoices.c
    for part in _chunks(sorted(by_id)):
        query = (
            select(i.id, i.invoice_number, i.customer_id, i.invoice_date, i.amount, i.balance, i.status)
            .where(i.id.in_(part))
            .order_by(i.id)
            .with_for_update()
        )
        for row in conn.execute(query):
            fresh = _invoice(row)
            for ref in by_id[row.id]:
                for name in ("customer_id", "invoice_date", "amount", "balance", "status"):
                    setattr(ref, name, getattr(fresh, name))


def locked_open_invoices(
    conn: Connection, account_id: int, customer_ids: Iterable[int]
) -> dict[int, list[InvoiceRef]]:
    """`open_invoices`, locked (`lock_invoices`): call it with the customers locked, so no
    invoice of theirs is made, paid or written off meanwhile."""
    found = open_invoices(conn, account_id, customer_ids)
    if not _locks(conn):
        return found
    every = [ref for refs in found.values() for ref in refs]
    lock_invoices(conn, every)
    still: dict[int, list[InvoiceRef]] = {}
    for ref in sorted(every, key=lambda r: (r.invoice_date, r.id)):
        if ref.status == "Open" and ref.balance > 0:  # not carried over meanwhile
            still.setdefault(ref.customer_id, []).append(ref)
    return still


def _invoice(row: Any) -> InvoiceRef:
    return InvoiceRef(
        row.id,
        row.invoice_number,
        row.customer_id,
        row.invoice_date,
        Decimal(row.amount),
        Decimal(row.balance),
        row.status,
    )


def save_customer_balances(conn: Connection, customers: Iterable[CustomerRef], now: datetime) -> None:
    params = [{"k": ref.id, "v_balance": ref.balance} for ref in customers]
    if params:
        c = billing_customers.c
        statement = (
            update(billing_customers)
            .where(c.id == bindparam("k"))
            .values(balance=bindparam("v_balance"), updated_at=now)
        )
        conn.execute(statement, params)


def save_invoices(conn: Connection, invoices: Iterable[InvoiceRef], now: datetime) -> None:
    """Write the balance and status of each invoice."""
    params = [{"k": ref.id, "v_balance": ref.balance, "v_status": ref.status} for ref in invoices]
    if params:
        i = billing_invoices.c
        statement = (
            update(billing_invoices)
            .where(i.id == bindparam("k"))
            .values(balance=bindparam("v_balance"), status=bindparam("v_status"), updated_at=now)
        )
        conn.execute(statement, params)


def unknown(code: str, what: str, value: Any, field: str) -> FieldError:
    return FieldError(code, f"{field}: no {what} {value!r} in this account", field)


def money(value: Any) -> Decimal:
    return Decimal(str(value))


def customer_key(data: Mapping[str, Any]) -> tuple[str, Any]:
    """How a record names its customer: ("id", 12) or ("customer_number", "C1")."""
    if data.get("customer_id") is not None:
        return "id", data["customer_id"]
    return "customer_number", data.get("customer_number")


def customers_named(
    conn: Connection, account_id: int, records: Iterable[StagedRecord]
) -> dict[Any, CustomerRef]:
    """The customers the records name by customer_number, by number."""
    numbers = [r.data["customer_number"] for r in records if r.data is not None]
    return customers_by(conn, account_id, "customer_number", numbers)


def check_customers(conn: Connection, account_id: int, records: Sequence[StagedRecord]) -> list[StagedRecord]:
    """The records, those naming a customer this account does not have refused (UNKNOWN_CUSTOMER)."""
    customers = customers_named(conn, account_id, records)
    return refuse(records, {r.index: e for r in records if (e := unknown_customer(r, customers))})


def unknown_customer(record: StagedRecord, customers: Mapping[Any, CustomerRef]) -> FieldError | None:
    if record.data is None or record.data["customer_number"] in customers:
        return None
    return unknown("UNKNOWN_CUSTOMER", "customer", record.data["customer_number"], "customer_number")


def move_balances(
    conn: Connection, customers: Iterable[CustomerRef], deltas: Iterable[tuple[int, Decimal]], now: datetime
) -> None:
    """Add each (customer id, delta) to what the customer owes, and save the touched ones."""
    by_id = {ref.id: ref for ref in customers}
    touched: dict[int, CustomerRef] = {}
    for customer_id, delta in deltas:
        if delta:
            ref = by_id[customer_id]
            ref.balance += delta
            touched[ref.id] = ref
    save_customer_balances(conn, touched.values(), now)


def moved(
    what: str, number: Any, before: Mapping[str, Any] | None, customer: CustomerRef
) -> FieldError | None:
    """CUSTOMER_CHANGED when a stored document (`before`) is sent again for another customer:
    a document stays with its customer (moving it would move balances two customers' writers
    hold apart), or None."""
    if before is None or before["customer_id"] == customer.id:
        return None
    return FieldError(
        "CUSTOMER_CHANGED",
        f"{what} {number} belongs to another customer; it cannot move to customer {customer.number}: "
        "credit it where it is and issue a new one",
        "customer_number",
    )


def amount_change(row: Mapping[str, Any], before: Mapping[str, Any] | None) -> Decimal:
    """How much a created or changed document's amount moved."""
    return Decimal(row["amount"]) - (Decimal(before["amount"]) if before else Decimal(0))


def same_objects(first: dict[Any, Any], second: dict[Any, Any]) -> dict[Any, Any]:
    """`second` with each ref replaced by `first`'s ref of the same id, so a row found both
    by id and by number is one object (its balance moves once)."""
    canonical = {ref.id: ref for ref in first.values()}
    return {key: canonical.setdefault(ref.id, ref) for key, ref in second.items()}
