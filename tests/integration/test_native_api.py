"""The native /v1 API as a client uses it, against a real `loadbay serve` on each backend.

Every test gets its own account (the `key` fixture), so it sees only its own batches.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from tests.support.accounts import make_keys
from tests.support.servers import Server, wait_final

pytestmark = pytest.mark.stores("file", "s3")

TYPE = "billing.customer"
COLUMNS = [
    "customer_number",
    "name",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "country",
    "currency",
    "balance",
    "status",
]
RESULT_COLUMNS = [
    "loadbay_status",
    "loadbay_action",
    "loadbay_entity_id",
    "loadbay_error_code",
    "loadbay_error_message",
]
CSV = "text/csv"
NDJSON = "application/x-ndjson"
JSON = "application/json"


# accounts: one fresh account per test --------------------------------------


@pytest.fixture(scope="module")
def fresh_keys(server: Server) -> Iterator[str]:
    """API keys of new live accounts on the module's server, each handed out once."""
    return _hand_out(server, make_keys(server, f"native-{uuid.uuid4().hex[:8]}", 40))


def _hand_out(server: Server, keys: list[str]) -> Iterator[str]:
    yield from keys
    while True:  # more tests than accounts made: fall back to the CLI
        yield server.account(f"native-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def key(fresh_keys: Iterator[str]) -> str:
    """A fresh live account's API key (overrides conftest's, which runs the CLI per test)."""
    return next(fresh_keys)


@pytest.fixture
def other_key(fresh_keys: Iterator[str]) -> str:
    """A second, unrelated live account's API key."""
    return next(fresh_keys)


# helpers -------------------------------------------------------------------


def create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/batches", json={"type": TYPE} | body)
    assert r.status_code == 201, r.text
    batch: dict[str, Any] = r.json()
    return batch


def put_data(
    client: httpx.Client,
    batch_id: int,
    body: bytes | str,
    content_type: str = CSV,
    name: str | None = None,
) -> dict[str, Any]:
    content = body.encode() if isinstance(body, str) else body
    params = {"name": name} if name else None
    r = client.put(
        f"/v1/batches/{batch_id}/data",
        content=content,
        params=params,
        headers={"Content-Type": content_type},
    )
    assert r.status_code == 200, r.text
    batch: dict[str, Any] = r.json()
    return batch


def put_page(client: httpx.Client, batch_id: int, number: int, body: Any) -> dict[str, Any]:
    r = client.put(f"/v1/batches/{batch_id}/pages/{number}", json=body)
    assert r.status_code == 200, r.text
    batch: dict[str, Any] = r.json()
    return batch


def post(client: httpx.Client, batch_id: int, action: str) -> dict[str, Any]:
    r = client.post(f"/v1/batches/{batch_id}/{action}")
    assert r.status_code == 200, r.text
    batch: dict[str, Any] = r.json()
    return batch


def run(
    client: httpx.Client, body: bytes | str, content_type: str = CSV, **create_body: Any
) -> dict[str, Any]:
    """Create, upload, submit and wait: the batch at its final status."""
    batch = create(client, **create_body)
    put_data(client, batch["id"], body, content_type)
    post(client, batch["id"], "submit")
    return wait_final(client, batch["id"])


def counts(**values: int) -> dict[str, int]:
    return {
        "total": 0,
        "valid": 0,
        "invalid": 0,
        "succeeded": 0,
        "failed": 0,
        "unprocessed": 0,
    } | values


def all_errors(client: httpx.Client, batch_id: int, limit: int = 1000) -> list[dict[str, Any]]:
    """Every error of a batch, following next_cursor."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        r = client.get(f"/v1/batches/{batch_id}/errors", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["data"]) <= limit
        found.extend(page["data"])
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]


def error_keys(errors: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["index"], e["external_id"], e["field"], e["code"]) for e in errors]


def results(client: httpx.Client, batch_id: int) -> tuple[list[str], list[dict[str, str]]]:
    """The result CSV's header and rows (parsed with the csv module)."""
    r = client.get(f"/v1/batches/{batch_id}/results")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text, newline="")))
    header, body = rows[0], rows[1:]
    return header, [dict(zip(header, row, strict=True)) for row in body]


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def at_once(
    server: Server, key: str, request: Callable[[httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """The same request sent 6 times at once, each on its own connection."""

    def send(_: int) -> httpx.Response:
        with server.client(key) as client:
            return request(client)

    with ThreadPoolExecutor(6) as pool:
        return list(pool.map(send, range(6)))


def csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


# data in: files ------------------------------------------------------------


def test_csv_with_bom_crlf_quoted_newline_and_other_letter_case(server: Server, key: str) -> None:
    body = (
        "\ufeffCustomer_Number,NAME,Address_Line1,EMAIL,Extra\r\n"
        'C1,Ada,"1 Main St\r\nSuite 5",ada@example.com,x\r\n'
        "C2,Bob,,bob@example.com,\r\n"
        "C3,Cy,,not-an-email,\r\n"
    )
    with server.client(key) as client:
        done = run(client, body.encode(), "text/csv; charset=utf-8")
        assert done["status"] == "completed"
        assert done["outcome"] == "partial"
        assert done["counts"] == counts(total=3, valid=2, invalid=1, succeeded=2)
        assert done["warnings"] == ["data: unknown column 'Extra' ignored"]
        assert error_keys(all_errors(client, done["id"])) == [(2, "C3", "email", "INVALID_EMAIL")]
        _, rows = results(client, done["id"])
    assert [r["customer_number"] for r in rows] == ["C1", "C2", "C3"]
    assert rows[0]["address_line1"] == "1 Main St\r\nSuite 5"
    assert rows[0]["name"] == "Ada"
    assert rows[2]["email"] == "not-an-email"
    assert [r["loadbay_status"] for r in rows] == ["succeeded", "succeeded", "invalid"]


def test_json_lines_upload(server: Server, key: str) -> None:
    lines = [
        {"customer_number": "J1", "name": "One", "balance": 12.5},
        {"CUSTOMER_NUMBER": "J2", "Name": "Two"},  # keys in other letter case
        {"customer_number": "J3"},  # no name
    ]
    body = "\n".join(json.dumps(line) for line in lines[:2]) + "\nnot json\n" + json.dumps(lines[2]) + "\n"
    with server.client(key) as client:
        done = run(client, body, NDJSON)
        assert done["status"] == "completed"
        assert done["counts"] == counts(total=4, valid=2, invalid=2, succeeded=2)
        assert error_keys(all_errors(client, done["id"])) == [
            (2, None, None, "INVALID_JSON"),
            (3, "J3", "name", "REQUIRED"),
        ]
        _, rows = results(client, done["id"])
    assert [(r["customer_number"], r["loadbay_status"]) for r in rows] == [
        ("J1", "succeeded"),
        ("J2", "succeeded"),
        ("not json", "invalid"),  # the line's text, in the first column
        ("J3", "invalid"),
    ]
    assert rows[0]["balance"] == "12.5"
    assert rows[1]["name"] == "Two"


def test_json_array_upload(server: Server, key: str) -> None:
    items = [
        {"customer_number": "A1", "name": "One", "country": "de"},
        {"customer_number": "A2", "name": "Two", "balance": "abc"},
        {"customer_number": "A3", "name": "Three", "currency": "eur"},
    ]
    with server.client(key) as client:
        done = run(client, json.dumps(items), JSON)
        assert done["status"] == "completed"
        assert done["outcome"] == "partial"
        assert done["counts"] == counts(total=3, valid=2, invalid=1, succeeded=2)
        assert error_keys(all_errors(client, done["id"])) == [(1, "A2", "balance", "INVALID_DECIMAL")]


def test_several_files_keep_their_order_and_indexes_run_across_files(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = create(client)
        put_data(client, batch["id"], "customer_number,name\nZ1,Old\n", name="zeta.csv")
        second = '{"customer_number": "A1", "name": "A"}\n{"customer_number": "A2"}\n'
        put_data(client, batch["id"], second, NDJSON, name="alpha.jsonl")
        # the same name again replaces the file and keeps its place
        put_data(client, batch["id"], "customer_number,name\nZ1,Zed\nZ2,Zed two\n", name="zeta.csv")
        events = client.get(f"/v1/batches/{batch['id']}/events").json()["data"]
        assert [e["event"] for e in events] == [
            "created",
            "file_received",
            "file_received",
            "file_received",
        ]
        post(client, batch["id"], "submit")
        done = wait_final(client, batch["id"])
        assert done["counts"] == counts(total=4, valid=3, invalid=1, succeeded=3)
        # the bad row is the 2nd record of the 2nd file: index 3 of the batch
        assert error_keys(all_errors(client, batch["id"])) == [(3, "A2", "name", "REQUIRED")]
        _, rows = results(client, batch["id"])
    assert [(r["customer_number"], r["name"]) for r in rows] == [
        ("Z1", "Zed"),
        ("Z2", "Zed two"),
        ("A1", "A"),
        ("A2", ""),
    ]


def test_records_keep_their_order_across_chunks(server: Server, key: str) -> None:
    """More records than one chunk (2,000): indexes, errors and result rows stay in order."""
    rows = [["customer_number", "name", "email"]]
    rows += [[f"N{i:05d}", f"Name {i}", "bad" if i in (1999, 2000, 4499) else ""] for i in range(4500)]
    with server.client(key) as client:
        done = run(client, csv_text(rows))
        assert done["counts"] == counts(total=4500, valid=4497, invalid=3, succeeded=4497)
        assert [e[0] for e in error_keys(all_errors(client, done["id"]))] == [1999, 2000, 4499]
        _, found = results(client, done["id"])
    assert [r["customer_number"] for r in found] == [row[0] for row in rows[1:]]
    statuses = {i: r["loadbay_status"] for i, r in enumerate(found) if r["loadbay_status"] != "succeeded"}
    assert statuses == {1999: "invalid", 2000: "invalid", 4499: "invalid"}


def test_unreadable_data_and_unsupported_content_types(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = create(client)
        path = f"/v1/batches/{batch['id']}/data"
        xml = client.put(path, content=b"<customers/>", headers={"Content-Type": "application/xml"})
        assert_problem(xml, 415, "UNSUPPORTED_MEDIA_TYPE")
        latin1 = client.put(path, content=b"x", headers={"Content-Type": "text/csv; charset=latin-1"})
        assert_problem(latin1, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert_problem(client.put(path, content=b"x"), 415, "UNSUPPORTED_MEDIA_TYPE")

        done = run(client, "customer_number,email\nC1,a@example.com\n")  # no `name` column
        assert done["status"] == "error"
        assert done["error"]["code"] == "MISSING_COLUMN"
        assert "name" in done["error"]["message"]
        assert done["counts"] == counts()
        assert_problem(client.get(f"/v1/batches/{done['id']}/results"), 409, "RESULTS_NOT_READY")
        assert post(client, done["id"], "clear")["status"] == "cleared"


def test_uploads_over_the_size_limit_are_refused(server: Server, key: str) -> None:
    big = b"customer_number,name\n" + b"C,n\n" * (5 * 1024 * 1024 // 4)  # over the server's 5 MB

    def streamed() -> Iterator[bytes]:  # no Content-Length: the limit holds as bytes arrive
        for start in range(0, len(big), 256 * 1024):
            yield big[start : start + 256 * 1024]

    with server.client(key) as client:
        batch = create(client)
        path = f"/v1/batches/{batch['id']}/data"
        assert_problem(client.put(path, content=big, headers={"Content-Type": CSV}), 413, "PAYLOAD_TOO_LARGE")
        assert_problem(
            client.put(path, content=streamed(), headers={"Content-Type": CSV}), 413, "PAYLOAD_TOO_LARGE"
        )
        assert_problem(client.post(f"/v1/batches/{batch['id']}/submit"), 409, "NO_DATA")


def test_create_refuses_a_bad_body(server: Server, key: str) -> None:
    with server.client(key) as client:
        assert_problem(client.post("/v1/batches", json={"type": "billing.nope"}), 400, "UNKNOWN_TYPE")
        bad_fields: list[dict[str, Any]] = [
            {"process": "later"},
            {"colour": "red"},
            {"page_size": 0},
            {"total_items": -1},
        ]
        for bad in bad_fields:
            assert_problem(client.post("/v1/batches", json={"type": TYPE} | bad), 400, "INVALID_INPUT")
        source = {"type": TYPE, "source_url": "file:///etc/passwd"}
        assert_problem(client.post("/v1/batches", json=source), 400, "INVALID_SOURCE_URL")
        assert_problem(client.get("/v1/batches/999999999"), 404, "NOT_FOUND")
        assert client.get("/v1/batches").json()["data"] == []


@pytest.mark.parametrize("number", ["1e999", "-1e999"])
def test_a_number_too_large_for_a_float_is_refused(server: Server, key: str, number: str) -> None:
    """JSON's `1e999` was read as infinity and stored; it is refused as NaN and Infinity are:
    400 INVALID_INPUT on the field `body`, saying where."""
    with server.client(key) as client:
        batch = create(client)
        bodies = [
            (
                "POST",
                "/v1/batches",
                f'{{"type": "{TYPE}", "items": [{{"customer_number": "N1", "balance": {number}}}]}}',
            ),
            (
                "PUT",
                f"/v1/batches/{batch['id']}/pages/0",
                f'[{{"customer_number": "N1", "balance": {number}}}]',
            ),
        ]
        for method, path, body in bodies:
            response = client.request(method, path, content=body, headers={"Content-Type": JSON})
            problem = assert_problem(response, 400, "INVALID_INPUT")
            at = f"line 1, column {body.index(number) + 1}"
            message = f"not read at {at}: {number} is beyond ±1.8e308, the largest number this server reads"
            assert problem["errors"] == [{"field": "body", "message": message}]
        assert [b["id"] for b in client.get("/v1/batches").json()["data"]] == [batch["id"]]
        assert client.get(f"/v1/batches/{batch['id']}").json()["progress"]["total"] in (0, None)


# data in: pages ------------------------------------------------------------


def test_pages_in_order_and_the_same_page_twice_replaces_it(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = create(client)
        put_page(client, batch["id"], 1, {"items": [{"customer_number": "P3", "name": "Three"}]})
        put_page(client, batch["id"], 0, [{"customer_number": "P1", "name": "One"}])
        page0 = [{"customer_number": "P1", "name": "One"}, {"customer_number": "P2", "name": "Two"}]
        put_page(client, batch["id"], 0, page0)
        put_page(client, batch["id"], 0, page0)  # the same page again
        post(client, batch["id"], "submit")
        done = wait_final(client, batch["id"])
        assert done["status"] == "completed"
        assert done["outcome"] == "succeeded"
        assert done["counts"] == counts(total=3, valid=3, succeeded=3)
        _, rows = results(client, batch["id"])
    assert [r["customer_number"] for r in rows] == ["P1", "P2", "P3"]


def test_the_same_page_and_file_sent_at_once_are_stored_once(server: Server, key: str) -> None:
    """A client that retries a PUT while the first is still in flight gets 200 for both."""
    items = [{"customer_number": f"Q{i}", "name": "x"} for i in range(50)]
    body = b"customer_number,name\nQF1,x\nQF2,y\n"
    with server.client(key) as client:
        pages, files = create(client), create(client)
        page_puts = at_once(server, key, lambda c: c.put(f"/v1/batches/{pages['id']}/pages/0", json=items))
        file_puts = at_once(
            server,
            key,
            lambda c: c.put(f"/v1/batches/{files['id']}/data", content=body, headers={"Content-Type": CSV}),
        )
        assert [r.status_code for r in page_puts + file_puts] == [200] * 12, [
            r.text for r in page_puts + file_puts
        ]
        post(client, pages["id"], "submit")
        post(client, files["id"], "submit")
        assert wait_final(client, pages["id"])["counts"] == counts(total=50, valid=50, succeeded=50)
        assert wait_final(client, files["id"])["counts"] == counts(total=2, valid=2, succeeded=2)


def test_a_page_that_is_not_items_is_refused(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = create(client, page_size=2)
        assert_problem(
            client.put(f"/v1/batches/{batch['id']}/pages/0", json={"rows": []}), 400, "INVALID_PAGE"
        )
        too_many = [{"customer_number": f"X{i}", "name": "x"} for i in range(3)]
        assert_problem(client.put(f"/v1/batches/{batch['id']}/pages/0", json=too_many), 400, "PAGE_TOO_LARGE")
        assert_problem(client.post(f"/v1/batches/{batch['id']}/submit"), 409, "NO_DATA")
        put_page(client, batch["id"], 0, [{"customer_number": "X1", "name": "x"}])
        path = f"/v1/batches/{batch['id']}/data"
        file = client.put(path, content=b"customer_number,name\nX2,y\n", headers={"Content-Type": CSV})
        assert_problem(file, 409, "MIXED_INPUT")


def test_pages_with_no_items_are_no_data(server: Server, key: str) -> None:
    """A batch whose pages hold no item was submitted and completed with no record; it is
    refused as a batch with no data is (an empty file is read, and completes with a warning)."""
    with server.client(key) as client:
        batch = create(client)
        put_page(client, batch["id"], 0, [])
        put_page(client, batch["id"], 1, {"items": []})
        problem = assert_problem(client.post(f"/v1/batches/{batch['id']}/submit"), 409, "NO_DATA")
        assert "its pages hold no items" in problem["detail"]
        refused = client.post("/v1/batches", json={"type": TYPE, "items": [], "submit": True})
        assert_problem(refused, 409, "NO_DATA")
        assert [b["id"] for b in client.get("/v1/batches").json()["data"]] == [batch["id"]]
        put_page(client, batch["id"], 1, [{"customer_number": "E1", "name": "One"}])
        post(client, batch["id"], "submit")
        assert wait_final(client, batch["id"])["counts"] == counts(total=1, valid=1, succeeded=1)


def test_a_refused_submit_on_create_names_no_batch(server: Server, key: str) -> None:
    """A create submitted with no data, or fewer items than its total_items, is undone; its
    refusal named the batch it would have been ("batch 150 has no data yet"), an id the next
    batch made then gets."""
    with server.client(key) as client:
        empty = assert_problem(
            client.post("/v1/batches", json={"type": TYPE, "submit": True}), 409, "NO_DATA"
        )
        items = [{"customer_number": "S1", "name": "One"}]
        short = client.post(
            "/v1/batches", json={"type": TYPE, "submit": True, "items": items, "total_items": 2}
        )
        incomplete = assert_problem(short, 409, "INCOMPLETE_BATCH")
        made = create(client)
    assert empty["detail"] == (
        "the batch submitted on create has no records: send items with it, or create it, "
        "send its data, then submit it; no batch was made"
    )
    assert incomplete["detail"] == (
        "the batch submitted on create has received 1 of its 2 items; no batch was made"
    )
    assert f"batch {made['id']}" not in empty["detail"] + incomplete["detail"]


def test_a_create_refused_for_its_type_names_no_batch(server: Server, key: str) -> None:
    """A create with items, or submitted, whose type refuses them is undone as well; the
    refusal named the batch it would have been ("batch 151 needs its document (…) before it is
    submitted; send it first", "batch 152 is a billing.carry_forward batch: …"), an id the next
    batch made may then get."""
    mail = {"type": "mail.job"}  # needs its PDF before its data and before its submit
    carried = {"type": "billing.carry_forward", "options": {"invoices": True}}  # makes its own records
    job = [{"startingPage": 1, "endingPage": 1}]
    cases: list[tuple[dict[str, Any], str]] = [
        (mail | {"submit": True}, "ATTACHMENT_MISSING"),
        (mail | {"items": job, "submit": True}, "ATTACHMENT_MISSING"),
        (mail | {"items": job}, "ATTACHMENT_MISSING"),
        (carried | {"items": [{"customer_number": "C1"}], "submit": True}, "NO_DATA_TAKEN"),
        (carried | {"items": [{"customer_number": "C1"}]}, "NO_DATA_TAKEN"),
        (carried | {"upload_url": True}, "NO_DATA_TAKEN"),
    ]
    with server.client(key) as client:
        said = []
        for body, code in cases:
            said.append(assert_problem(client.post("/v1/batches", json=body), 409, code)["detail"])
            assert client.get("/v1/batches").json()["data"] == [], body
    for detail in said:
        assert detail.endswith("; no batch was made"), detail
        assert re.search(r"batch \d", detail) is None, detail
    assert said[0] == (
        "a mail.job batch needs its document (the PDF the jobs print from) before it is submitted: "
        "create it and send its document first; no batch was made"
    )
    assert said[3] == (
        "a billing.carry_forward batch makes its own records and takes no data: create it without "
        "items or an upload URL; no batch was made"
    )


def test_items_inline_on_create_with_submit(server: Server, key: str) -> None:
    items = [{"customer_number": "I1", "name": "One"}, {"customer_number": "I2", "name": "Two"}]
    with server.client(key) as client:
        batch = create(client, items=items, submit=True)
        assert batch["status"] != "open"
        assert batch["submitted_at"] is not None
        done = wait_final(client, batch["id"])
    assert done["status"] == "completed"
    assert done["counts"] == counts(total=2, valid=2, succeeded=2)


def test_submit_with_fewer_items_than_total_items_is_refused(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = create(client, total_items=3, page_size=2)
        put_page(
            client,
            batch["id"],
            0,
            [{"customer_number": "T1", "name": "a"}, {"customer_number": "T2", "name": "b"}],
        )
        body = assert_problem(client.post(f"/v1/batches/{batch['id']}/submit"), 409, "INCOMPLETE_BATCH")
        assert "2 of its 3" in body["detail"]
        assert client.get(f"/v1/batches/{batch['id']}").json()["status"] == "open"
        put_page(client, batch["id"], 1, [{"customer_number": "T3", "name": "c"}])
        post(client, batch["id"], "submit")
        done = wait_final(client, batch["id"])
    assert done["counts"] == counts(total=3, valid=3, succeeded=3)


# data in: signed upload URL and source_url ---------------------------------


def test_signed_upload_url_takes_a_put_without_api_key(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = create(client)
        r = client.post(f"/v1/batches/{batch['id']}/upload-url")
        assert r.status_code == 200, r.text
        signed = r.json()
        assert signed["method"] == "PUT"
        body = b"customer_number,name\nU1,One\nU2,Two\n"
        with httpx.Client(timeout=30.0) as anonymous:  # no API key: the signature is the credential
            put = anonymous.put(signed["url"], content=body, headers={"Content-Type": CSV})
            assert put.status_code == 200, put.text
            if server.s3 is None:  # loadbay's own URLs (S3 checks its presigned ones itself)
                tampered = signed["url"].replace("signature=", "signature=0")
                assert_problem(
                    anonymous.put(tampered, content=body, headers={"Content-Type": CSV}),
                    403,
                    "BAD_SIGNATURE",
                )
            post(client, batch["id"], "submit")
            if server.s3 is None:  # refused once the batch has left `open` (on S3: see test_stored_files)
                late = anonymous.put(signed["url"], content=body, headers={"Content-Type": CSV})
                assert_problem(late, 409, "BATCH_NOT_OPEN")
        done = wait_final(client, batch["id"])
    assert done["status"] == "completed"
    assert done["counts"] == counts(total=2, valid=2, succeeded=2)


def test_upload_url_on_create(server: Server, key: str) -> None:
    with server.client(key) as client:
        # a name with a space; octet-stream lets the extension pick the format
        batch = create(client, upload_url=True, file_name="customers 2024.jsonl")
        straight_to = server.s3.endpoint if server.s3 else server.url + "/v1/blobs/"
        assert batch["upload_url"].startswith(straight_to)
        assert batch["upload_url_expires_at"] > batch["created_at"]
        body = b'{"customer_number": "V1", "name": "One"}\n'
        put = httpx.put(
            batch["upload_url"],
            content=body,
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
        assert put.status_code == 200, put.text
        post(client, batch["id"], "submit")
        done = wait_final(client, batch["id"])
    assert done["status"] == "completed"
    assert done["counts"] == counts(total=1, valid=1, succeeded=1)


def test_a_file_missing_at_one_upload_url_of_two_is_file_not_uploaded(server: Server, key: str) -> None:
    """Upload URLs for a.csv and b.csv, only b.csv sent: the batch has other data, so its
    submit is FILE_NOT_UPLOADED naming a.csv, as with a direct upload beside the missing file
    (on S3 it was NO_DATA: b.csv, sent to the store, counted only once found). Once a.csv is
    sent, the submit goes through with both."""
    with server.client(key) as client:
        batch = create(client)
        urls = {
            name: client.post(f"/v1/batches/{batch['id']}/upload-url", json={"name": name}).json()["url"]
            for name in ("a.csv", "b.csv")
        }
        sent = httpx.put(
            urls["b.csv"], content=b"customer_number,name\nB1,Bee\n", headers={"Content-Type": CSV}
        )
        assert sent.status_code == 200, sent.text
        refused = assert_problem(client.post(f"/v1/batches/{batch['id']}/submit"), 409, "FILE_NOT_UPLOADED")
        assert "'a.csv'" in refused["detail"]
        sent = httpx.put(
            urls["a.csv"], content=b"customer_number,name\nA1,Ay\n", headers={"Content-Type": CSV}
        )
        assert sent.status_code == 200, sent.text
        post(client, batch["id"], "submit")
        done = wait_final(client, batch["id"])
    assert done["status"] == "completed"
    assert done["counts"] == counts(total=2, valid=2, succeeded=2)


def test_a_create_whose_upload_url_is_refused_leaves_no_batch(
    server: Server, key: str, httpserver: HTTPServer
) -> None:
    """The upload URL's checks come with the create: a refused one leaves no batch (it was made,
    open, and a batch with a source_url even fetched and applied), and answers what
    POST …/upload-url answers."""
    httpserver.expect_request("/remote.csv").respond_with_data(
        "customer_number,name\nR1,Remote\n", content_type=CSV
    )
    source = f"http://127.0.0.1:{httpserver.port}/remote.csv"
    long_name = "é" * 100  # 100 characters, but 600 bytes URL-encoded
    carried = {"type": "billing.carry_forward", "options": {"invoices": True}}  # makes a child too
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"type": TYPE, "file_name": long_name}, 400, "INVALID_NAME"),
        ({"type": TYPE, "source_url": source}, 409, "BATCH_NOT_OPEN"),  # submitted on create
        ({"type": TYPE, "source_url": source, "submit": True}, 409, "BATCH_NOT_OPEN"),
        (carried, 409, "NO_DATA_TAKEN"),
        ({"type": TYPE, "submit": True}, 409, "BATCH_NOT_OPEN"),
    ]
    with server.client(key) as client:
        refused = []
        for body, status, code in cases:
            answer = client.post("/v1/batches", json=body | {"upload_url": True})
            refused.append(assert_problem(answer, status, code))
            assert client.get("/v1/batches").json()["data"] == [], body
        done = run(client, "customer_number,name\nW1,Barrier\n")  # the workers have had their turn
        assert [b["id"] for b in client.get("/v1/batches").json()["data"]] == [done["id"]]
        # a batch that fetches its file and is not submitted on create takes files at URLs too
        both = create(client, upload_url=True, source_url=source, submit=False)
        asked = client.post(f"/v1/batches/{both['id']}/upload-url", json={"name": long_name})
    assert refused[0]["detail"] == assert_problem(asked, 400, "INVALID_NAME")["detail"]
    assert '"submit": false' in refused[1]["detail"]
    assert (both["status"], both["upload_url"] is not None) == ("open", True)
    assert httpserver.log == []  # nothing fetched, nothing applied


def test_source_url_is_fetched_and_auto_submitted(server: Server, key: str, httpserver: HTTPServer) -> None:
    body = "customer_number,name,email\nS1,One,one@example.com\nS2,Two,bad\nS3,Three,\n"
    httpserver.expect_request("/exports/customers.csv").respond_with_data(body, content_type="text/csv")
    url = f"http://127.0.0.1:{httpserver.port}/exports/customers.csv"
    with server.client(key) as client:
        batch = create(client, source_url=url)
        assert batch["status"] != "open"
        assert batch["source_url"] == url
        done = wait_final(client, batch["id"])
        assert done["status"] == "completed", done
        assert done["counts"] == counts(total=3, valid=2, invalid=1, succeeded=2)
        events = [e["event"] for e in client.get(f"/v1/batches/{batch['id']}/events").json()["data"]]
    assert "copied" in events
    assert "chunked" in events
    assert events.index("copied") < events.index("chunked")


def test_source_url_that_cannot_be_fetched_is_a_batch_error(
    server: Server, key: str, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/missing.csv").respond_with_data("gone", status=404)
    with server.client(key) as client:
        missing = create(client, source_url=f"http://127.0.0.1:{httpserver.port}/missing.csv")
        # loopback outside LOADBAY_FETCH_ALLOW (127.0.0.1 only): refused without connecting
        private = create(client, source_url=f"http://127.0.0.2:{httpserver.port}/data.csv")
        failed = wait_final(client, missing["id"])
        refused = wait_final(client, private["id"])
    assert failed["status"] == "error"
    assert failed["error"]["code"] == "FETCH_FAILED"
    assert failed["counts"] == counts()
    assert refused["status"] == "error"
    assert refused["error"]["code"] == "FETCH_REFUSED"
    assert [r.path for r, _ in httpserver.log] == ["/missing.csv"]


# lifecycle ------------------------------------------------------------------


def test_two_phase_batch_waits_at_validated_until_process(server: Server, key: str) -> None:
    body = "customer_number,name,country\nM1,One,US\nM2,Two,XX\nM3,Three,\n"
    with server.client(key) as client:
        validated = run(client, body, process="manual")
        assert validated["status"] == "validated"
        assert validated["process"] == "manual"
        assert validated["counts"] == counts(total=3, valid=2, invalid=1)
        assert error_keys(all_errors(client, validated["id"])) == [(1, "M2", "country", "INVALID_COUNTRY")]
        assert_problem(client.get(f"/v1/batches/{validated['id']}/results"), 409, "RESULTS_NOT_READY")
        # nothing applied yet: another batch still creates M1
        other = run(client, "customer_number,name,country\nM1,One,US\n")
        assert results(client, other["id"])[1][0]["loadbay_action"] == "created"
        assert client.get(f"/v1/batches/{validated['id']}").json()["status"] == "validated"

        post(client, validated["id"], "process")
        done = wait_final(client, validated["id"])
        assert done["status"] == "completed"
        assert done["outcome"] == "partial"
        assert done["counts"] == counts(total=3, valid=2, invalid=1, succeeded=2)
        _, rows = results(client, validated["id"])
        assert_problem(client.post(f"/v1/batches/{validated['id']}/process"), 409, "INVALID_STATE")
    assert [(r["customer_number"], r["loadbay_action"]) for r in rows] == [
        ("M1", "unchanged"),
        ("M2", ""),
        ("M3", "created"),
    ]


def test_cancel_a_validated_batch(server: Server, key: str) -> None:
    body = "customer_number,name,email\nK1,One,\nK2,Two,nope\nK3,Three,\n"
    with server.client(key) as client:
        validated = run(client, body, process="manual")
        assert validated["status"] == "validated"
        cancelled = post(client, validated["id"], "cancel")
        assert cancelled["status"] == "cancelled"
        assert cancelled["finished_at"] is not None
        assert cancelled["counts"] == counts(total=3, valid=2, invalid=1, unprocessed=2)
        assert cancelled["progress"]["fraction"] == 1.0
        assert_problem(client.post(f"/v1/batches/{validated['id']}/process"), 409, "INVALID_STATE")
        assert_problem(client.post(f"/v1/batches/{validated['id']}/cancel"), 409, "INVALID_STATE")
        _, rows = results(client, validated["id"])
        assert client.get(f"/v1/batches/{validated['id']}").json()["counts"]["succeeded"] == 0
    assert [(r["customer_number"], r["loadbay_status"], r["loadbay_error_code"]) for r in rows] == [
        ("K1", "unprocessed", "UNPROCESSED"),
        ("K2", "invalid", "INVALID_EMAIL"),
        ("K3", "unprocessed", "UNPROCESSED"),
    ]
    assert all(r["loadbay_action"] == "" and r["loadbay_entity_id"] == "" for r in rows)


def test_cancel_a_completed_batch_is_refused(server: Server, key: str) -> None:
    with server.client(key) as client:
        done = run(client, "customer_number,name\nD1,One\n")
        assert done["status"] == "completed"
        assert_problem(client.post(f"/v1/batches/{done['id']}/cancel"), 409, "INVALID_STATE")
        assert client.get(f"/v1/batches/{done['id']}").json()["status"] == "completed"


def test_clear_an_open_batch(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = create(client)
        put_page(client, batch["id"], 0, [{"customer_number": "L1", "name": "One"}])
        cleared = post(client, batch["id"], "clear")
        assert cleared["status"] == "cleared"
        page = client.put(f"/v1/batches/{batch['id']}/pages/0", json=[{"customer_number": "L1", "name": "x"}])
        assert_problem(page, 409, "BATCH_NOT_OPEN")
        data = client.put(f"/v1/batches/{batch['id']}/data", content=b"customer_number,name\nL1,x\n")
        assert_problem(data, 409, "BATCH_NOT_OPEN")
        assert_problem(client.post(f"/v1/batches/{batch['id']}/submit"), 409, "INVALID_STATE")
        assert_problem(client.get(f"/v1/batches/{batch['id']}/results"), 409, "RESULTS_NOT_READY")


def test_job_id_makes_create_idempotent(server: Server, key: str) -> None:
    body = {
        "type": TYPE,
        "job_id": "nightly-2024-05-01",
        "description": "nightly",
        "options": {"csv_delimiter": "semicolon"},
    }
    with server.client(key) as client:
        first = client.post("/v1/batches", json=body)
        assert first.status_code == 201, first.text
        again = client.post("/v1/batches", json=body)
        assert again.status_code == 200, again.text
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["job_id"] == "nightly-2024-05-01"
        other = client.post("/v1/batches", json=body | {"description": "something else"})
        assert_problem(other, 409, "JOB_ID_CONFLICT")
        listed = client.get("/v1/batches", params={"job_id": "nightly-2024-05-01"}).json()["data"]
        assert [b["id"] for b in listed] == [first.json()["id"]]


def test_job_id_sent_at_once_creates_one_batch(server: Server, key: str) -> None:
    body = {"type": TYPE, "job_id": "retry-storm"}
    answers = at_once(server, key, lambda c: c.post("/v1/batches", json=body))
    assert sorted(r.status_code for r in answers) == [200] * 5 + [201], [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1


# accounts -------------------------------------------------------------------


def test_another_accounts_batch_is_not_found(server: Server, key: str, other_key: str) -> None:
    stranger = other_key
    with server.client(key) as owner:
        done = run(owner, "customer_number,name,email\nO1,One,bad\n")
    path = f"/v1/batches/{done['id']}"
    with server.client(stranger) as client:
        assert_problem(client.get(path), 404, "NOT_FOUND")
        data = client.put(
            f"{path}/data", content=b"customer_number,name\nX,x\n", headers={"Content-Type": CSV}
        )
        assert_problem(data, 404, "NOT_FOUND")
        assert_problem(client.put(f"{path}/pages/0", json=[]), 404, "NOT_FOUND")
        assert_problem(client.post(f"{path}/submit"), 404, "NOT_FOUND")
        assert_problem(client.post(f"{path}/cancel"), 404, "NOT_FOUND")
        assert_problem(client.post(f"{path}/upload-url"), 404, "NOT_FOUND")
        assert_problem(client.get(f"{path}/errors"), 404, "NOT_FOUND")
        assert_problem(client.get(f"{path}/results"), 404, "NOT_FOUND")
        assert_problem(client.get(f"{path}/events"), 404, "NOT_FOUND")
        assert_problem(client.get(f"{path}/children"), 404, "NOT_FOUND")
        assert_problem(
            client.post("/v1/batches", json={"type": TYPE, "parent_id": done["id"]}),
            404,
            "NOT_FOUND",
        )
        assert client.get("/v1/batches").json()["data"] == []


def test_missing_or_unknown_key_is_unauthorized(server: Server, key: str) -> None:
    with server.client() as client:
        assert_problem(client.get("/v1/batches"), 401, "UNAUTHORIZED")
        assert_problem(client.post("/v1/batches", json={"type": TYPE}), 401, "UNAUTHORIZED")
        assert_problem(client.get("/v1/types"), 401, "UNAUTHORIZED")
        assert_problem(client.get("/v1/batches", headers={"X-Api-Key": "lb_live_nope"}), 401, "UNAUTHORIZED")
        bearer = client.get("/v1/batches", headers={"Authorization": f"Bearer {key}"})
        assert bearer.status_code == 200, bearer.text


def test_test_accounts_make_test_batches(server: Server, key: str) -> None:
    test_key = server.account(f"sandbox-{uuid.uuid4().hex[:8]}", test=True)
    with server.client(test_key) as client:
        assert_problem(
            client.post("/v1/batches", json={"type": TYPE, "test": False}),
            403,
            "TEST_MODE_MISMATCH",
        )
        assert create(client)["test"] is True
        assert create(client, test=True)["test"] is True
        done = run(client, "customer_number,name\nTT1,One\n")
        assert done["test"] is True
        assert done["counts"]["succeeded"] == 1
    with server.client(key) as live:
        assert_problem(live.post("/v1/batches", json={"type": TYPE, "test": True}), 403, "TEST_MODE_MISMATCH")
        assert create(live)["test"] is False


# data out -------------------------------------------------------------------


def test_errors_api_pages_through_every_error(server: Server, key: str) -> None:
    rows = [["customer_number", "name", "email", "country"]]
    expected = []
    for i in range(300):
        number = f"E{i:03d}"
        if i % 6 == 0:
            rows.append([number, "Fine", "", ""])
        elif i % 3 == 0:
            rows.append([number, "Bad country", "", "ZZ"])
            expected.append((i, number, "country", "INVALID_COUNTRY"))
        elif i % 2 == 0:
            rows.append([number, "", "", ""])
            expected.append((i, number, "name", "REQUIRED"))
        else:
            rows.append([number, "Bad email", "nope", ""])
            expected.append((i, number, "email", "INVALID_EMAIL"))
    assert len(expected) == 250
    with server.client(key) as client:
        done = run(client, csv_text(rows))
        assert done["counts"] == counts(total=300, valid=50, invalid=250, succeeded=50)
        pages = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = client.get(f"/v1/batches/{done['id']}/errors", params=params).json()
            pages.append(page["data"])
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
    assert [len(p) for p in pages] == [100, 100, 50]
    found = [e for p in pages for e in p]
    assert len({e["id"] for e in found}) == 250
    assert error_keys(found) == expected
    assert all(e["message"] for e in found)


def test_results_csv(server: Server, key: str) -> None:
    first = csv_text(
        [
            ["customer_number", "name", "balance"],
            ["R1", "Ada", "10.00"],
            ["R2", "=cmd()", "-5.00"],
            ["R3", "Cy", "1.234"],
        ]
    )
    with server.client(key) as client:
        done = run(client, first)
        assert done["counts"] == counts(total=3, valid=2, invalid=1, succeeded=2)
        header, rows = results(client, done["id"])
        assert header == COLUMNS + RESULT_COLUMNS
        assert [r["customer_number"] for r in rows] == ["R1", "R2", "R3"]
        assert rows[1]["name"] == "'=cmd()"
        assert rows[1]["balance"] == "-5.00"
        assert [r["loadbay_status"] for r in rows] == ["succeeded", "succeeded", "invalid"]
        assert [r["loadbay_action"] for r in rows] == ["created", "created", ""]
        assert rows[0]["loadbay_entity_id"] and rows[1]["loadbay_entity_id"]
        assert rows[2]["loadbay_entity_id"] == ""
        assert rows[2]["loadbay_error_code"] == "INVALID_DECIMAL"
        assert "balance" in rows[2]["loadbay_error_message"]
        assert all(r["loadbay_error_code"] == r["loadbay_error_message"] == "" for r in rows[:2])
        ids = {r["customer_number"]: r["loadbay_entity_id"] for r in rows[:2]}

        second = csv_text(
            [
                ["customer_number", "name", "balance"],
                ["R1", "Ada Lovelace", "10.00"],
                ["R2", "=cmd()", "-5"],
            ]
        )
        again = run(client, second)
        assert again["outcome"] == "succeeded"
        _, rows = results(client, again["id"])
        assert [(r["loadbay_action"], r["loadbay_entity_id"]) for r in rows] == [
            ("updated", ids["R1"]),
            ("unchanged", ids["R2"]),
        ]

        third = run(client, second)
        _, rows = results(client, third["id"])
        assert [r["loadbay_action"] for r in rows] == ["unchanged", "unchanged"]


# reading batches -------------------------------------------------------------


def test_list_batches_with_filters_and_cursor(server: Server, key: str) -> None:
    with server.client(key) as client:
        done = run(client, "customer_number,name\nF1,One\n")
        opened = [create(client)["id"] for _ in range(3)]
        newest_first = [*reversed(opened), done["id"]]

        pages = []
        params: dict[str, Any] = {"limit": 2}
        while True:
            page = client.get("/v1/batches", params=params).json()
            pages.append([b["id"] for b in page["data"]])
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert [p for p in pages if p] == [newest_first[:2], newest_first[2:]]

        by_status = client.get("/v1/batches", params={"status": "open"}).json()
        assert [b["id"] for b in by_status["data"]] == list(reversed(opened))
        assert by_status["next_cursor"] is None
        completed = client.get("/v1/batches", params={"status": "completed"}).json()["data"]
        assert [b["id"] for b in completed] == [done["id"]]
        by_type = client.get("/v1/batches", params={"type": TYPE}).json()["data"]
        assert [b["id"] for b in by_type] == newest_first
        assert client.get("/v1/batches", params={"type": "billing.invoice"}).json()["data"] == []
        both = client.get("/v1/batches", params={"type": TYPE, "status": "completed"}).json()["data"]
        assert [b["id"] for b in both] == [done["id"]]


def test_list_batches_in_any_of_several_statuses_or_types(server: Server, key: str) -> None:
    """`status` (and `type`) repeated, or comma-separated, is any of them: the last of a
    repeated status was the only one kept (the others' batches missing), a comma-separated
    list was a 400, and an unknown type an empty 200."""
    with server.client(key) as client:
        done = run(client, "customer_number,name\nS1,One\n")
        stopped = post(client, create(client)["id"], "cancel")
        opened = create(client)
        final = [stopped["id"], done["id"]]
        repeated = client.get("/v1/batches", params=[("status", "completed"), ("status", "cancelled")])
        assert [b["id"] for b in repeated.json()["data"]] == final, repeated.text
        listed = client.get("/v1/batches", params={"status": "completed, cancelled"})
        assert [b["id"] for b in listed.json()["data"]] == final, listed.text
        types = client.get("/v1/batches", params=[("type", TYPE), ("type", "billing.invoice")])
        assert [b["id"] for b in types.json()["data"]] == [opened["id"], *final], types.text

        unknown = assert_problem(client.get("/v1/batches", params={"type": "nope"}), 400, "UNKNOWN_TYPE")
        assert "'nope'" in unknown["detail"] and TYPE in unknown["detail"], unknown
        bogus = client.get("/v1/batches", params=[("status", "completed"), ("status", "done")])
        problem = assert_problem(bogus, 400, "INVALID_STATUS")
        assert "'done'" in problem["detail"] and "cancelled" in problem["detail"], problem


def test_children_of_a_parent(server: Server, key: str) -> None:
    with server.client(key) as client:
        parent = create(client, description="parent")
        child = create(client, parent_id=parent["id"], description="child")
        assert child["parent_id"] == parent["id"]
        children = client.get(f"/v1/batches/{parent['id']}/children").json()
        assert [c["id"] for c in children["data"]] == [child["id"]]
        assert client.get(f"/v1/batches/{child['id']}/children").json()["data"] == []

        put_data(client, parent["id"], "customer_number,name\nH1,Parent\n")
        put_data(client, child["id"], "customer_number,name\nH2,Child\n")
        post(client, parent["id"], "submit")  # submits the open children too
        assert wait_final(client, parent["id"])["status"] == "completed"
        assert wait_final(client, child["id"])["status"] == "completed"
        refused = client.post("/v1/batches", json={"type": TYPE, "parent_id": parent["id"]})
        # (it was CONFLICT, a code the error table does not have)
        said = assert_problem(refused, 409, "BATCH_NOT_OPEN")["detail"]
        assert said.startswith(
            f"parent batch {parent['id']} is completed; children join open batches only"
        ), said


def test_a_child_batch_has_no_children(server: Server, key: str) -> None:
    """A family is one level deep: a batch whose parent is a child was made (its cancel and
    submit reached the parent and its children only: the grandchild stayed open, and could
    be submitted and applied after its family was cancelled). It is refused now, as is a
    child whose type makes children of its own (they would be grandchildren)."""
    with server.client(key) as client:
        parent = create(client)
        child = create(client, parent_id=parent["id"])
        refused = client.post("/v1/batches", json={"type": TYPE, "parent_id": child["id"]})
        problem = assert_problem(refused, 409, "INVALID_PARENT")
        assert f"parent batch {child['id']} is itself a child of batch {parent['id']}" in problem["detail"]
        carried = {"type": "billing.carry_forward", "options": {"invoices": True}, "parent_id": parent["id"]}
        problem = assert_problem(client.post("/v1/batches", json=carried), 409, "INVALID_PARENT")
        assert "billing.carry_forward_invoice" in problem["detail"], problem
        family = client.get("/v1/batches").json()["data"]
    assert [b["id"] for b in family] == [child["id"], parent["id"]]  # nothing else was made


def test_a_child_cancelled_while_waiting_at_its_upload_url_does_not_hold_up_its_parent(
    server: Server, key: str
) -> None:
    """The file a cancelled child expected at its upload URL is never looked for again: the
    parent is submitted (it was a 409 FILE_NOT_UPLOADED on every submit) and completes."""
    with server.client(key) as client:
        parent = create(client)
        put_data(client, parent["id"], "customer_number,name\nK1,Parent\n")
        child = create(client, parent_id=parent["id"], upload_url=True, file_name="kid.csv")
        assert post(client, child["id"], "cancel")["status"] == "cancelled"
        assert post(client, parent["id"], "submit")["status"] == "queued"
        done = wait_final(client, parent["id"])
        kid = client.get(f"/v1/batches/{child['id']}").json()
        [never] = client.get(f"/v1/batches/{child['id']}/inputs").json()["data"]
    assert (done["status"], done["counts"]) == ("completed", counts(total=1, valid=1, succeeded=1))
    assert (kid["status"], kid["counts"]) == ("cancelled", counts())
    assert (never["name"], never["pending"], never["received_at"]) == ("kid.csv", False, None)


def test_events_in_order(server: Server, key: str) -> None:
    with server.client(key) as client:
        done = run(client, "customer_number,name\nV1,One\nV2,Two\n")
        events = client.get(f"/v1/batches/{done['id']}/events").json()["data"]
    assert [(e["event"], e["status"]) for e in events] == [
        ("created", "open"),
        ("file_received", "open"),
        ("submit", "queued"),
        ("start", "validating"),
        ("read", "validating"),  # read through before anything is staged: it applies early
        ("chunked", "validating"),
        ("apply", "processing"),  # an automatic batch moves on by itself
        ("complete", "completed"),
    ]
    stamps = [e["at"] for e in events]
    assert stamps == sorted(stamps)


def test_types(server: Server, key: str) -> None:
    with server.client(key) as client:
        r = client.get("/v1/types")
    assert r.status_code == 200, r.text
    types = {t["name"]: t for t in r.json()["data"]}
    customer = types[TYPE]
    assert customer["key"] == "customer_number"
    assert customer["columns"] == COLUMNS
    assert customer["required"] == ["customer_number", "name"]
    schema = customer["schema"]
    assert schema["type"] == "object"
    assert set(schema["properties"]) == set(COLUMNS)
    assert sorted(schema["required"]) == ["customer_number", "name"]


# Each listed type's key as /work/shared/TYPES.md (and docs/record-types.md) gives it.
KEYS = {
    "billing.customer": "customer_number",
    "billing.invoice": "invoice_number",
    "billing.invoice_line": "invoice_number + line_number",
    "billing.credit_memo": "memo_number",
    "billing.debit_memo": "memo_number",
    "billing.write_off": "invoice",
    "billing.payment": "reference",
    "billing.carry_forward": None,
    "assets.external_asset": "external_id",
    "assets.terminal_status": "terminal_id",
    **{f"catalog.user{x}": "id" for x in range(1, 10)},
    "mail.job": None,
}


def test_types_list_the_types_a_client_asks_for_with_their_keys(server: Server, key: str) -> None:
    """Every type a client sends, keyed as TYPES.md says; not the carry-forward's children,
    which loadbay makes with their parent and a client cannot create (they were listed, and
    invoice_line's key was invoice_number, carry_forward's customer_number and mail.job's
    position)."""
    with server.client(key) as client:
        listed = client.get("/v1/types").json()["data"]
        refused = client.post("/v1/batches", json={"type": "billing.nonsense"})
        carried = client.post(
            "/v1/batches", json={"type": "billing.carry_forward", "options": {"invoices": True}}
        )
        children = client.get(f"/v1/batches/{carried.json()['id']}/children").json()["data"]
        child = client.post("/v1/batches", json={"type": "billing.carry_forward_invoice"})
    assert {t["name"]: t["key"] for t in listed} == KEYS
    assert_problem(refused, 400, "UNKNOWN_TYPE")
    assert "carry_forward_" not in refused.json()["detail"], refused.json()  # nor named as known
    assert [c["type"] for c in children] == ["billing.carry_forward_invoice"]  # still made and served
    assert_problem(child, 400, "UNKNOWN_TYPE")  # made with a parent only
    assert "made by loadbay along with its parent batch" in child.json()["detail"]


def test_health_and_metrics(server: Server, key: str) -> None:
    with server.client(key) as client:
        create(client)
        health = client.get("/healthz")
        metrics = client.get("/metrics")
    assert health.status_code == 200, health.text
    assert health.json() == {"status": "ok", "workers": 1}
    assert metrics.status_code == 200, metrics.text
    assert "# TYPE loadbay_batches gauge" in metrics.text
    open_batches = [
        line
        for line in metrics.text.splitlines()
        if line.startswith('loadbay_batches{status="open",type="billing.customer"}')
    ]
    assert len(open_batches) == 1
    assert float(open_batches[0].split()[-1]) >= 1


def test_openapi_lists_the_native_paths(server: Server) -> None:
    with server.client() as client:
        r = client.get("/openapi.json")
    assert r.status_code == 200, r.text
    paths = r.json()["paths"]
    for expected in [
        "/v1/batches",
        "/v1/batches/{batch_id}",
        "/v1/batches/{batch_id}/data",
        "/v1/batches/{batch_id}/pages/{number}",
        "/v1/batches/{batch_id}/upload-url",
        "/v1/batches/{batch_id}/submit",
        "/v1/batches/{batch_id}/process",
        "/v1/batches/{batch_id}/cancel",
        "/v1/batches/{batch_id}/clear",
        "/v1/batches/{batch_id}/errors",
        "/v1/batches/{batch_id}/results",
        "/v1/batches/{batch_id}/children",
        "/v1/batches/{batch_id}/events",
        "/v1/types",
    ]:
        assert expected in paths, expected


def test_cancelling_a_parent_cancels_its_unfinished_children(server: Server, key: str) -> None:
    with server.client(key) as client:
        parent = create(client)
        child = create(client, parent_id=parent["id"])
        put_page(client, child["id"], 0, [{"customer_number": "P1", "name": "Child"}])
        cancelled = post(client, parent["id"], "cancel")
        assert cancelled["status"] == "cancelled"
        assert client.get(f"/v1/batches/{child['id']}").json()["status"] == "cancelled"


def test_numeric_keys_in_json_are_read_as_text(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = create(client, items=[{"customer_number": 12345, "name": "Numbered"}], submit=True)
        done = wait_final(client, batch["id"])
        rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/batches/{batch['id']}/results").text)))
    assert done["counts"]["succeeded"] == 1
    assert rows[0]["customer_number"] == "12345" and rows[0]["loadbay_action"] == "created"


def test_a_key_repeated_in_a_later_chunk_is_a_duplicate(server: Server, key: str) -> None:
    lines = ["customer_number,name"] + [f"D{i},Name {i}" for i in range(2500)] + ["D5,Again"]
    with server.client(key) as client:
        done = run(client, "\n".join(lines) + "\n")
        errors = client.get(f"/v1/batches/{done['id']}/errors").json()["data"]
    assert done["counts"] == counts(total=2501, valid=2500, invalid=1, succeeded=2500)
    assert [(e["index"], e["code"], e["external_id"]) for e in errors] == [(2500, "DUPLICATE_KEY", "D5")]
