"""billing.carry_forward and its children: options, generated records, apply, and the whole
batch through the core (spawned children, records without a file) on a SQLite database."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Table, insert, select

from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.types import ApplyContext, BatchType
from loadbay.core.worker import Worker
from loadbay.db.engine import migrate
from loadbay.db.tables import billing_customers, billing_invoices, billing_memos
from loadbay.domain.models import Account, NewBatch
from loadbay.domain.records import Action, StagedRecord
from loadbay.errors import Conflict, InvalidInput
from loadbay.types import default_registry
from loadbay.types.carry_forward import (
    CarriedCreditMemoType,
    CarriedDebitMemoType,
    CarriedInvoiceType,
    CarryForwardType,
)

NOW = datetime(2026, 1, 31, tzinfo=UTC)
STAMPS = {"revision": 1, "created_at": NOW, "updated_at": NOW}


# options and children -------------------------------------------------------------


def test_one_child_per_kind_of_document_asked_for() -> None:
    spawned = CarryForwardType().spawn({"invoices": True, "debit_memos": True, "credit_memos": False})
    assert [child.type for child in spawned] == [
        "billing.carry_forward_invoice",
        "billing.carry_forward_debit_memo",
    ]
    assert CarryForwardType().spawn({"zero_out_customer_balance": True}) == []


@pytest.mark.parametrize("options", [{"invoices": "maybe"}, {"invoice": True}])
def test_wrong_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as refused:
        CarryForwardType().spawn(options)
    assert refused.value.code == "INVALID_OPTIONS"


# a database with two accounts' documents --------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each test (migrating takes a while)."""
    path = tmp_path_factory.mktemp("template") / "loadbay.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def service(tmp_path: Path, template: Path) -> Iterator[BatchService]:
    shutil.copy(template, tmp_path / "loadbay.db")
    settings = Settings(data_dir=tmp_path, secret_key="test")
    rt = Runtime.build(settings, default_registry(), base_url="http://loadbay.test")
    yield BatchService(rt)
    rt.close()


@pytest.fixture
def accounts(service: BatchService) -> tuple[Account, Account]:
    mine, _ = service.create_account("mine")
    other, _ = service.create_account("other")
    with service.rt.db.write() as conn:
        for account in (mine, other):
            _documents(conn, account.id)
    return mine, other


def _row(conn: Connection, table: Table, **values: Any) -> int:
    return int(conn.execute(insert(table).values(values | STAMPS).returning(table.c.id)).scalar_one())


def _documents(conn: Connection, account_id: int) -> None:
    """Customers C1 (owes 70) and C2 (owes 0); invoices I1, I3 open, I2 paid; memos."""
    c1 = _customer(conn, account_id, "C1", "70.00")
    _customer(conn, account_id, "C2", "0.00")
    for number, status in (("I3", "Open"), ("I1", "Open"), ("I2", "Paid")):
        _row(
            conn,
            billing_invoices,
            account_id=account_id,
            invoice_number=number,
            customer_id=c1,
            invoice_date=date(2026, 1, 5),
            currency="USD",
            amount=Decimal("50.00"),
            balance=Decimal("0.00") if status == "Paid" else Decimal("40.00"),
            status=status,
        )
    for kind, number in (("credit", "CM1"), ("debit", "DM1"), ("debit", "DM2")):
        _row(
            conn,
            billing_memos,
            account_id=account_id,
            kind=kind,
            memo_number=number,
            customer_id=c1,
            memo_date=date(2026, 1, 6),
            amount=Decimal("5.00"),
            currency="USD",
            status="Open",
        )


def _customer(conn: Connection, account_id: int, number: str, balance: str) -> int:
    values = {"customer_number": number, "name": number, "currency": "USD", "status": "Active"}
    return _row(conn, billing_customers, account_id=account_id, balance=Decimal(balance), **values)


def _context(account: Account, **options: Any) -> ApplyContext:
    return ApplyContext(account.id, 1, False, options)


