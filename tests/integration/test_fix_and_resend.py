"""The fix-and-resend loop, on each backend: the file of refused records, fixed and sent
again, stores exactly the values it holds (formula-like cells too: loadbay's protection of
them comes off on the way back in); and retries, new batches of the records that ended
failed or unprocessed, or invalid when asked."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.support.accounts import make_keys
from tests.support.servers import Server, wait_final

COLUMNS = ["customer_number", "name", "email", "phone", "address_line1", "city", "balance"]


@pytest.fixture(scope="module")
def keys(server: Server) -> Iterator[str]:
    return iter(make_keys(server, f"resend-{uuid.uuid4().hex[:6]}", 8))


@pytest.fixture
def client(server: Server, keys: Iterator[str]) -> Iterator[httpx.Client]:
    """A fresh account's client."""
    with server.client(next(keys)) as made:
        yield made


@pytest.fixture
def other_client(server: Server, keys: Iterator[str]) -> Iterator[httpx.Client]:
    with server.client(next(keys)) as made:
        yield made


def csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def import_file(client: httpx.Client, text: str) -> dict[str, Any]:
    batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    stored = client.put(f"/v1/batches/{batch['id']}/data", content=text, headers={"Content-Type": "text/csv"})
    assert stored.status_code == 200, stored.text
    client.post(f"/v1/batches/{batch['id']}/submit")
    return wait_final(client, batch["id"])


def stored(server: Server, client: httpx.Client, numbers: list[str]) -> dict[str, list[Any]]:
    account = client.get("/v1/account").json()["id"]
    rows = server.query(
        f"SELECT {', '.join(COLUMNS)} FROM billing_customers WHERE account_id = :a", a=account
    )
    return {row[0]: list(row) for row in rows if row[0] in numbers}


def test_the_refused_file_fixed_and_sent_again_stores_what_it_holds(
    server: Server, client: httpx.Client
) -> None:
    p = uuid.uuid4().hex[:6]
    sent = [
        COLUMNS,
        [f"{p}-1", "+Plus Corp", "one@example.com", "+1 555 0100", "=1+1", "@home", "-5"],
        [f"{p}-2", "=1+1", "not-an-email", "-", "'=quoted already", "-Minus Town", "-5"],
        [f"{p}-3", "@home", "three@", "+44 20 7946 0000", "+Plus Corp", "'@x", "12.50"],
        [f"{p}-4", "Dee", "dee@example.com", "", "=SUM(A1:A2)", "Paris", "0"],
    ]
    first = import_file(client, csv_text(sent))
    assert (first["outcome"], first["counts"]["invalid"]) == ("partial", 2)

    answer = client.get(
        f"/v1/batches/{first['id']}/results", params={"outcome": "invalid,failed,unprocessed"}
    )
    header, *refused = list(csv.reader(io.StringIO(answer.text, newline="")))
    assert set(COLUMNS) < set(header) and header[-1] == "loadbay_error_message"  # the type's columns
    fixed = [dict(zip(header, row, strict=True)) for row in refused]
    assert [row["customer_number"] for row in fixed] == [f"{p}-2", f"{p}-3"]
    assert [fixed[0][c] for c in COLUMNS[1:5]] == ["'=1+1", "not-an-email", "'-", "''=quoted already"]
    assert fixed[1]["loadbay_error_code"] == "INVALID_EMAIL"

    fixed[0]["email"], fixed[1]["email"] = "two@example.com", "three@example.com"
    again = import_file(client, csv_text([header, *[[row[h] for h in header] for row in fixed]]))
    assert (again["outcome"], again["counts"]["succeeded"], again["warnings"]) == ("succeeded", 2, [])

    expected = {row[0]: row for row in sent[1:]}
    expected[f"{p}-2"][2], expected[f"{p}-3"][2] = "two@example.com", "three@example.com"
    found = stored(server, client, list(expected))
    for number, row in expected.items():
        values = found[number]
        assert values[:-1] == [cell or None for cell in row[:-1]], number
        assert values[-1] == Decimal(row[-1]), number


