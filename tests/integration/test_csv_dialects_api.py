"""Files as spreadsheets save them, through the native API: a semicolon-separated CSV (Excel
in many locales) and a TSV are read; a header that lacks or misspells a column says what
it read and what was meant; a batch can refuse unknown columns instead of ignoring them."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.servers import Server, wait_final


def imported(client: httpx.Client, body: bytes, content_type: str, **options: Any) -> dict[str, Any]:
    created = client.post("/v1/batches", json={"type": "billing.customer", "options": options})
    assert created.status_code == 201, created.text
    batch_id = created.json()["id"]
    put = client.put(f"/v1/batches/{batch_id}/data", content=body, headers={"Content-Type": content_type})
    assert put.status_code == 200, put.text
    client.post(f"/v1/batches/{batch_id}/submit").raise_for_status()
    return wait_final(client, batch_id)


def test_a_semicolon_separated_csv_is_read(server: Server, key: str) -> None:
    excel = "\ufeffcustomer_number;name;balance\r\nS1;Smith, Ann;1\r\nS2;Lee;2\r\n".encode()
    with server.client(key) as client:
        done = imported(client, excel, "text/csv")
    assert (done["status"], done["counts"]["succeeded"], done["warnings"]) == ("completed", 2, [])
    assert (
        server.query("SELECT name FROM billing_customers WHERE customer_number = 'S1'")[0][0] == "Smith, Ann"
    )


def test_a_tsv_file_is_read(server: Server, key: str) -> None:
    with server.client(key) as client:
        done = imported(client, b"customer_number\tname\nT1\tTab; Co\n", "text/tab-separated-values")
    assert (done["status"], done["counts"]["succeeded"]) == ("completed", 1)


def test_a_missing_column_says_what_was_read_and_meant(server: Server, key: str) -> None:
    with server.client(key) as client:
        done = imported(client, b"customer_no,name\nM1,Ann\n", "text/csv")
    assert done["status"] == "error"
    assert done["error"] == {
        "code": "MISSING_COLUMN",
        "message": "missing required column: customer_number (did you mean 'customer_no'?); "
        "the header, read as comma-separated, has: 'customer_no', 'name'",
    }


def test_unknown_columns_are_ignored_with_a_hint_or_refused(server: Server, key: str) -> None:
    body = b"customer_number,name,emial\nU1,Ann,ann@example.com\n"
    with server.client(key) as client:
        warned = imported(client, body, "text/csv")
        refused = imported(client, body, "text/csv", unknown_columns="refuse")
    assert warned["status"] == "completed"
    assert warned["warnings"] == ["data: unknown column 'emial' ignored (did you mean 'email'?)"]
    assert refused["status"] == "error" and refused["error"]["code"] == "UNKNOWN_COLUMN"
    assert "'emial' (did you mean 'email'?)" in refused["error"]["message"]


def test_read_options_are_checked_when_the_batch_is_created(server: Server, key: str) -> None:
    with server.client(key) as client:
        bad = client.post("/v1/batches", json={"type": "billing.customer", "options": {"csv_delimiter": "#"}})
        named = client.post(
            "/v1/batches", json={"type": "billing.customer", "options": {"csv_delimiter": "tab"}}
        )
    assert bad.status_code == 400 and "csv_delimiter" in bad.json()["detail"]
    assert named.status_code == 201