def _pages(service: BatchService, batch_type: BatchType, ctx: ApplyContext) -> list[list[dict[str, Any]]]:
    pages, after = [], None
    while True:
        with service.rt.db.read() as conn:
            page = batch_type.generate(conn, ctx, after)
        pages.append(page.records)
        if page.after is None:
            return pages
        after = page.after


def _staged(records: list[dict[str, Any]], batch_type: BatchType) -> list[StagedRecord]:
    staged = []
    for index, raw in enumerate(records):
        data, errors = batch_type.validate(raw)
        assert errors == ()
        staged.append(StagedRecord(index, batch_type.external_id(raw), raw, data))
    return staged


def _statuses(service: BatchService, table: Table, account: Account) -> dict[str, str]:
    number = table.c.invoice_number if table is billing_invoices else table.c.memo_number
    with service.rt.db.read() as conn:
        rows = conn.execute(select(number, table.c.status).where(table.c.account_id == account.id))
        return {row[0]: row[1] for row in rows}


def _balances(service: BatchService, account: Account) -> dict[str, Decimal]:
    c = billing_customers.c
    with service.rt.db.read() as conn:
        rows = conn.execute(select(c.customer_number, c.balance).where(c.account_id == account.id))
        return {row[0]: Decimal(str(row[1])) for row in rows}


# generated records and apply --------------------------------------------------------------


def test_open_invoices_of_the_account_page_by_page_in_number_order(
    service: BatchService, accounts: tuple[Account, Account]
) -> None:
    mine, _other = accounts
    pages = _pages(service, CarriedInvoiceType(page_size=1), _context(mine))
    assert [[r["invoice_number"] for r in page] for page in pages] == [["I1"], ["I3"], []]
    assert pages[0][0] == {
        "invoice_number": "I1",
        "customer_number": "C1",
        "invoice_date": "2026-01-05",
        "amount": "50.00",
        "balance": "40.00",
    }


def test_memos_of_each_kind(service: BatchService, accounts: tuple[Account, Account]) -> None:
    mine, _other = accounts
    credit = [r["memo_number"] for p in _pages(service, CarriedCreditMemoType(), _context(mine)) for r in p]
    debit = [r["memo_number"] for p in _pages(service, CarriedDebitMemoType(2), _context(mine)) for r in p]
    assert (credit, debit) == (["CM1"], ["DM1", "DM2"])


def test_apply_carries_open_documents_forward_once(
    service: BatchService, accounts: tuple[Account, Account]
) -> None:
    mine, other = accounts
    invoices = CarriedInvoiceType()
    records = _staged(_pages(service, invoices, _context(mine))[0], invoices)
    paid = StagedRecord(2, "I2", {}, {"invoice_number": "I2"})
    with service.rt.db.write() as conn:
        first = invoices.apply(conn, _context(mine), [*records, paid])
    with service.rt.db.write() as conn:
        again = invoices.apply(conn, _context(mine), records)

    assert [(a.index, a.action) for a in first if a.ok] == [(0, Action.UPDATED), (1, Action.UPDATED)]
    assert [a.error.code for a in first if a.error] == ["DOCUMENT_NOT_OPEN"]
    assert [a.action for a in again] == [Action.UNCHANGED, Action.UNCHANGED]
    assert _statuses(service, billing_invoices, mine) == {
        "I1": "CarriedOver",
        "I2": "Paid",
        "I3": "CarriedOver",
    }
    assert set(_statuses(service, billing_invoices, other).values()) == {"Open", "Paid"}


