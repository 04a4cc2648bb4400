"""Carry-forward: close a billing period before the next load (TYPES.md, billing.carry_forward).

A `billing.carry_forward` batch takes no file; its options say what to do:

    invoices, credit_memos, debit_memos   carry that kind of open document forward
    zero_out_customer_balance             set every customer's balance to 0

It is created with one child batch per kind of document asked for
(`billing.carry_forward_invoice`, `…_credit_memo`, `…_debit_memo`). A child's
records are the account's `Open` documents of its kind, read from the database
when the child is validated (the core's generated records): each is marked
`CarriedOver` (action `updated`; one already carried over is `unchanged`; one
paid or written off since is refused with `DOCUMENT_NOT_OPEN`). The parent's own
records are the account's customers when `zero_out_customer_balance` is set (each
set to 0: `updated`, or `unchanged` when it was 0), and none otherwise. Children
run after their parent, so the balances are zeroed first. Carrying a document
forward changes its status only, never a balance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection, Row, Select, Table, select, update

from loadbay.core.types import ApplyContext, BatchType, GeneratedPage
from loadbay.db.tables import billing_customers, billing_invoices, billing_memos
from loadbay.domain.models import NewBatch
from loadbay.domain.records import Action, Applied, FieldError, StagedRecord
from loadbay.errors import InvalidInput
from loadbay.types import ledger

__all__ = [
    "CARRY_FORWARD",
    "CarriedCreditMemoType",
    "CarriedDebitMemoType",
    "CarriedInvoiceType",
    "CarryForwardOptions",
    "CarryForwardType",
    "options_of",
]

OPEN, CARRIED_OVER = "Open", "CarriedOver"
_PAGE = 1000
Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2)]
_CONFIG = ConfigDict(str_strip_whitespace=True, extra="ignore", coerce_numbers_to_str=True)


class CarryForwardOptions(BaseModel):
    """The options of a `billing.carry_forward` batch."""

    model_config = ConfigDict(extra="forbid")

    invoices: bool = False
    credit_memos: bool = False
    debit_memos: bool = False
    zero_out_customer_balance: bool = False


def options_of(options: Mapping[str, Any]) -> CarryForwardOptions:
    """The batch's options, or InvalidInput naming the ones that are wrong."""
    try:
        return CarryForwardOptions.model_validate(dict(options))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"billing.carry_forward options: {problems}", code="INVALID_OPTIONS") from None


# the parent: zero out customer balances -----------------------------------------


class ZeroedCustomer(BaseModel):
    """A customer whose balance a carry-forward sets to 0 (`balance`: what it was)."""

    model_config = _CONFIG

    customer_number: str
    balance: Money


class CarryForwardType(BatchType):
    """Closes a period: spawns a child per kind of document, zeroes balances when asked."""

    name = "billing.carry_forward"
    key = "customer_number"
    model = ZeroedCustomer
    description = (
        "No file. Options invoices, credit_memos, debit_memos (carry open documents forward: "
        "one child batch per kind) and zero_out_customer_balance (this batch's records)."
    )
    generates = True
    applies_while_validating = False

    def __init__(self, page_size: int = _PAGE) -> None:
        self.page_size = page_size

    def key_name(self) -> str | None:
        return None  # no file: its records are the account's customers, made by loadbay

    def option_names(self) -> frozenset[str]:
        return frozenset(CarryForwardOptions.model_fields)

    def spawn(self, options: Mapping[str, Any]) -> list[NewBatch]:
        chosen = options_of(options)
        return [NewBatch(type=child.name) for flag, child in _CHILDREN if getattr(chosen, flag)]

    def generate(self, conn: Connection, ctx: ApplyContext, after: str | None) -> GeneratedPage:
        if not options_of(ctx.options).zero_out_customer_balance:
            return GeneratedPage([])
        c = billing_customers.c
        query = select(c.customer_number, c.balance).where(c.account_id == ctx.account_id)
        if after is not None:
            query = query.where(c.customer_number > after)
        rows = conn.execute(query.order_by(c.customer_number).limit(self.page_size)).all()
        records = [{"customer_number": r.customer_number, "balance": _money(r.balance)} for r in rows]
        return _page(records, "customer_number", self.page_size)

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        numbers = {r.data["customer_number"]: r.index for r in records if r.data is not None}
        customers = ledger.customers_by(conn, ctx.account_id, "customer_number", numbers)
        ledger.lock_customers(conn, customers.values())  # a payment applied meanwhile is zeroed too
        owing = {ref.id: ref for ref in customers.values() if ref.balance != 0}
        for ref in owing.values():
            ref.balance = Decimal("0.00")
        ledger.save_customer_balances(conn, owing.values(), datetime.now(UTC))
        return [_zeroed(index, customers.get(number), owing) for number, index in numbers.items()]


def _zeroed(index: int, customer: ledger.CustomerRef | None, owing: Mapping[int, Any]) -> Applied:
    if customer is None:  # customers are never deleted; kept for safety
        return Applied(index, error=FieldError("UNKNOWN_CUSTOMER", "the customer is gone", "customer_number"))
    action = Action.UPDATED if customer.id in owing else Action.UNCHANGED
    return Applied(index, action=action, entity_id=str(customer.id))


# the children: carry documents forward ---------------------------------------


@dataclass(frozen=True, slots=True)
class _Documents:
    """Where one kind of document is stored."""

    table: Table
    number: str  # the column with the document's number (the record key)
    dated: str  # the column with the document's date
    memo_kind: str | None = None  # billing_memos.kind, for memos


