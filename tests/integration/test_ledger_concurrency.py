"""Billing balances under parallel applying: several workers (threads of `loadbay serve`, or
`loadbay worker` processes) apply small chunks of one batch at once, every chunk touching the
same few customers and their invoices. Each record moves a balance exactly once: nothing is
lost to another chunk's write, and no invoice is settled twice over."""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_billing import done, load
from tests.support.servers import Server, start_server, start_worker

CUSTOMERS = 10
INVOICES = 40  # per customer, 2.00 each, the oldest first
WRITTEN_OFF = 10  # per customer, 5.00 each, dated after the others, written off whole
PAYMENTS = 120  # per customer, 1.00 each: 80.00 settles the invoices, 40.00 stays as credit
MEMOS = 40  # debit memos per customer, 1.00 each, applied together with the payments


ENV = {"LOADBAY_CHUNK_SIZE": "50"}


@pytest.fixture(params=["threads", "processes"])
def server(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Server]:
    """`loadbay serve` with four worker threads, or (PostgreSQL) with none and two `loadbay
    worker --concurrency 2` processes beside it."""
    if request.param == "threads":
        running = start_server(database_url, tmp_path / "data", workers=4, env=ENV)
        yield running
        running.stop()
        return
    if not database_url.startswith("postgresql"):
        pytest.skip("worker processes beside the server: PostgreSQL")
    running = start_server(database_url, tmp_path / "data", workers=0, env=ENV)
    workers = [start_worker(database_url, tmp_path / "data", concurrency=2, env=ENV) for _ in (1, 2)]
    yield running
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(15)
    running.stop()


def _csv(header: str, rows: list[str]) -> str:
    random.Random(7).shuffle(rows)  # every chunk names every customer
    return header + "\n" + "\n".join(rows) + "\n"


def _succeeded(client: httpx.Client, batch: dict[str, Any], count: int) -> None:
    final, _ = done(client, batch)
    assert final["counts"]["succeeded"] == count, final


def _balances(server: Server) -> list[Decimal]:
    return [Decimal(r[0]) for r in server.query("SELECT balance FROM billing_customers ORDER BY id")]


def test_parallel_chunks_move_each_balance_once(server: Server) -> None:
    key = server.account("ledger")
    numbers = [f"C{c:02d}" for c in range(CUSTOMERS)]
    with server.client(key) as client:
        customers = "customer_number,name\n" + "".join(f"{n},Customer {n}\n" for n in numbers)
        _succeeded(client, load(client, "billing.customer", customers), CUSTOMERS)

        invoices = [
            f"I{n}-{i:03d},{n},2026-01-{1 + i % 28:02d},2.00" for n in numbers for i in range(INVOICES)
        ]
        invoices += [f"W{n}-{i:03d},{n},2026-06-01,5.00" for n in numbers for i in range(WRITTEN_OFF)]
        header = "invoice_number,customer_number,invoice_date,amount"
        _succeeded(client, load(client, "billing.invoice", _csv(header, invoices)), len(invoices))
        assert _balances(server) == [Decimal("130.00")] * CUSTOMERS

        write_offs = [f"W{n}-{i:03d}" for n in numbers for i in range(WRITTEN_OFF)]
        _succeeded(
            client, load(client, "billing.write_off", _csv("invoice_number", write_offs)), len(write_offs)
        )
        assert _balances(server) == [Decimal("80.00")] * CUSTOMERS

        payments = [f"P{n}-{i:03d},{n},1.00" for n in numbers for i in range(PAYMENTS)]
        memos = [f"M{n}-{i:03d},{n},2026-02-01,1.00" for n in numbers for i in range(MEMOS)]
        paid = load(client, "billing.payment", _csv("reference,customer_number,amount", payments))
        debited = load(
            client, "billing.debit_memo", _csv("memo_number,customer_number,memo_date,amount", memos)
        )
        _succeeded(client, paid, len(payments))
        _succeeded(client, debited, len(memos))

    assert _balances(server) == [Decimal("0.00")] * CUSTOMERS  # 80 - 120 + 40
    settled = server.query(
        "SELECT i.balance, i.status, coalesce(sum(a.amount), 0), count(a.id) FROM billing_invoices i "
        "LEFT JOIN billing_allocations a ON a.invoice_id = i.id WHERE i.invoice_number LIKE 'I%' "
        "GROUP BY i.id, i.balance, i.status"
    )
    assert len(settled) == CUSTOMERS * INVOICES
    assert {(Decimal(b), s, Decimal(a), n) for b, s, a, n in settled} == {(Decimal(0), "Paid", Decimal(2), 2)}
    credit = server.query("SELECT count(*), sum(amount), sum(unapplied) FROM billing_payments")
    assert [(n, Decimal(a), Decimal(u)) for n, a, u in credit] == [
        (CUSTOMERS * PAYMENTS, Decimal(CUSTOMERS * PAYMENTS), Decimal(CUSTOMERS * (PAYMENTS - 2 * INVOICES)))
    ]
    written = server.query("SELECT count(*), sum(amount) FROM billing_write_offs")
    assert [(n, Decimal(a)) for n, a in written] == [
        (CUSTOMERS * WRITTEN_OFF, Decimal(CUSTOMERS * WRITTEN_OFF * 5))
    ]
    untouched = server.query(
        "SELECT count(*) FROM billing_invoices WHERE status = 'WrittenOff' AND balance = 0"
    )
    assert untouched[0][0] == CUSTOMERS * WRITTEN_OFF