def test_a_retry_sends_the_unprocessed_records_again(client: httpx.Client) -> None:
    p = uuid.uuid4().hex[:6]
    items = [{"customer_number": f"{p}-{i}", "name": f"N{i}"} for i in range(3)] + [
        {"customer_number": f"{p}-x", "name": ""}
    ]
    body = {
        "type": "billing.customer",
        "process": "manual",
        "items": items,
        "submit": True,
        "description": "d",
    }
    batch = wait_final(client, client.post("/v1/batches", json=body).json()["id"])
    cancelled = client.post(f"/v1/batches/{batch['id']}/cancel").json()
    assert cancelled["counts"] | {} == cancelled["counts"] and cancelled["counts"]["unprocessed"] == 3

    made = client.post(f"/v1/batches/{batch['id']}/retry")
    assert made.status_code == 201, made.text
    retry = made.json()
    assert (retry["retry_of"], retry["type"], retry["process"], retry["description"]) == (
        batch["id"],
        "billing.customer",
        "manual",
        "d",
    )
    assert retry["status"] != "open"  # submitted at once
    retry = wait_final(client, retry["id"])
    assert retry["counts"]["total"] == 3 and retry["counts"]["invalid"] == 0
    client.post(f"/v1/batches/{retry['id']}/process")
    assert wait_final(client, retry["id"])["outcome"] == "succeeded"
    rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/batches/{retry['id']}/results").text)))
    assert [r["customer_number"] for r in rows] == [f"{p}-0", f"{p}-1", f"{p}-2"]

    invalid = client.post(f"/v1/batches/{batch['id']}/retry", json={"outcomes": ["invalid"], "submit": False})
    assert (invalid.json()["status"], invalid.json()["progress"]["total"]) == ("open", 1)


def test_a_retry_of_records_refused_for_a_customer_created_since(client: httpx.Client) -> None:
    p = uuid.uuid4().hex[:6]
    invoice = {
        "invoice_number": f"{p}-I",
        "customer_number": f"{p}-K",
        "invoice_date": "2026-12-01",
        "amount": "9",
    }
    body = {"type": "billing.invoice", "items": [invoice], "submit": True}
    refused = wait_final(client, client.post("/v1/batches", json=body).json()["id"])
    assert refused["outcome"] == "failed" and refused["counts"]["invalid"] == 1

    nothing = client.post(f"/v1/batches/{refused['id']}/retry")  # no failed or unprocessed record
    assert (nothing.status_code, nothing.json()["code"]) == (409, "NOTHING_TO_RETRY")
    customer = {
        "type": "billing.customer",
        "items": [{"customer_number": f"{p}-K", "name": "Kay"}],
        "submit": True,
    }
    wait_final(client, client.post("/v1/batches", json=customer).json()["id"])
    retry = client.post(f"/v1/batches/{refused['id']}/retry", json={"outcomes": ["invalid"]}).json()
    assert wait_final(client, retry["id"])["outcome"] == "succeeded"


def test_a_retry_of_failed_records_and_what_cannot_be_retried(
    client: httpx.Client, other_client: httpx.Client
) -> None:
    p = uuid.uuid4().hex[:6]
    setup = [
        ("billing.customer", [{"customer_number": f"{p}-K", "name": "Kay"}]),
        (
            "billing.invoice",
            [
                {
                    "invoice_number": f"{p}-I",
                    "customer_number": f"{p}-K",
                    "invoice_date": "2026-12-01",
                    "amount": "30",
                }
            ],
        ),
    ]
    for type_, items in setup:
        wait_final(
            client,
            client.post("/v1/batches", json={"type": type_, "items": items, "submit": True}).json()["id"],
        )
    write_off = {"type": "billing.write_off", "process": "manual", "submit": True}
    first, second = (
        wait_final(
            client,
            client.post(
                "/v1/batches", json=write_off | {"items": [{"invoice_number": f"{p}-I", "amount": "30"}]}
            ).json()["id"],
        )
        for _ in range(2)
    )
    for batch in (first, second):  # both checked against the invoice's balance of 30
        assert batch["counts"]["valid"] == 1
        client.post(f"/v1/batches/{batch['id']}/process")
        wait_final(client, batch["id"])
    second = client.get(f"/v1/batches/{second['id']}").json()
    assert second["counts"]["failed"] == 1  # the first wrote the balance off

    retry = client.post(f"/v1/batches/{second['id']}/retry").json()
    assert retry["retry_of"] == second["id"] and retry["progress"]["total"] == 1

    assert other_client.post(f"/v1/batches/{second['id']}/retry").status_code == 404
    still_open = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    answer = client.post(f"/v1/batches/{still_open['id']}/retry")
    assert (answer.status_code, answer.json()["code"]) == (409, "RESULTS_NOT_READY")
    bad = client.post(f"/v1/batches/{second['id']}/retry", json={"outcomes": ["lost"]})
    assert bad.status_code == 400