def test_zero_out_makes_the_customers_its_records(
    service: BatchService, accounts: tuple[Account, Account]
) -> None:
    mine, other = accounts
    parent = CarryForwardType()
    assert _pages(service, parent, _context(mine)) == [[]]
    ctx = _context(mine, zero_out_customer_balance=True)
    [page] = _pages(service, parent, ctx)
    assert page == [
        {"customer_number": "C1", "balance": "70.00"},
        {"customer_number": "C2", "balance": "0.00"},
    ]
    with service.rt.db.write() as conn:
        applied = parent.apply(conn, ctx, _staged(page, parent))

    assert [a.action for a in applied] == [Action.UPDATED, Action.UNCHANGED]
    assert _balances(service, mine) == {"C1": Decimal("0"), "C2": Decimal("0")}
    assert _balances(service, other)["C1"] == Decimal("70")


# the whole batch through the core -----------------------------------------------------------


def _drain(service: BatchService) -> None:
    """Run a worker in this thread until no work is left."""
    worker = Worker(service.rt, "test", threading.Event(), threading.Event())
    while worker.run_once():
        pass


def test_a_carry_forward_batch_spawns_its_children_and_they_run_after_it(
    service: BatchService, accounts: tuple[Account, Account]
) -> None:
    mine, _other = accounts
    options = {"invoices": True, "debit_memos": True, "zero_out_customer_balance": True}
    parent, created = service.create(
        mine, NewBatch("billing.carry_forward", job_id="INIT", options=options), submit=True
    )
    children = service.children(mine, parent.id)
    assert created and parent.status == "queued"
    assert [(c.type, c.status) for c in children] == [
        ("billing.carry_forward_invoice", "queued"),
        ("billing.carry_forward_debit_memo", "queued"),
    ]

    _drain(service)

    parent = service.get(mine, parent.id)
    children = service.children(mine, parent.id)
    assert (parent.status, parent.outcome, parent.counts.total, parent.counts.succeeded) == (
        "completed",
        "succeeded",
        2,
        2,
    )
    assert [(c.status, c.counts.total, c.counts.succeeded) for c in children] == [
        ("completed", 2, 2),
        ("completed", 2, 2),
    ]
    assert _statuses(service, billing_memos, mine) == {
        "CM1": "Open",
        "DM1": "CarriedOver",
        "DM2": "CarriedOver",
    }
    started = {b.id: next(e.at for e in service.events(mine, b.id) if e.event == "start") for b in children}
    assert all(parent.finished_at is not None and parent.finished_at <= at for at in started.values())
    rows = "".join(service.results(mine, children[0].id)).splitlines()
    assert rows[0].startswith("invoice_number,customer_number,invoice_date,amount,balance,loadbay_status")
    assert [r.split(",")[0] for r in rows[1:]] == ["I1", "I3"]
    assert all(",succeeded,updated," in r for r in rows[1:])


def test_a_batch_that_makes_its_own_records_takes_no_data(
    service: BatchService, accounts: tuple[Account, Account]
) -> None:
    mine, _other = accounts
    parent, _ = service.create(mine, NewBatch("billing.carry_forward", options={"invoices": True}))
    child = service.children(mine, parent.id)[0]
    with pytest.raises(Conflict) as refused:
        service.put_page(mine, child.id, 0, [{"invoice_number": "I1"}])
    assert refused.value.code == "NO_DATA_TAKEN"
    with pytest.raises(InvalidInput):
        service.create(mine, NewBatch("billing.carry_forward", options={"zero_out": True}))
    assert service.submit(mine, parent.id).status == "queued"  # no data needed


def test_a_carry_forwards_child_type_is_made_with_its_parent_only(
    service: BatchService, accounts: tuple[Account, Account]
) -> None:
    """Alone, it would mark the account's open documents carried over with no carry-forward
    to account for them."""
    mine, _other = accounts
    for name in ("billing.carry_forward_invoice", "billing.carry_forward_credit_memo"):
        with pytest.raises(InvalidInput) as refused:
            service.create(mine, NewBatch(name))
        assert refused.value.code == "UNKNOWN_TYPE"
        assert "made by loadbay along with its parent batch" in str(refused.value)
    assert service.list_batches(mine, {}, None, 10) == []
