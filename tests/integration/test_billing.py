"""The billing types end to end through the native API, with balances checked in the database."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import httpx

from tests.support.servers import Server, wait_final


def load(
    client: httpx.Client, type_: str, body: str, *, submit: bool = True, **create: Any
) -> dict[str, Any]:
    """Create a batch of `type_` with `body` as its CSV, and submit it unless told not to."""
    answer = client.post("/v1/batches", json={"type": type_} | create)
    assert answer.status_code == 201, answer.text
    batch: dict[str, Any] = answer.json()
    put = client.put(f"/v1/batches/{batch['id']}/data", content=body, headers={"Content-Type": "text/csv"})
    assert put.status_code == 200, put.text
    if submit:
        client.post(f"/v1/batches/{batch['id']}/submit").raise_for_status()
    return batch


def done(client: httpx.Client, batch: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    final = wait_final(client, batch["id"])
    rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/batches/{batch['id']}/results").text)))
    return final, rows


def query(server: Server, sql: str, **params: Any) -> list[Any]:
    return server.query(sql, **params)


def outcomes(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(r["loadbay_status"], r["loadbay_error_code"]) for r in rows]


CUSTOMERS = "customer_number,name,status\nB1,Ann,Active\nB2,Bob,Suspended\n"
INVOICES = (
    "invoice_number,customer_number,invoice_date,due_date,amount\n"
    "I1,B1,2026-01-01,2026-01-31,100.00\n"
    "I2,B1,2026-02-01,2026-01-01,50.00\n"  # due before issued
    "I3,B9,2026-02-01,,10.00\n"  # unknown customer
    "I4,B1,2026-03-01,,30.00\n"
    "I5,B2,2026-03-01,,20.00\n"
)
LINES = (
    "invoice_number,line_number,description,quantity,unit_price,amount\n"
    "I1,1,Widgets,2,25.00,50.00\n"
    "I1,2,Gadgets,1,50.00,\n"
    "I1,3,Oops,3,1.10,3.00\n"  # 3 × 1.10 = 3.30
    "I9,1,Nowhere,1,1,1\n"  # unknown invoice
)


def test_invoices_then_their_line_item_children(server: Server, key: str) -> None:
    with server.client(key) as client:
        customers, _ = done(client, load(client, "billing.customer", CUSTOMERS))
        assert customers["counts"]["succeeded"] == 2

        invoices = load(client, "billing.invoice", INVOICES, submit=False)
        lines = load(client, "billing.invoice_line", LINES, submit=False, parent_id=invoices["id"])
        client.post(f"/v1/batches/{invoices['id']}/submit").raise_for_status()
        invoice_batch, invoice_rows = done(client, invoices)
        line_batch, line_rows = done(client, lines)
        children = client.get(f"/v1/batches/{invoices['id']}/children").json()["data"]

    assert [c["id"] for c in children] == [lines["id"]]
    assert outcomes(invoice_rows) == [
        ("succeeded", ""),
        ("invalid", "INVALID_DUE_DATE"),
        ("invalid", "UNKNOWN_CUSTOMER"),
        ("succeeded", ""),
        ("succeeded", ""),
    ]
    assert invoice_batch["counts"]["succeeded"] == 3
    assert outcomes(line_rows) == [
        ("succeeded", ""),
        ("succeeded", ""),
        ("invalid", "AMOUNT_MISMATCH"),
        ("invalid", "UNKNOWN_INVOICE"),
    ]
    assert line_batch["counts"]["succeeded"] == 2
    lines_stored = query(server, "SELECT line_number, amount FROM billing_invoice_lines ORDER BY line_number")
    assert [(n, Decimal(str(a))) for n, a in lines_stored] == [(1, Decimal("50.00")), (2, Decimal("50.00"))]
    assert (
        Decimal(str(query(server, "SELECT balance FROM billing_customers WHERE customer_number='B1'")[0][0]))
        == 130
    )


TOTALLED_INVOICES = (
    "invoice_number,customer_number,invoice_date,amount\n"
    "T1,T0,2026-01-01,80.00\n"  # 50 + 30, its lines in two files
    "T2,T0,2026-01-01,70.00\n"  # 50 + 30 = 80: mismatch
    "T3,T0,2026-01-01,10.00\n"  # its only line is invalid, so nothing adds to it: not checked
    "T4,T0,2026-01-01,12.50\n"  # 2 × 6.25, amount left to quantity × unit_price
    "T5,T0,2026-01-01,7.00\n"  # 7 once: the same line again in a file is a duplicate
)
FIRST_LINES = (
    "invoice_number,line_number,quantity,unit_price,amount\n"
    "T1,1,1,50.00,50.00\n"
    "T2,1,1,50.00,50.00\n"
    "T3,1,1,10.00,11.00\n"  # its own AMOUNT_MISMATCH
    "T4,1,2,6.25,\n"
)
SECOND_LINES = (
    "invoice_number,line_number,quantity,unit_price,amount\n"
    "T1,2,1,30.00,30.00\n"
    "T2,2,1,30.00,30.00\n"
    "T5,1,1,7.00,7.00\n"
    "T5,1,1,7.00,7.00\n"
)


def test_an_invoice_whose_line_items_do_not_add_up_is_refused(server: Server, key: str) -> None:
    with server.client(key) as client:
        done(client, load(client, "billing.customer", "customer_number,name\nT0,Ann\n"))
        invoices = load(client, "billing.invoice", TOTALLED_INVOICES, submit=False)
        first = load(client, "billing.invoice_line", FIRST_LINES, submit=False, parent_id=invoices["id"])
        second = load(client, "billing.invoice_line", SECOND_LINES, submit=False, parent_id=invoices["id"])
        client.post(f"/v1/batches/{invoices['id']}/submit").raise_for_status()
        invoice_batch, invoice_rows = done(client, invoices)
        _, first_rows = done(client, first)
        _, second_rows = done(client, second)
        errors = client.get(f"/v1/batches/{invoices['id']}/errors").json()["data"]
        events = client.get(f"/v1/batches/{invoices['id']}/events").json()["data"]

    assert outcomes(invoice_rows) == [
        ("succeeded", ""),
        ("invalid", "AMOUNT_MISMATCH"),
        ("succeeded", ""),
        ("succeeded", ""),
        ("succeeded", ""),
    ]
    assert invoice_batch["counts"]["invalid"] == 1
    [mismatch] = errors
    assert (mismatch["index"], mismatch["field"], mismatch["code"]) == (1, "amount", "AMOUNT_MISMATCH")
    assert "70.00" in mismatch["message"] and "80.00" in mismatch["message"]
    assert any(e["event"] == "summed" and "7 line items" in e["detail"] for e in events)
    assert outcomes(first_rows) == [
        ("succeeded", ""),
        ("invalid", "UNKNOWN_INVOICE"),
        ("invalid", "AMOUNT_MISMATCH"),
        ("succeeded", ""),
    ]
    assert outcomes(second_rows) == [
        ("succeeded", ""),
        ("invalid", "UNKNOWN_INVOICE"),
        ("succeeded", ""),
        ("invalid", "DUPLICATE_KEY"),
    ]
    sql = "SELECT invoice_number, amount FROM billing_invoices WHERE invoice_number LIKE 'T_' ORDER BY 1"
    stored = query(server, sql)
    assert [(n, Decimal(str(a))) for n, a in stored] == [
        ("T1", Decimal("80.00")),
        ("T3", Decimal("10.00")),
        ("T4", Decimal("12.50")),
        ("T5", Decimal("7.00")),
    ]
    balance = query(server, "SELECT balance FROM billing_customers WHERE customer_number='T0'")[0][0]
    assert Decimal(str(balance)) == Decimal("109.50")
    assert query(server, "SELECT count(*) FROM child_shares")[0][0] == 0


def test_an_unreadable_line_item_file_leaves_the_totals_unchecked(server: Server, key: str) -> None:
    """Partial sums would refuse good invoices: with one child unreadable, nothing is checked."""
    with server.client(key) as client:
        done(client, load(client, "billing.customer", "customer_number,name\nU0,Uma\n"))
        invoices = load(
            client,
            "billing.invoice",
            "invoice_number,customer_number,invoice_date,amount\nU1,U0,2026-01-01,80.00\n",
            submit=False,
        )
        good = load(
            client,
            "billing.invoice_line",
            "invoice_number,line_number,quantity,unit_price\nU1,1,1,50\n",
            submit=False,
            parent_id=invoices["id"],
        )
        bad = load(
            client,
            "billing.invoice_line",
            "invoice_number,quantity\nU1,1\n",
            submit=False,
            parent_id=invoices["id"],
        )
        client.post(f"/v1/batches/{invoices['id']}/submit").raise_for_status()
        invoice_batch, invoice_rows = done(client, invoices)
        good_batch, _ = done(client, good)
        bad_batch = wait_final(client, bad["id"])

    assert outcomes(invoice_rows) == [("succeeded", "")]
    assert any(f"child batch {bad['id']} cannot be read" in w for w in invoice_batch["warnings"])
    assert good_batch["counts"]["succeeded"] == 1
    assert (bad_batch["status"], bad_batch["error"]["code"]) == ("error", "MISSING_COLUMN")


PAYER_INVOICES = (
    "invoice_number,customer_number,invoice_date,amount\n"
    "J1,P1,2026-01-01,100.00\n"
    "J4,P1,2026-03-01,30.00\n"
    "J5,P2,2026-03-01,20.00\n"
    "J6,P1,2026-04-01,40.00\n"
    "J7,P1,2026-05-01,5.00\n"
)
WRITE_OFFS = "invoice_number,amount\nJ1,\nJ4,25.00\nJ5,\nJ9,\nJ6,15.00\nJ6,1.00\nJ7,\n"


def test_payment_settles_oldest_invoices_first_then_write_off_rules(server: Server, key: str) -> None:
    with server.client(key) as client:
        done(
            client,
            load(
                client, "billing.customer", "customer_number,name,status\nP1,Pat,Active\nP2,Sue,Suspended\n"
            ),
        )
        done(client, load(client, "billing.invoice", PAYER_INVOICES))
        payments = "customer_number,amount,reference\nP1,110.00,R1\nP9,5.00,R2\n"
        _, payment_rows = done(client, load(client, "billing.payment", payments))
        staged = wait_final(client, load(client, "billing.write_off", WRITE_OFFS, process="manual")["id"])
        validated_counts = staged["counts"]
        client.post(f"/v1/batches/{staged['id']}/process").raise_for_status()
        _, write_off_rows = done(client, staged)

    assert outcomes(payment_rows) == [("succeeded", ""), ("invalid", "UNKNOWN_CUSTOMER")]
    assert (
        staged["status"] == "validated"
        and validated_counts["valid"] == 2
        and validated_counts["invalid"] == 5
    )
    assert outcomes(write_off_rows) == [
        ("invalid", "INVOICE_NOT_OPEN"),  # J1 was paid in full by the payment (oldest first)
        ("invalid", "AMOUNT_EXCEEDS_BALANCE"),  # J4 has 20 left after the payment's other 10
        ("invalid", "CUSTOMER_NOT_ACTIVE"),  # J5's customer is Suspended
        ("invalid", "UNKNOWN_INVOICE"),
        ("succeeded", ""),
        ("invalid", "DUPLICATE_KEY"),
        ("succeeded", ""),
    ]
    stored = query(
        server, "SELECT invoice_number, status, balance FROM billing_invoices WHERE invoice_number LIKE 'J%'"
    )
    invoices = {n: (status, Decimal(str(b))) for n, status, b in stored}
    assert invoices == {
        "J1": ("Paid", Decimal("0.00")),
        "J4": ("Open", Decimal("20.00")),
        "J5": ("Open", Decimal("20.00")),
        "J6": ("Open", Decimal("25.00")),
        "J7": ("WrittenOff", Decimal("0.00")),
    }
    balance = query(server, "SELECT balance FROM billing_customers WHERE customer_number = 'P1'")[0][0]
    assert Decimal(str(balance)) == Decimal("45.00")  # 175 invoiced - 110 paid - 20 written off
    allocations = query(server, "SELECT count(*), sum(amount) FROM billing_allocations")
    assert allocations[0][0] == 2 and Decimal(str(allocations[0][1])) == Decimal("110.00")


def test_memos_move_the_customer_balance(server: Server, key: str) -> None:
    with server.client(key) as client:
        done(client, load(client, "billing.customer", "customer_number,name\nM1,Mo\n"))
        credit = (
            "memo_number,customer_number,memo_date,amount\nC1,M1,2026-01-05,12.50\nC2,M9,2026-01-05,1.00\n"
        )
        _, credit_rows = done(client, load(client, "billing.credit_memo", credit))
        debit = "memo_number,customer_number,memo_date,amount\nC1,M1,2026-01-06,2.00\nD2,M1,2026-01-06,0\n"
        _, debit_rows = done(client, load(client, "billing.debit_memo", debit))

    assert outcomes(credit_rows) == [("succeeded", ""), ("invalid", "UNKNOWN_CUSTOMER")]
    assert outcomes(debit_rows) == [("succeeded", ""), ("invalid", "INVALID_VALUE")]  # amount must be > 0
    balance = query(server, "SELECT balance FROM billing_customers WHERE customer_number = 'M1'")[0][0]
    assert Decimal(str(balance)) == Decimal("-10.50")


def test_a_document_sent_again_for_another_customer_is_refused(server: Server, key: str) -> None:
    """Before, the new customer's balance moved by the change in amount only and the old one
    kept the whole amount: an invoice sent again for G2 left G1 owing 40.00 it no longer owed."""
    with server.client(key) as client:
        done(client, load(client, "billing.customer", "customer_number,name\nG1,Gil\nG2,Gus\n"))
        invoice = "invoice_number,customer_number,invoice_date,amount\nGI,{},2026-01-01,{}\n"
        memo = "memo_number,customer_number,memo_date,amount\nGC,{},2026-01-05,5.00\n"
        rows = {}
        for number, amount in (("G1", "40.00"), ("G2", "45.00")):
            _, rows[f"invoice {number}"] = done(
                client, load(client, "billing.invoice", invoice.format(number, amount))
            )
            _, rows[f"memo {number}"] = done(client, load(client, "billing.credit_memo", memo.format(number)))
    assert {name: outcomes(found) for name, found in rows.items()} == {
        "invoice G1": [("succeeded", "")],
        "memo G1": [("succeeded", "")],
        "invoice G2": [("failed", "CUSTOMER_CHANGED")],
        "memo G2": [("failed", "CUSTOMER_CHANGED")],
    }
    message = rows["invoice G2"][0]["loadbay_error_message"]
    assert message.startswith("invoice GI belongs to another customer; it cannot move to customer G2")
    balances = dict(
        query(
            server, "SELECT customer_number, balance FROM billing_customers WHERE customer_number LIKE 'G%'"
        )
    )
    assert {k: Decimal(str(v)) for k, v in balances.items()} == {"G1": Decimal("35.00"), "G2": Decimal("0")}