class CarriedInvoice(BaseModel):
    """An open invoice a carry-forward marks CarriedOver."""

    model_config = _CONFIG

    invoice_number: str
    customer_number: str
    invoice_date: date
    amount: Money
    balance: Money


class CarriedMemo(BaseModel):
    """An open credit or debit memo a carry-forward marks CarriedOver."""

    model_config = _CONFIG

    memo_number: str
    customer_number: str
    memo_date: date
    amount: Money


class _CarriedType(BatchType):
    """The account's open documents of one kind, marked CarriedOver (a carry-forward's child)."""

    documents: ClassVar[_Documents]
    generates = True
    applies_while_validating = False
    internal = True  # made with its parent, never asked for

    def __init__(self, page_size: int = _PAGE) -> None:
        self.page_size = page_size

    def generate(self, conn: Connection, ctx: ApplyContext, after: str | None) -> GeneratedPage:
        query = self._open(ctx.account_id, after).limit(self.page_size)
        records = [self._values(row) for row in conn.execute(query)]
        return _page(records, self.key, self.page_size)

    def _open(self, account_id: int, after: str | None) -> Select[Any]:
        docs, customers = self.documents.table.c, billing_customers.c
        number = docs[self.documents.number]
        query = (
            select(self.documents.table, customers.customer_number)
            .join(billing_customers, customers.id == docs.customer_id)
            .where(*self._mine(account_id), docs.status == OPEN)
            .order_by(number)
        )
        return query if after is None else query.where(number > after)

    def _mine(self, account_id: int) -> list[Any]:
        docs = self.documents.table.c
        kind = self.documents.memo_kind
        return [docs.account_id == account_id] + ([docs.kind == kind] if kind else [])

    def _values(self, row: Row[Any]) -> dict[str, Any]:
        stored = row._mapping
        values = {
            self.key: stored[self.documents.number],
            "customer_number": stored["customer_number"],
            self.documents.dated: stored[self.documents.dated].isoformat(),
        }
        money = (name for name in ("amount", "balance") if name in self.model.model_fields)
        return values | {name: _money(stored[name]) for name in money}

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        numbers = {r.data[self.key]: r.index for r in records if r.data is not None}
        stored = self._statuses(conn, ctx.account_id, list(numbers))
        carried = [doc_id for doc_id, status in stored.values() if status == OPEN]
        self._carry(conn, carried)
        return [_carried(index, stored.get(number)) for number, index in numbers.items()]

    def _statuses(self, conn: Connection, account_id: int, numbers: list[str]) -> dict[str, tuple[int, str]]:
        docs = self.documents.table.c
        number = docs[self.documents.number]
        query = select(docs.id, number, docs.status).where(*self._mine(account_id), number.in_(numbers))
        # locked (by id, as payments and write-offs lock invoices) until they are carried: a
        # document paid or written off meanwhile is seen as it then is, and kept so
        query = query.order_by(docs.id).with_for_update()
        return {row[1]: (row[0], row[2]) for row in conn.execute(query)}

    def _carry(self, conn: Connection, ids: list[int]) -> None:
        if ids:
            table = self.documents.table
            statement = (
                update(table)
                .where(table.c.id.in_(ids))
                .values(status=CARRIED_OVER, revision=table.c.revision + 1, updated_at=datetime.now(UTC))
            )
            conn.execute(statement)


def _carried(index: int, stored: tuple[int, str] | None) -> Applied:
    if stored is None:  # documents are never deleted; kept for safety
        return Applied(index, error=FieldError("DOCUMENT_NOT_OPEN", "the document is gone"))
    doc_id, status = stored
    if status == OPEN:
        return Applied(index, action=Action.UPDATED, entity_id=str(doc_id))
    if status == CARRIED_OVER:
        return Applied(index, action=Action.UNCHANGED, entity_id=str(doc_id))
    return Applied(index, error=FieldError("DOCUMENT_NOT_OPEN", f"the document is {status} now; not carried"))


class CarriedInvoiceType(_CarriedType):
    name = "billing.carry_forward_invoice"
    key = "invoice_number"
    model = CarriedInvoice
    description = "No file: the account's open invoices, marked CarriedOver (a carry-forward's child)."
    documents = _Documents(billing_invoices, "invoice_number", "invoice_date")


class CarriedCreditMemoType(_CarriedType):
    name = "billing.carry_forward_credit_memo"
    key = "memo_number"
    model = CarriedMemo
    description = "No file: the account's open credit memos, marked CarriedOver (a carry-forward's child)."
    documents = _Documents(billing_memos, "memo_number", "memo_date", "credit")


class CarriedDebitMemoType(_CarriedType):
    name = "billing.carry_forward_debit_memo"
    key = "memo_number"
    model = CarriedMemo
    description = "No file: the account's open debit memos, marked CarriedOver (a carry-forward's child)."
    documents = _Documents(billing_memos, "memo_number", "memo_date", "debit")


# (option, child type) in the order the children are created
_CHILDREN: tuple[tuple[str, type[_CarriedType]], ...] = (
    ("invoices", CarriedInvoiceType),
    ("credit_memos", CarriedCreditMemoType),
    ("debit_memos", CarriedDebitMemoType),
)


# helpers -------------------------------------------------------------------


def _money(value: Any) -> str:
    return str(ledger.money(value).quantize(Decimal("0.01")))


def _page(records: list[dict[str, Any]], key: str, size: int) -> GeneratedPage:
    """A page, with the cursor of the next one when this page is full."""
    after = str(records[-1][key]) if len(records) == size and records else None
    return GeneratedPage(records, after)


CARRY_FORWARD = (CarryForwardType(), CarriedInvoiceType(), CarriedCreditMemoType(), CarriedDebitMemoType())