# catalog items: their ud… and udLookup_… values go round the loop too -------------------


def send_catalog(client: httpx.Client, content: str, content_type: str) -> dict[str, Any]:
    batch = client.post("/v1/batches", json={"type": "catalog.user1"}).json()
    sent = client.put(
        f"/v1/batches/{batch['id']}/data", content=content, headers={"Content-Type": content_type}
    )
    assert sent.status_code == 200, sent.text
    client.post(f"/v1/batches/{batch['id']}/submit")
    return wait_final(client, batch["id"])


def stored_item(server: Server, client: httpx.Client, item_id: str) -> Any:
    account = client.get("/v1/account").json()["id"]
    sql = "SELECT data FROM catalog_userx WHERE account_id = :a AND dimension = 1 AND item_id = :i"
    (row,) = server.query(sql, a=account, i=item_id)
    return json.loads(row[0])


def refused_rows(client: httpx.Client, batch_id: int) -> tuple[list[str], list[dict[str, str]]]:
    answer = client.get(f"/v1/batches/{batch_id}/results", params={"outcome": "invalid,failed,unprocessed"})
    assert answer.status_code == 200, answer.text
    header, *rows = list(csv.reader(io.StringIO(answer.text, newline="")))
    return header, [dict(zip(header, row, strict=True)) for row in rows]


def test_a_refused_catalog_update_fixed_and_sent_again_keeps_its_ud_values(
    server: Server, client: httpx.Client
) -> None:
    first = {"id": "CAT-9", "description": "v1", "ud_color": "red", "ud_size": 42}
    batch = client.post("/v1/batches", json={"type": "catalog.user1", "items": [first], "submit": True})
    assert wait_final(client, batch.json()["id"])["outcome"] == "succeeded"
    assert stored_item(server, client, "CAT-9") == first

    update = {"id": "CAT-9", "description": "x" * 600, "ud_color": "red", "ud_size": 43}
    refused = send_catalog(client, json.dumps([update]), "application/json")
    assert (refused["outcome"], refused["counts"]["invalid"]) == ("failed", 1)
    header, (row,) = refused_rows(client, refused["id"])
    assert row["loadbay_error_code"] == "TOO_LONG"
    assert json.loads(row["userDefined"]) == {"ud_color": "red", "ud_size": 43}

    row["description"] = "v2"
    again = send_catalog(client, csv_text([header, [row[h] for h in header]]), "text/csv")
    assert (again["outcome"], again["counts"]["succeeded"], again["warnings"]) == ("succeeded", 1, [])
    assert stored_item(server, client, "CAT-9") == update | {"description": "v2"}


def test_an_invalid_range_in_a_ud_lookup_can_be_fixed_in_the_refused_file(
    server: Server, client: httpx.Client
) -> None:
    lookup = {
        "amount1Range": "5:1",
        "price1Range": "4.21:30.45",
        "fromDate": "2019-08-24T14:15:22Z",
        "sortOrderNumber": 1,
        "text1": 'Zoë, "quoted"',
        "ud_LookupUDField": [15, {"deep": None}, True],
    }
    item = {
        "id": "CAT-10",
        "description": "Ünïcode",
        "ud_note": "日本",
        "udLookup_L": {"udfLookupItems": [lookup]},
    }
    refused = send_catalog(client, json.dumps(item, ensure_ascii=False) + "\n", "application/x-ndjson")
    assert (refused["outcome"], refused["counts"]["invalid"]) == ("failed", 1)
    header, (row,) = refused_rows(client, refused["id"])
    assert row["loadbay_error_code"] == "INVALID_RANGE"
    assert "udLookup_L.udfLookupItems.0.amount1Range" in row["loadbay_error_message"]
    assert json.loads(row["userDefined"]) == {k: v for k, v in item.items() if k.startswith("ud")}

    row["userDefined"] = row["userDefined"].replace('"5:1"', '"1:5"')  # the fix, in the file
    again = send_catalog(client, csv_text([header, [row[h] for h in header]]), "text/csv")
    assert (again["outcome"], again["counts"]["succeeded"], again["warnings"]) == ("succeeded", 1, [])
    fixed = item | {"udLookup_L": {"udfLookupItems": [lookup | {"amount1Range": "1:5"}]}}
    assert stored_item(server, client, "CAT-10") == fixed
