"""Bad input of every kind gets a specific error and leaves stored data as it was.

Each malformed file, page, body, header or parameter must be answered with its own
HTTP status and `code` (application/problem+json), or, for data read by a worker,
with a batch `error` or a per-record error naming the record and the field. Refused
requests change nothing (status, counts, events); batch-level errors apply nothing;
and after every bad batch a good batch on the same server still completes, so no
worker crashed and nothing is stuck.

One account per module and backend keeps this fast: tests keep apart by giving their
customers numbers with a unique prefix.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from pytest_httpserver import HTTPServer

from tests.support.dripping import dripping
from tests.support.servers import Server, start_server, wait_final

CSV = "text/csv"
JSONL = "application/x-ndjson"
JSON = "application/json"
LIMIT = 5 * 1024 * 1024  # the module server's LOADBAY_MAX_UPLOAD_BYTES


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def owner(server: Server) -> str:
    """The module's main account (tests keep apart by customer-number prefixes)."""
    return server.account("bad-input-owner")


@pytest.fixture(scope="module")
def stranger(server: Server) -> str:
    """A second account, for the tenancy tests."""
    return server.account("bad-input-stranger")


@pytest.fixture(scope="module")
def client(server: Server, owner: str) -> Iterator[httpx.Client]:
    """The owner's client (one per module: making an httpx client is slow)."""
    with server.client(owner) as c:
        yield c


@pytest.fixture(scope="module")
def anon() -> Iterator[httpx.Client]:
    """A client without an API key, for signed URLs and auth checks."""
    with httpx.Client(timeout=30) as c:
        yield c


@pytest.fixture
def p() -> str:
    """A customer-number prefix unique to this test."""
    return f"T{uuid.uuid4().hex[:8]}-"


# --------------------------------------------------------------------------- helpers


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an application/problem+json answer with this status and code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status, body
    assert body["detail"], body
    return body


def create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/batches", json={"type": "billing.customer", **body})
    assert r.status_code == 201, r.text
    batch: dict[str, Any] = r.json()
    return batch


def put_data(
    client: httpx.Client, batch_id: int, body: Any, content_type: str = CSV, **params: str
) -> httpx.Response:
    return client.put(
        f"/v1/batches/{batch_id}/data", content=body, headers={"Content-Type": content_type}, params=params
    )


def upload(client: httpx.Client, batch_id: int, body: bytes, content_type: str = CSV) -> None:
    r = put_data(client, batch_id, body, content_type)
    assert r.status_code == 200, r.text


def submit(client: httpx.Client, batch_id: int) -> dict[str, Any]:
    r = client.post(f"/v1/batches/{batch_id}/submit")
    assert r.status_code == 200, r.text
    batch: dict[str, Any] = r.json()
    return batch


def start(client: httpx.Client, body: bytes, content_type: str = CSV, **create_args: Any) -> int:
    """Create, upload and submit: the batch's id."""
    batch = create(client, **create_args)
    upload(client, batch["id"], body, content_type)
    submit(client, batch["id"])
    batch_id: int = batch["id"]
    return batch_id


def run(client: httpx.Client, body: bytes, content_type: str = CSV, **create_args: Any) -> dict[str, Any]:
    """Create, upload, submit and wait: the batch in its final status."""
    return wait_final(client, start(client, body, content_type, **create_args), timeout=30)


def customers_csv(numbers: list[str]) -> bytes:
    rows = "".join(f"{n},Customer {n}\n" for n in numbers)
    return f"customer_number,name\n{rows}".encode()


def results(client: httpx.Client, batch_id: int) -> list[dict[str, str]]:
    r = client.get(f"/v1/batches/{batch_id}/results")
    assert r.status_code == 200, r.text
    return list(csv.DictReader(io.StringIO(r.text)))


def record_errors(client: httpx.Client, batch_id: int) -> list[dict[str, Any]]:
    r = client.get(f"/v1/batches/{batch_id}/errors")
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["data"]
    return rows


def error_triples(client: httpx.Client, batch_id: int) -> set[tuple[int, str, str | None]]:
    return {(e["index"], e["code"], e["field"]) for e in record_errors(client, batch_id)}


def snapshot(client: httpx.Client, batch_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Everything a refused request must leave unchanged: the batch and its events."""
    batch = client.get(f"/v1/batches/{batch_id}")
    events = client.get(f"/v1/batches/{batch_id}/events")
    assert batch.status_code == 200 and events.status_code == 200
    return batch.json(), events.json()["data"]


def assert_fresh(client: httpx.Client, numbers: list[str]) -> None:
    """A good batch still completes, and creates every one of `numbers`: none was stored before.

    Run after a bad batch, this shows that the bad batch wrote nothing and that the
    workers are alive and nothing is stuck.
    """
    done = run(client, customers_csv(numbers))
    assert done["status"] == "completed", done
    assert done["counts"]["succeeded"] == len(numbers), done
    rows = results(client, done["id"])
    assert [(r["customer_number"], r["loadbay_action"]) for r in rows] == [(n, "created") for n in numbers]


def assert_error_batch(batch: dict[str, Any], code: str) -> str:
    """A batch-level error: status `error`, the code, nothing counted; returns the message."""
    assert batch["status"] == "error", batch
    assert batch["error"]["code"] == code, batch
    counts = batch["counts"]
    assert counts["succeeded"] == counts["failed"] == counts["total"] == 0, batch
    message: str = batch["error"]["message"]
    assert message
    return message


# --------------------------------------------------------------------------- unreadable files


# (name, content type, body, error code, what the message must say); "P-" is the prefix.
DEEP = 100_000  # levels of nesting: 200 KB that would take ijson tens of GB of memory

UNREADABLE: list[tuple[str, str, bytes, str, str]] = [
    (
        "json-nested-too-deep",
        JSON,
        b'[{"customer_number": "P-1", "name": "One"}, {"customer_number": "P-2", "name": '
        + b"[" * DEEP
        + b"]" * DEEP
        + b"}]",
        "MALFORMED_FILE",
        "nested",
    ),
    (
        "csv-unterminated-quote",
        CSV,
        b'customer_number,name\nP-1,One\nP-2,"Two\nP-3,Three\n',
        "MALFORMED_FILE",
        r"\bline 3\b",
    ),
    ("csv-latin1", CSV, b"customer_number,name\nP-1,One\nP-2,caf\xe9\n", "BAD_ENCODING", r"\bline 3\b"),
    (
        "csv-bom-bad-bytes",
        CSV,
        b"\xef\xbb\xbfcustomer_number,name\nP-1,One\nP-2,\xff\xfe\n",
        "BAD_ENCODING",
        "UTF-8",
    ),
    (
        "jsonl-latin1",
        JSONL,
        b'{"customer_number": "P-1", "name": "One"}\n{"customer_number": "P-2", "name": "caf\xe9"}\n',
        "BAD_ENCODING",
        r"\bline 2\b",
    ),
    (
        "csv-missing-name",
        CSV,
        b"customer_number,email\nP-1,a@example.com\nP-2,b@example.com\n",
        "MISSING_COLUMN",
        r"\bname\b",
    ),
    ("csv-missing-key", CSV, b"Name,email\nOne,a@example.com\n", "MISSING_COLUMN", r"\bcustomer_number\b"),
    (
        "csv-duplicate-column",
        CSV,
        b"customer_number,name,NAME\nP-1,One,Uno\n",
        "MALFORMED_FILE",
        "duplicate column",
    ),
    ("csv-empty", CSV, b"", "MALFORMED_FILE", "empty"),
    (
        "json-syntax-error",
        JSON,
        b'[{"customer_number": "P-1", "name": "One"}, {"customer_number": ]',
        "MALFORMED_FILE",
        "JSON",
    ),
    (
        "json-truncated",
        JSON,
        b'[{"customer_number": "P-1", "name": "One"}, {"customer_number": "P-2"',
        "MALFORMED_FILE",
        "JSON",
    ),
    ("json-not-an-array", JSON, b'{"customer_number": "P-1", "name": "One"}', "MALFORMED_FILE", "array"),
]


def test_unreadable_files_are_batch_errors_and_apply_nothing(client: httpx.Client, p: str) -> None:
    """Every unreadable file: batch `error` with its code and a useful message; nothing applied.

    The batches run side by side (it is quicker, and workers see them interleaved).
    """
    started = {
        name: start(client, body.replace(b"P-", f"{p}{i}-".encode()), content_type)
        for i, (name, content_type, body, _code, _message) in enumerate(UNREADABLE)
    }
    for name, _content_type, _body, code, message in UNREADABLE:
        batch_id = started[name]
        done = wait_final(client, batch_id, timeout=30)
        text = assert_error_batch(done, code)
        assert re.search(message, text), (name, text)
        assert record_errors(client, batch_id) == [], name
        problem(client.get(f"/v1/batches/{batch_id}/results"), 409, "RESULTS_NOT_READY")
        events = [e["event"] for e in client.get(f"/v1/batches/{batch_id}/events").json()["data"]]
        assert "fail" in events and "complete" not in events, (name, events)
    # Records before the broken spot were read, but none may have been applied.
    assert_fresh(client, [f"{p}{i}-{n}" for i in range(len(UNREADABLE)) for n in (1, 2)])


@pytest.mark.parametrize(
    ("body", "content_type", "warning"),
    [
        (b"customer_number,name\n", CSV, "data: the file has a header row but no records"),
        (b"\xef\xbb\xbfcustomer_number,name\r\n\r\n", CSV, "data: the file has a header row but no records"),
        (b"[]", JSON, "data: the file holds no records"),
        (b"\n\n", JSONL, "data: the file holds no records"),
    ],
)
def test_a_file_with_no_records_completes_with_a_warning(
    client: httpx.Client, body: bytes, content_type: str, warning: str
) -> None:
    """A header and nothing after it (or an empty array, or blank lines) is a file of no
    records: the batch completes with none, and its warning says so (a header-only CSV
    completed with no word). An empty file, with no header, is MALFORMED_FILE (above)."""
    done = run(client, body, content_type)
    assert (done["status"], done["outcome"], done["counts"]["total"]) == ("completed", "succeeded", 0), done
    assert done["warnings"] == [warning], done


def test_error_batch_takes_no_more_data_and_can_be_cleared(client: httpx.Client, p: str) -> None:
    done = run(client, b"customer_number,email\nX,a@example.com\n")
    assert_error_batch(done, "MISSING_COLUMN")
    problem(put_data(client, done["id"], customers_csv([f"{p}1"])), 409, "BATCH_NOT_OPEN")
    problem(client.post(f"/v1/batches/{done['id']}/submit"), 409, "INVALID_STATE")
    problem(client.post(f"/v1/batches/{done['id']}/process"), 409, "INVALID_STATE")
    cleared = client.post(f"/v1/batches/{done['id']}/clear")
    assert cleared.status_code == 200 and cleared.json()["status"] == "cleared", cleared.text
    assert_fresh(client, [f"{p}1"])


# --------------------------------------------------------------------------- bad records


def test_csv_row_with_too_many_cells_is_one_invalid_record(client: httpx.Client, p: str) -> None:
    body = f"customer_number,name\n{p}1,One\n{p}2,Two,surplus\n{p}3,Three\n".encode()
    done = run(client, body)
    assert done["status"] == "completed" and done["outcome"] == "partial", done
    assert done["counts"]["total"] == 3, done
    assert (done["counts"]["invalid"], done["counts"]["succeeded"]) == (1, 2), done
    [error] = record_errors(client, done["id"])
    assert (error["index"], error["code"]) == (1, "MALFORMED_ROW"), error
    assert "3 cells" in error["message"], error
    rows = results(client, done["id"])
    assert [r["loadbay_status"] for r in rows] == ["succeeded", "invalid", "succeeded"]
    assert rows[1]["loadbay_error_code"] == "MALFORMED_ROW"
    assert_fresh(client, [f"{p}2"])  # the malformed row was not applied


def test_a_row_with_too_many_cells_is_named_by_its_key_cell(client: httpx.Client, p: str) -> None:
    """Its external id is its key cell's, in the errors and in the result and refused files,
    which show its cells under the header's columns (it was external_id null, cells empty)."""
    body = f"customer_number,name,email\n{p}1,One,\n{p}2,Smith, Jo,jo@example.com\n".encode()
    done = run(client, body)
    assert (done["counts"]["invalid"], done["counts"]["succeeded"]) == (1, 1), done
    [error] = record_errors(client, done["id"])
    assert (error["index"], error["external_id"], error["code"]) == (1, f"{p}2", "MALFORMED_ROW"), error
    summary = client.get(f"/v1/batches/{done['id']}/errors/summary").json()
    assert [e["external_id"] for g in summary["groups"] for e in g["examples"]] == [f"{p}2"]
    row = results(client, done["id"])[1]
    refused = client.get(
        f"/v1/batches/{done['id']}/results", params={"outcome": "invalid,failed,unprocessed"}
    )
    [refused_row] = list(csv.DictReader(io.StringIO(refused.text)))
    for shown in (row, refused_row):
        assert (shown["customer_number"], shown["name"], shown["email"]) == (f"{p}2", "Smith", " Jo"), shown
        assert (shown["loadbay_status"], shown["loadbay_error_code"]) == ("invalid", "MALFORMED_ROW"), shown


def test_jsonl_bad_line_is_one_invalid_record(client: httpx.Client, p: str) -> None:
    lines = [
        json.dumps({"customer_number": f"{p}1", "name": "One"}),
        '{"customer_number": "' + p + '2", "name": ',
        "",  # blank lines are skipped, not records
        '["not", "an", "object"]',
        json.dumps({"customer_number": f"{p}3", "name": "Three"}),
    ]
    done = run(client, "\n".join(lines).encode() + b"\n", JSONL)
    assert done["status"] == "completed" and done["outcome"] == "partial", done
    assert (done["counts"]["total"], done["counts"]["invalid"], done["counts"]["succeeded"]) == (4, 2, 2)
    errors = record_errors(client, done["id"])
    assert [(e["index"], e["code"]) for e in errors] == [(1, "INVALID_JSON"), (2, "INVALID_JSON")]
    assert "line 2" in errors[0]["message"] and "line 4" in errors[1]["message"], errors
    assert_fresh(client, [f"{p}2"])


def test_an_unreadable_json_line_shows_its_text_in_the_refused_file(client: httpx.Client, p: str) -> None:
    """Its row in the result and refused files has the line's text in the type's first column
    (the cells were all empty); its key is not known, so its external id stays null."""
    broken = '{"customer_number": "' + p + '2", "name": '
    lines = [
        json.dumps({"customer_number": f"{p}1", "name": "One"}),
        f"  {broken}",
        '["not", "an", "object"]',
    ]
    done = run(client, ("\n".join(lines) + "\n").encode(), JSONL)
    assert (done["counts"]["invalid"], done["counts"]["succeeded"]) == (2, 1), done
    errors = record_errors(client, done["id"])
    assert [(e["index"], e["external_id"], e["code"]) for e in errors] == [
        (1, None, "INVALID_JSON"),
        (2, None, "INVALID_JSON"),
    ]
    refused = client.get(
        f"/v1/batches/{done['id']}/results", params={"outcome": "invalid,failed,unprocessed"}
    )
    rows = list(csv.DictReader(io.StringIO(refused.text)))
    assert [(r["customer_number"], r["name"], r["loadbay_error_code"]) for r in rows] == [
        (broken.strip(), "", "INVALID_JSON"),  # without the white space around it
        ('["not", "an", "object"]', "", "INVALID_JSON"),
    ]
    assert [r["customer_number"] for r in results(client, done["id"])] == [f"{p}1", broken.strip(), lines[2]]


def test_page_item_that_is_not_an_object_is_one_invalid_record(client: httpx.Client, p: str) -> None:
    batch = create(client)
    items = [
        {"customer_number": f"{p}1", "name": "One"},
        42,
        "text",
        None,
        {"customer_number": f"{p}2", "name": "Two"},
    ]
    r = client.put(f"/v1/batches/{batch['id']}/pages/0", json=items)
    assert r.status_code == 200, r.text
    submit(client, batch["id"])
    done = wait_final(client, batch["id"], timeout=30)
    assert done["status"] == "completed", done
    assert (done["counts"]["invalid"], done["counts"]["succeeded"]) == (3, 2), done
    assert error_triples(client, batch["id"]) == {(i, "INVALID_RECORD", None) for i in (1, 2, 3)}


def test_text_no_database_can_hold_is_one_invalid_record(client: httpx.Client, p: str) -> None:
    """U+0000 (PostgreSQL text refuses it) and unpaired surrogates: the record is refused, on both backends.

    Before the readers refused them, such a record left its batch `processing` for ever on
    PostgreSQL (NUL) or on both (a surrogate cannot be encoded as UTF-8).
    """

    def rec(number: str, **fields: str) -> dict[str, str]:
        return {"customer_number": f"{p}{number}", "name": "Fine"} | fields

    # json.dumps writes U+0000 as \u0000 and a lone surrogate as \ud800: valid JSON text.
    jsonl = [
        rec("j0", name="a\x00b"),
        rec("j1", name="\ud800"),
        rec("j2", email="x\x00@example.com"),
        rec("j3"),
    ]
    sources = {
        "csv": (f"customer_number,name\n{p}c0,a\x00b\n{p}c1,Fine\n".encode(), CSV),
        "jsonl": ("\n".join(map(json.dumps, jsonl)).encode(), JSONL),
        "json": (json.dumps([rec("a0", name="a\x00"), rec("a1")]).encode(), JSON),
    }
    started = {how: start(client, body, content_type) for how, (body, content_type) in sources.items()}
    paged = create(client)
    page = json.dumps([rec("p0", name="\udfff x"), rec("p1")]).encode()
    r = client.put(f"/v1/batches/{paged['id']}/pages/0", content=page, headers={"Content-Type": JSON})
    assert r.status_code == 200, r.text
    started["page"] = submit(client, paged["id"])["id"]
    expected = {
        "csv": ([0], "MALFORMED_ROW", "NUL"),
        "jsonl": ([0, 1, 2], "INVALID_RECORD", "NUL|surrogate"),
        "json": ([0], "INVALID_RECORD", "NUL"),
        "page": ([0], "INVALID_RECORD", "surrogate"),
    }
    for how, batch_id in started.items():
        indexes, code, message = expected[how]
        done = wait_final(client, batch_id, timeout=30)
        assert done["status"] == "completed", (how, done)
        assert (done["counts"]["invalid"], done["counts"]["succeeded"]) == (len(indexes), 1), (how, done)
        errors = record_errors(client, batch_id)
        assert [(e["index"], e["code"]) for e in errors] == [(i, code) for i in indexes], (how, errors)
        assert all(re.search(message, e["message"]) for e in errors), (how, errors)
        assert len(results(client, batch_id)) == len(indexes) + 1, how
    assert_fresh(client, [f"{p}c0", f"{p}j0", f"{p}j2", f"{p}a0", f"{p}p0"])


def test_deeply_nested_json_line_is_one_invalid_record(client: httpx.Client, p: str) -> None:
    deep = json.dumps({"customer_number": f"{p}0", "name": "x", "extra": "@"}).replace(
        '"@"', "[" * DEEP + "]" * DEEP
    )
    body = "\n".join([deep, json.dumps({"customer_number": f"{p}1", "name": "Fine"})]).encode()
    done = run(client, body, JSONL)
    assert done["status"] == "completed", done
    assert (done["counts"]["invalid"], done["counts"]["succeeded"]) == (1, 1), done
    [error] = record_errors(client, done["id"])
    assert (error["index"], error["code"]) == (0, "INVALID_JSON") and "deep" in error["message"], error


def _bad_values(p: str) -> tuple[list[dict[str, Any]], set[tuple[int, str, str | None]]]:
    """Records with one bad field each (and one with two), and the errors expected."""
    ok = {"name": "Fine", "email": "a@example.com", "country": "NZ", "currency": "NZD", "balance": "12.50"}
    records: list[dict[str, Any]] = [
        {"customer_number": f"{p}0", "name": "Zero", "email": "not-an-email"},
        {"customer_number": f"{p}1", "name": "One", "country": "ZZ"},
        {"customer_number": f"{p}2", "name": "Two", "currency": "XXX"},
        {"customer_number": f"{p}3", "name": "Three", "balance": "1.234"},
        {"customer_number": f"{p}4", "name": "Four", "balance": "lots"},
        {"customer_number": f"{p}5" + "x" * 40, "name": "Five"},
        {"customer_number": f"{p}6", "name": "N" * 201},
        {"customer_number": f"{p}7"},
        {"name": "No key"},
        {"customer_number": f"{p}9", "name": "Nine", "email": "bad@", "country": "QQ"},
        {"customer_number": f"{p}10", **ok},
        {"customer_number": f"{p}10", **ok, "name": "Again"},
        {"customer_number": f"{p}12", "name": "Twelve", "status": "Dormant"},
    ]
    expected: set[tuple[int, str, str | None]] = {
        (0, "INVALID_EMAIL", "email"),
        (1, "INVALID_COUNTRY", "country"),
        (2, "INVALID_CURRENCY", "currency"),
        (3, "INVALID_DECIMAL", "balance"),
        (4, "INVALID_DECIMAL", "balance"),
        (5, "TOO_LONG", "customer_number"),
        (6, "TOO_LONG", "name"),
        (7, "REQUIRED", "name"),
        (8, "REQUIRED", "customer_number"),
        (9, "INVALID_EMAIL", "email"),
        (9, "INVALID_COUNTRY", "country"),
        (11, "DUPLICATE_KEY", "customer_number"),
        (12, "INVALID_VALUE", "status"),
    }
    return records, expected


COLUMNS = ["customer_number", "name", "email", "country", "currency", "balance", "status"]


def _send_records(client: httpx.Client, batch_id: int, records: list[dict[str, Any]], how: str) -> None:
    if how == "page":
        r = client.put(f"/v1/batches/{batch_id}/pages/0", json=records)
        assert r.status_code == 200, r.text
        return
    if how == "jsonl":
        upload(client, batch_id, "".join(json.dumps(r) + "\n" for r in records).encode(), JSONL)
        return
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    upload(client, batch_id, out.getvalue().encode(), CSV)


def test_invalid_values_name_the_record_field_and_code(client: httpx.Client, p: str) -> None:
    """The same bad records as CSV, JSON Lines and a JSON page: the same errors each time."""
    started = {}
    for how in ("csv", "jsonl", "page"):
        records, expected = _bad_values(f"{p}{how}-")
        batch = create(client)
        _send_records(client, batch["id"], records, how)
        started[how] = submit(client, batch["id"])["id"]
    for how, batch_id in started.items():
        prefix = f"{p}{how}-"
        _records, expected = _bad_values(prefix)
        done = wait_final(client, batch_id, timeout=30)
        assert done["status"] == "completed" and done["outcome"] == "partial", (how, done)
        counts = done["counts"]
        assert (counts["total"], counts["invalid"], counts["succeeded"], counts["failed"]) == (
            13,
            12,
            1,
            0,
        ), how
        errors = record_errors(client, batch_id)
        assert {(e["index"], e["code"], e["field"]) for e in errors} == expected, how
        by_index = {e["index"]: e for e in errors}
        assert by_index[0]["external_id"] == f"{prefix}0", how
        assert by_index[11]["external_id"] == f"{prefix}10", how
        assert all(e["message"] for e in errors), how
        rows = results(client, batch_id)
        assert len(rows) == 13, how
        assert (rows[10]["loadbay_status"], rows[10]["loadbay_action"]) == ("succeeded", "created"), how
        assert (rows[11]["loadbay_status"], rows[11]["loadbay_error_code"]) == ("invalid", "DUPLICATE_KEY"), (
            how
        )
        assert rows[9]["loadbay_error_code"] == "INVALID_EMAIL;INVALID_COUNTRY", how
    # Only the one valid record of each batch was written.
    assert_fresh(client, [f"{p}{how}-{i}" for how in started for i in (0, 1, 2, 3, 4, 7, 9, 12)])


# --------------------------------------------------------------------------- uploads


def test_oversized_upload_with_content_length_is_refused(client: httpx.Client, p: str) -> None:
    batch = create(client)
    body = customers_csv([f"{p}1"]) + b"x" * LIMIT
    body_problem = problem(put_data(client, batch["id"], body), 413, "PAYLOAD_TOO_LARGE")
    assert f"at most 5 MiB ({LIMIT} bytes)" in body_problem["detail"], body_problem
    assert f"the upload is 5 MiB ({len(body)} bytes)" in body_problem["detail"], body_problem
    problem(client.post(f"/v1/batches/{batch['id']}/submit"), 409, "NO_DATA")
    assert client.get(f"/v1/batches/{batch['id']}").json()["status"] == "open"
    upload(client, batch["id"], customers_csv([f"{p}1"]))
    done = wait_final(client, submit(client, batch["id"])["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b"customer_number,name\n"
    sent = 0
    while sent < total:
        yield b"y" * size
        sent += size


def test_oversized_streamed_upload_is_refused(client: httpx.Client, p: str) -> None:
    batch = create(client)
    r = client.put(
        f"/v1/batches/{batch['id']}/data", content=_chunks(LIMIT + 1), headers={"Content-Type": CSV}
    )
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert f"over 5 MiB ({LIMIT} bytes)" in problem(r, 413, "PAYLOAD_TOO_LARGE")["detail"]
    problem(client.post(f"/v1/batches/{batch['id']}/submit"), 409, "NO_DATA")
    upload(client, batch["id"], customers_csv([f"{p}1"]))
    done = wait_final(client, submit(client, batch["id"])["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done


def test_oversized_replacement_keeps_the_earlier_file(client: httpx.Client, p: str) -> None:
    batch = create(client)
    upload(client, batch["id"], customers_csv([f"{p}1", f"{p}2"]))
    before = snapshot(client, batch["id"])
    r = client.put(
        f"/v1/batches/{batch['id']}/data", content=_chunks(LIMIT + 1), headers={"Content-Type": CSV}
    )
    problem(r, 413, "PAYLOAD_TOO_LARGE")
    assert snapshot(client, batch["id"]) == before
    done = wait_final(client, submit(client, batch["id"])["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 2, done


@pytest.mark.parametrize(
    "content_type",
    [
        "image/png",
        "text/csv; charset=latin-1",
        "application/json; charset=utf-16",
        "application/xml",
        "",
        "text/html",
    ],
)
def test_unsupported_content_type_is_refused(client: httpx.Client, p: str, content_type: str) -> None:
    batch = create(client)
    before = snapshot(client, batch["id"])
    problem(
        put_data(client, batch["id"], customers_csv([f"{p}1"]), content_type), 415, "UNSUPPORTED_MEDIA_TYPE"
    )
    assert snapshot(client, batch["id"]) == before
    problem(client.post(f"/v1/batches/{batch['id']}/submit"), 409, "NO_DATA")


def test_content_type_by_file_name_and_utf8_charset_are_accepted(client: httpx.Client, p: str) -> None:
    batch = create(client)
    r = put_data(client, batch["id"], customers_csv([f"{p}1"]), "application/octet-stream", name="a.csv")
    assert r.status_code == 200, r.text
    r = put_data(client, batch["id"], customers_csv([f"{p}2"]), "text/csv; charset=UTF-8", name="b")
    assert r.status_code == 200, r.text
    done = wait_final(client, submit(client, batch["id"])["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 2, done


@pytest.mark.parametrize(
    ("name", "url_code"),
    [("", "INVALID_NAME"), (".", "INVALID_NAME"), ("..", "INVALID_NAME"), ("n" * 300, "INVALID_INPUT")]
    + [("\u00e9" * 120, "INVALID_NAME"), ("a\x00b.csv", "INVALID_NAME")],
)
def test_bad_file_name_is_refused(client: httpx.Client, p: str, name: str, url_code: str) -> None:
    batch = create(client)
    before = snapshot(client, batch["id"])
    problem(put_data(client, batch["id"], customers_csv([f"{p}1"]), name=name), 400, "INVALID_NAME")
    problem(client.post(f"/v1/batches/{batch['id']}/upload-url", json={"name": name}), 400, url_code)
    assert snapshot(client, batch["id"]) == before
    # The batch is not damaged: a well-named file still goes in and through.
    upload(client, batch["id"], customers_csv([f"{p}1"]))
    done = wait_final(client, submit(client, batch["id"])["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done


# --------------------------------------------------------------------------- create


def test_unknown_type_is_refused(client: httpx.Client) -> None:
    job = uuid.uuid4().hex
    body = problem(
        client.post("/v1/batches", json={"type": "billing.nonsense", "job_id": job}), 400, "UNKNOWN_TYPE"
    )
    assert "billing.nonsense" in body["detail"]
    assert client.get("/v1/batches", params={"job_id": job}).json()["data"] == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"process": "sometimes"}, "process"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"page_size": 2**40}, "page_size"),
        ({"total_items": -1}, "total_items"),
        ({"total_items": 2**70}, "total_items"),
        ({"options": ["a"]}, "options"),
        ({"items": {"a": 1}}, "items"),
        ({"job_id": "j" * 201}, "job_id"),
        ({"type": 7}, "type"),
        ({"submit": "maybe"}, "submit"),
    ],
)
def test_bad_create_body_names_the_field(client: httpx.Client, extra: dict[str, Any], field: str) -> None:
    job = uuid.uuid4().hex
    body = {"type": "billing.customer", "job_id": job} | extra
    answer = problem(client.post("/v1/batches", json=body), 400, "INVALID_INPUT")
    assert field in answer["detail"], answer
    assert field in [e["field"] for e in answer["errors"]], answer
    if "job_id" not in extra:
        assert client.get("/v1/batches", params={"job_id": job}).json()["data"] == []


@pytest.mark.parametrize(
    ("batch_type", "options", "unknown", "taken"),
    [
        ("billing.customer", {"colour": "blue"}, "options.colour", "csv_delimiter, unknown_columns"),
        (
            "billing.customer",
            {"csv_delimiter": "semicolon", "delimiter": ";", "fileName": "x.csv"},
            "options.delimiter, options.fileName",
            "csv_delimiter, unknown_columns",
        ),
        (
            "billing.carry_forward",
            {"invoices": True, "invoice": True},
            "options.invoice",
            "credit_memos, debit_memos, invoices, zero_out_customer_balance",
        ),
        ("billing.carry_forward", {"csv_delimiter": "tab"}, "options.csv_delimiter", "credit_memos"),
    ],
)
def test_an_option_the_type_does_not_take_is_refused(
    client: httpx.Client, batch_type: str, options: dict[str, Any], unknown: str, taken: str
) -> None:
    """An option no batch of the type reads is a 400 UNKNOWN_OPTION naming it and the ones the
    type takes, and no batch is made (it was stored silently, or INVALID_OPTIONS with pydantic's
    words for a carry-forward)."""
    job = uuid.uuid4().hex
    r = client.post("/v1/batches", json={"type": batch_type, "job_id": job, "options": options})
    body = problem(r, 400, "UNKNOWN_OPTION")
    assert body["detail"].startswith(f"{unknown}: not an option of {batch_type} batches"), body
    assert taken in body["detail"], body
    assert client.get("/v1/batches", params={"job_id": job}).json()["data"] == []


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{", JSON),
        (b"[]", JSON),
        (b"", JSON),
    ],
)
def test_create_body_that_is_not_a_json_object_is_refused(
    client: httpx.Client, content: bytes, content_type: str
) -> None:
    r = client.post("/v1/batches", content=content, headers={"Content-Type": content_type})
    problem(r, 400, "INVALID_INPUT")


HOOK_URL = "https://hooks.example.com/loadbay"
JSON_ROUTES = ["create", "page", "upload-url", "retry", "webhook", "webhook-update"]


def json_request(client: httpx.Client, route: str, p: str) -> tuple[str, str, Any]:
    """A request of one of the routes that take a JSON body: (method, path, a body it takes)."""
    if route == "create":
        return "POST", "/v1/batches", {"type": "billing.customer", "job_id": f"{p}job"}
    if route == "page":
        return (
            "PUT",
            f"/v1/batches/{create(client)['id']}/pages/0",
            [{"customer_number": f"{p}1", "name": "A"}],
        )
    if route == "upload-url":
        return "POST", f"/v1/batches/{create(client)['id']}/upload-url", {"name": "a.csv"}
    if route == "retry":
        done = run(client, customers_csv([f"{p}1"]) + b",\n")  # a record with no key: invalid
        return "POST", f"/v1/batches/{done['id']}/retry", {"outcomes": ["invalid"]}
    if route == "webhook":
        return "POST", "/v1/webhooks", {"url": HOOK_URL, "enabled": False, "description": p}
    made = client.post("/v1/webhooks", json={"url": HOOK_URL, "enabled": False})
    assert made.status_code == 201, made.text
    return "PATCH", f"/v1/webhooks/{made.json()['id']}", {"description": p}


def account_state(client: httpx.Client, path: str) -> tuple[Any, ...]:
    """What a refused request to `path` must leave as it was: which batches the account has,
    the inputs and events of the batch it names, the account's webhooks."""
    batches = [b["id"] for b in client.get("/v1/batches", params={"limit": 5}).json()["data"]]
    named = re.match(r"/v1/batches/(\d+)", path)
    batch = snapshot(client, int(named[1])) if named else None
    inputs = client.get(f"/v1/batches/{named[1]}/inputs").json() if named else None
    return batches, batch and batch[1], inputs, client.get("/v1/webhooks").json()["data"]


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize(
    ("content_type", "said"),
    [
        ("text/plain", "text/plain"),
        ("application/x-www-form-urlencoded", "x-www-form-urlencoded"),  # curl -d's
        ("text/csv", "text/csv"),
        ("application/json; charset=latin-1", "charset 'latin-1'"),
        ("application/json; charset=utf-16", "charset 'utf-16'"),
    ],
)
def test_a_json_body_of_another_media_type_is_415(
    client: httpx.Client, p: str, route: str, content_type: str, said: str
) -> None:
    """Every route that takes a JSON body refuses one labelled as something else, or with
    another charset, as PUT …/data refuses a file type it does not read; nothing changes."""
    method, path, body = json_request(client, route, p)
    before = account_state(client, path)
    sent = client.request(
        method, path, content=json.dumps(body).encode(), headers={"Content-Type": content_type}
    )
    answer = problem(sent, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert said in answer["detail"], answer
    assert account_state(client, path) == before
    again = client.request(method, path, json=body)  # the same body, as JSON, is taken
    assert again.status_code < 300, again.text


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json; charset=UTF-8",
        'application/json;charset="utf-8"',
        "application/merge-patch+json",
    ],
)
def test_a_json_body_is_read_with_no_content_type_or_a_json_one(
    client: httpx.Client, content_type: str | None
) -> None:
    """No Content-Type at all (`requests.post(url, data=…)`, `curl --upload-file`): JSON."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    body = json.dumps({"type": "billing.customer", "description": "café"}).encode()
    made = client.post("/v1/batches", content=body, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["description"] == "café"


@pytest.mark.parametrize(
    ("route", "content", "said"),
    [
        (
            "create",
            b'{"type": "billing.customer",',
            "not valid JSON at line 1, column 29: the body ends there",
        ),
        (
            "create",
            b'{\n  "type": "billing.customer"\n  "job_id": "x"\n}',
            "not valid JSON at line 3, column 3",
        ),
        ("page", b'[{"customer_number": "C1",', "not valid JSON at line 1, column 27"),
        ("page", b'[{"name": "a\tb"}]', "at line 1, column 13: a control character"),
        ("create", b'{"type":\n "caf\xe9"}', "not UTF-8 at line 2, column 6: byte 0xe9"),
        ("page", b"[" * DEEP + b"]" * DEEP, "at most 64"),
        (
            "create",
            b'{"type": "billing.customer",\n "page_size": NaN}',
            "not valid JSON at line 2, column 15: NaN is not a JSON number",
        ),
        ("page", '[{"customer_number": "C1"}]'.encode("utf-16"), "not UTF-8: it reads as UTF-16 text"),
        ("create", '{"type": "billing.customer"}'.encode("utf-32-le"), "it reads as UTF-32-LE text"),
    ],
)
def test_a_body_that_is_not_json_says_what_is_wrong_and_where(
    client: httpx.Client, route: str, content: bytes, said: str
) -> None:
    """Not an offset named as a field ("28"), nor "There was an error parsing the body": the
    body's fault, in lines and columns, on the field `body`."""
    method, path = (
        ("POST", "/v1/batches")
        if route == "create"
        else ("PUT", f"/v1/batches/{create(client)['id']}/pages/0")
    )
    answer = problem(
        client.request(method, path, content=content, headers={"Content-Type": JSON}), 400, "INVALID_INPUT"
    )
    assert said in answer["detail"], answer
    assert [e["field"] for e in answer["errors"]] == ["body"], answer
    assert answer["detail"] == f"body: {answer['errors'][0]['message']}", answer


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "a\x00b"),
        ("description", "\ud800"),
        ("job_id", "j\x00"),
        ("source_url", "http://example.com/a\x00.csv"),
        ("options", {"note": ["\udc00"]}),
        ("file_name", "a\x00.csv"),
    ],
)
def test_create_body_with_text_no_database_can_hold_is_refused(
    client: httpx.Client, field: str, value: Any
) -> None:
    """U+0000 and unpaired surrogates: 400 naming the field on both backends (PostgreSQL answered 500)."""
    job = uuid.uuid4().hex
    body = json.dumps({"type": "billing.customer", "job_id": job} | {field: value})  # \u0000, \ud800
    r = client.post("/v1/batches", content=body.encode(), headers={"Content-Type": JSON})
    answer = problem(r, 400, "INVALID_INPUT")
    assert field in [e["field"] for e in answer["errors"]], answer
    assert client.get("/v1/batches", params={"job_id": job}).json()["data"] == []


@pytest.mark.parametrize("param", ["job_id", "status", "type"])
def test_list_filter_with_nul_is_refused(client: httpx.Client, param: str) -> None:
    answer = problem(client.get("/v1/batches", params={param: "a\x00b"}), 400, "INVALID_INPUT")
    assert param in answer["detail"], answer


def test_test_flag_of_other_mode_is_refused(client: httpx.Client) -> None:
    problem(
        client.post("/v1/batches", json={"type": "billing.customer", "test": True}), 403, "TEST_MODE_MISMATCH"
    )


def test_job_id_reused_with_another_body_is_a_conflict(client: httpx.Client) -> None:
    job = uuid.uuid4().hex
    first = create(client, job_id=job, description="one")
    again = client.post("/v1/batches", json={"type": "billing.customer", "job_id": job, "description": "one"})
    assert again.status_code == 200 and again.json()["id"] == first["id"], again.text
    before = snapshot(client, first["id"])
    other = {"type": "billing.customer", "job_id": job, "description": "two"}
    problem(client.post("/v1/batches", json=other), 409, "JOB_ID_CONFLICT")
    assert snapshot(client, first["id"]) == before


# --------------------------------------------------------------------------- pages


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b'{"customer_number": "x", "name": "y"}', "INVALID_PAGE"),
        (b'"text"', "INVALID_PAGE"),
        (b"42", "INVALID_PAGE"),
        (b'{"items": "nope"}', "INVALID_PAGE"),
        (b"[{", "INVALID_INPUT"),
        (b"", "INVALID_INPUT"),
        (b"[" * DEEP + b"]" * DEEP, "INVALID_INPUT"),
    ],
)
def test_page_body_that_is_not_an_array_is_refused(client: httpx.Client, content: bytes, code: str) -> None:
    batch = create(client)
    before = snapshot(client, batch["id"])
    r = client.put(f"/v1/batches/{batch['id']}/pages/0", content=content, headers={"Content-Type": JSON})
    problem(r, 400, code)
    assert snapshot(client, batch["id"]) == before
    problem(client.post(f"/v1/batches/{batch['id']}/submit"), 409, "NO_DATA")


def test_page_numbers_and_sizes_are_checked(client: httpx.Client, p: str) -> None:
    batch = create(client, page_size=2, total_items=3)
    bid = batch["id"]
    item = [{"customer_number": f"{p}{i}", "name": f"N{i}"} for i in range(4)]
    before = snapshot(client, bid)
    problem(client.put(f"/v1/batches/{bid}/pages/0", json=item[:3]), 400, "PAGE_TOO_LARGE")
    problem(client.put(f"/v1/batches/{bid}/pages/1", json=item[2:4]), 409, "PAGE_BEYOND_TOTAL")
    problem(client.put(f"/v1/batches/{bid}/pages/2", json=item[:1]), 409, "PAGE_BEYOND_TOTAL")
    problem(client.put(f"/v1/batches/{bid}/pages/-1", json=item[:1]), 400, "INVALID_PAGE")
    problem(client.put(f"/v1/batches/{bid}/pages/1000000000", json=item[:1]), 400, "INVALID_PAGE")
    problem(client.get("/v1/batches", params={"status": "bogus"}), 400, "INVALID_STATUS")
    problem(client.put(f"/v1/batches/{bid}/pages/x", json=item[:1]), 400, "INVALID_INPUT")
    assert snapshot(client, bid) == before
    assert client.put(f"/v1/batches/{bid}/pages/0", json=item[:2]).status_code == 200
    problem(client.post(f"/v1/batches/{bid}/submit"), 409, "INCOMPLETE_BATCH")
    assert client.put(f"/v1/batches/{bid}/pages/1", json=item[2:3]).status_code == 200
    done = wait_final(client, submit(client, bid)["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 3, done
    assert [r["customer_number"] for r in results(client, bid)] == [f"{p}{i}" for i in range(3)]


def test_pages_and_files_do_not_mix(client: httpx.Client, p: str) -> None:
    files_first = create(client)
    upload(client, files_first["id"], customers_csv([f"{p}1"]))
    before = snapshot(client, files_first["id"])
    page = [{"customer_number": f"{p}2", "name": "Two"}]
    problem(client.put(f"/v1/batches/{files_first['id']}/pages/0", json=page), 409, "MIXED_INPUT")
    assert snapshot(client, files_first["id"]) == before

    pages_first = create(client, items=[{"customer_number": f"{p}3", "name": "Three"}])
    before = snapshot(client, pages_first["id"])
    problem(put_data(client, pages_first["id"], customers_csv([f"{p}4"])), 409, "MIXED_INPUT")
    assert snapshot(client, pages_first["id"]) == before

    for batch, number in ((files_first, f"{p}1"), (pages_first, f"{p}3")):
        done = wait_final(client, submit(client, batch["id"])["id"], timeout=30)
        assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done
        assert [r["customer_number"] for r in results(client, batch["id"])] == [number]
    assert_fresh(client, [f"{p}2", f"{p}4"])


def test_a_file_source_and_pages_do_not_mix(client: httpx.Client, httpserver: HTTPServer, p: str) -> None:
    """A source_url and an upload URL are files: with `items` the create is a 409 MIXED_INPUT
    that leaves no batch (and fetches nothing); a page for a batch that fetches its file, or an
    upload URL for a batch of pages, is refused too, and each batch reads only its own data."""
    httpserver.expect_request("/mixed.csv").respond_with_data(
        customers_csv([f"{p}9"]).decode(), content_type=CSV
    )
    source = _loopback(httpserver, "/mixed.csv")
    items = [{"customer_number": f"{p}1", "name": "One"}]
    for extra in ({"source_url": source}, {"source_url": source, "submit": False}, {"upload_url": True}):
        job = uuid.uuid4().hex
        body = {"type": "billing.customer", "job_id": job, "items": items} | extra
        problem(client.post("/v1/batches", json=body), 409, "MIXED_INPUT")
        assert client.get("/v1/batches", params={"job_id": job}).json()["data"] == [], extra

    fetching = create(client, source_url=source, submit=False)
    before = snapshot(client, fetching["id"])
    problem(client.put(f"/v1/batches/{fetching['id']}/pages/0", json=items), 409, "MIXED_INPUT")
    assert snapshot(client, fetching["id"]) == before

    paged = create(client, items=items)
    before = snapshot(client, paged["id"])
    asked = client.post(f"/v1/batches/{paged['id']}/upload-url", json={"name": "more.csv"})
    problem(asked, 409, "MIXED_INPUT")
    assert snapshot(client, paged["id"]) == before
    inputs = client.get(f"/v1/batches/{paged['id']}/inputs").json()["data"]
    assert [i["kind"] for i in inputs] == ["page"], inputs

    for batch, number in ((fetching, f"{p}9"), (paged, f"{p}1")):
        done = wait_final(client, submit(client, batch["id"])["id"], timeout=30)
        assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done
        assert [r["customer_number"] for r in results(client, batch["id"])] == [number]
    assert len(httpserver.log) == 1  # fetched by the one batch made to fetch it


# --------------------------------------------------------------------------- lifecycle misuse


def test_submit_twice_is_refused(client: httpx.Client, p: str) -> None:
    batch = create(client)
    upload(client, batch["id"], customers_csv([f"{p}1"]))
    submit(client, batch["id"])
    problem(client.post(f"/v1/batches/{batch['id']}/submit"), 409, "INVALID_STATE")
    done = wait_final(client, batch["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done
    before = snapshot(client, batch["id"])
    problem(client.post(f"/v1/batches/{batch['id']}/submit"), 409, "INVALID_STATE")
    problem(client.post(f"/v1/batches/{batch['id']}/cancel"), 409, "INVALID_STATE")
    problem(client.post(f"/v1/batches/{batch['id']}/clear"), 409, "INVALID_STATE")
    assert snapshot(client, batch["id"]) == before


def test_process_is_for_manual_batches_only(client: httpx.Client, p: str) -> None:
    auto = create(client)
    problem(client.post(f"/v1/batches/{auto['id']}/process"), 409, "INVALID_STATE")
    upload(client, auto["id"], customers_csv([f"{p}{i}" for i in range(50)]))
    submit(client, auto["id"])
    # Whatever the batch is doing right now (queued, validating, processing), an auto batch
    # is never processed on request.
    problem(client.post(f"/v1/batches/{auto['id']}/process"), 409, "INVALID_STATE")
    done = wait_final(client, auto["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 50, done
    problem(client.post(f"/v1/batches/{auto['id']}/process"), 409, "INVALID_STATE")

    manual = create(client, process="manual")
    upload(client, manual["id"], customers_csv([f"{p}m"]))
    problem(client.post(f"/v1/batches/{manual['id']}/process"), 409, "INVALID_STATE")
    submit(client, manual["id"])
    waiting = wait_final(client, manual["id"], timeout=30)
    assert waiting["status"] == "validated", waiting
    r = client.post(f"/v1/batches/{manual['id']}/process")
    assert r.status_code == 200, r.text
    done = wait_final(client, manual["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done
    problem(client.post(f"/v1/batches/{manual['id']}/process"), 409, "INVALID_STATE")


def test_data_after_submit_is_refused(client: httpx.Client, p: str) -> None:
    batch = create(client, process="manual")
    bid = batch["id"]
    upload(client, bid, customers_csv([f"{p}1"]))
    submit(client, bid)
    assert wait_final(client, bid, timeout=30)["status"] == "validated"
    before = snapshot(client, bid)
    problem(put_data(client, bid, customers_csv([f"{p}2"])), 409, "BATCH_NOT_OPEN")
    problem(put_data(client, bid, customers_csv([f"{p}2"]), name="more.csv"), 409, "BATCH_NOT_OPEN")
    problem(client.post(f"/v1/batches/{bid}/upload-url"), 409, "BATCH_NOT_OPEN")
    assert snapshot(client, bid) == before
    client.post(f"/v1/batches/{bid}/process").raise_for_status()
    done = wait_final(client, bid, timeout=30)
    assert done["status"] == "completed" and done["counts"]["total"] == 1, done
    page = [{"customer_number": f"{p}3", "name": "Three"}]
    problem(client.put(f"/v1/batches/{bid}/pages/0", json=page), 409, "BATCH_NOT_OPEN")
    assert_fresh(client, [f"{p}2", f"{p}3"])


def test_results_before_the_end_are_refused(client: httpx.Client, p: str) -> None:
    batch = create(client)
    problem(client.get(f"/v1/batches/{batch['id']}/results"), 409, "RESULTS_NOT_READY")


# --------------------------------------------------------------------------- signed upload URLs


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def _with_path(url: str, old: str, new: str) -> str:
    parts = urlsplit(url)
    assert old in parts.path
    return urlunsplit(parts._replace(path=parts.path.replace(old, new)))


def _signed_put(anon: httpx.Client, url: str, body: bytes, content_type: str = CSV) -> httpx.Response:
    return anon.put(url, content=body, headers={"Content-Type": content_type})


def test_tampered_signed_urls_are_refused(client: httpx.Client, anon: httpx.Client, p: str) -> None:
    a = create(client, upload_url=True)
    b = create(client)
    url = a["upload_url"]
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    body = customers_csv([f"{p}1"])
    bad = {
        "later expiry": _with_query(url, expires=str(int(expires) + 3600)),
        "no expiry": _with_query(url, expires="soon"),
        "tampered signature": _with_query(url, signature=flipped),
        "empty signature": _with_query(url, signature=""),
        "other batch": _with_path(url, f"/batches/{a['id']}/", f"/batches/{b['id']}/"),
        "other file": _with_path(url, "/inputs/data", "/inputs/other"),
    }
    before_a, before_b = snapshot(client, a["id"]), snapshot(client, b["id"])
    for label, target in bad.items():
        answer = problem(_signed_put(anon, target, body), 403, "BAD_SIGNATURE")
        assert answer["detail"], label
    assert (snapshot(client, a["id"]), snapshot(client, b["id"])) == (before_a, before_b)
    # The real URL still works, but only with a supported content type and size.
    problem(_signed_put(anon, url, body, "image/png"), 415, "UNSUPPORTED_MEDIA_TYPE")
    problem(_signed_put(anon, url, body + b"z" * LIMIT), 413, "PAYLOAD_TOO_LARGE")
    assert snapshot(client, a["id"]) == before_a
    r = _signed_put(anon, url, body)
    assert r.status_code == 200, r.text
    done = wait_final(client, submit(client, a["id"])["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done
    # After the batch has left `open`, the (still signed, unexpired) URL is refused.
    problem(_signed_put(anon, url, customers_csv([f"{p}2"])), 409, "BATCH_NOT_OPEN")
    assert [r["customer_number"] for r in results(client, a["id"])] == [f"{p}1"]
    problem(client.post(f"/v1/batches/{b['id']}/submit"), 409, "NO_DATA")


def test_signed_url_for_an_unknown_target_is_refused(server: Server, anon: httpx.Client) -> None:
    for path in (
        "/v1/blobs/batches/1/inputs/data",
        "/v1/blobs/elsewhere/x",
        "/v1/blobs/batches/999999/inputs/x",
    ):
        r = anon.put(server.url + path, params={"expires": "9999999999", "signature": "0" * 64}, content=b"x")
        problem(r, 403, "BAD_SIGNATURE")


# --------------------------------------------------------------------------- tenancy and auth


def _every_verb(batch_id: int | str) -> list[tuple[str, str, dict[str, Any]]]:
    base = f"/v1/batches/{batch_id}"
    return [
        ("GET", base, {}),
        (
            "PUT",
            f"{base}/data",
            {"content": b"customer_number,name\nZ,Z\n", "headers": {"Content-Type": CSV}},
        ),
        ("PUT", f"{base}/pages/0", {"json": [{"customer_number": "Z", "name": "Z"}]}),
        ("POST", f"{base}/upload-url", {}),
        ("POST", f"{base}/submit", {}),
        ("POST", f"{base}/process", {}),
        ("POST", f"{base}/cancel", {}),
        ("POST", f"{base}/clear", {}),
        ("GET", f"{base}/errors", {}),
        ("GET", f"{base}/results", {}),
        ("GET", f"{base}/children", {}),
        ("GET", f"{base}/events", {}),
    ]


def test_another_accounts_batch_is_not_found_on_every_verb(
    server: Server, client: httpx.Client, stranger: str, p: str
) -> None:
    mine = create(client)
    upload(client, mine["id"], customers_csv([f"{p}1"]))
    before = snapshot(client, mine["id"])
    with server.client(stranger) as other:
        for method, path, kwargs in _every_verb(mine["id"]):
            answer = problem(other.request(method, path, **kwargs), 404, "NOT_FOUND")
            assert str(mine["id"]) in answer["detail"] or "not found" in answer["detail"].lower()
        problem(
            other.post("/v1/batches", json={"type": "billing.customer", "parent_id": mine["id"]}),
            404,
            "NOT_FOUND",
        )
        assert mine["id"] not in [b["id"] for b in other.get("/v1/batches").json()["data"]]
    assert snapshot(client, mine["id"]) == before
    done = wait_final(client, submit(client, mine["id"])["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done


@pytest.mark.parametrize("batch_id", ["987654321", "0", "-3", str(2**63 - 1), str(2**63), str(2**70)])
def test_unknown_batch_is_not_found_on_every_verb(client: httpx.Client, batch_id: str) -> None:
    for method, path, kwargs in _every_verb(batch_id):
        problem(client.request(method, path, **kwargs), 404, "NOT_FOUND")
    body = {"type": "billing.customer", "parent_id": int(batch_id)}
    problem(client.post("/v1/batches", json=body), 404, "NOT_FOUND")


def test_non_numeric_batch_id_is_invalid_input(client: httpx.Client) -> None:
    answer = problem(client.get("/v1/batches/abc"), 400, "INVALID_INPUT")
    assert "batch_id" in answer["detail"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/batches", {"limit": "0"}, "limit"),
        ("/v1/batches", {"limit": "501"}, "limit"),
        ("/v1/batches", {"cursor": "abc"}, "cursor"),
        ("/v1/batches", {"cursor": str(2**70)}, "cursor"),
        ("/v1/batches/{id}/errors", {"cursor": str(2**70)}, "cursor"),
        ("/v1/batches/{id}/errors", {"cursor": "-1"}, "cursor"),
        ("/v1/batches/{id}/errors", {"limit": "100000"}, "limit"),
    ],
)
def test_bad_query_parameters_name_the_parameter(
    client: httpx.Client, path: str, params: dict[str, str], field: str
) -> None:
    batch = create(client)
    answer = problem(client.get(path.format(id=batch["id"]), params=params), 400, "INVALID_INPUT")
    assert field in answer["detail"], answer


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Api-Key": "lb_live_not-a-real-key"},
        {"Authorization": "Bearer lb_live_not-a-real-key"},
        {"Authorization": "Bearer"},
        {"Authorization": "Token whatever"},
    ],
)
def test_missing_or_unknown_key_is_unauthorized(
    server: Server, anon: httpx.Client, headers: dict[str, str]
) -> None:
    problem(anon.get(f"{server.url}/v1/batches", headers=headers), 401, "UNAUTHORIZED")
    body = {"type": "billing.customer"}
    problem(anon.post(f"{server.url}/v1/batches", json=body, headers=headers), 401, "UNAUTHORIZED")
    problem(anon.get(f"{server.url}/v1/batches/1", headers=headers), 401, "UNAUTHORIZED")


# --------------------------------------------------------------------------- source URLs


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://127.0.0.1/x.csv", "gopher://x", "/etc/passwd", "javascript:alert(1)", ""],
)
def test_non_http_source_url_is_refused_at_create(client: httpx.Client, url: str) -> None:
    job = uuid.uuid4().hex
    body = {"type": "billing.customer", "job_id": job, "source_url": url}
    problem(client.post("/v1/batches", json=body), 400, "INVALID_SOURCE_URL")
    assert client.get("/v1/batches", params={"job_id": job}).json()["data"] == []


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://files.example.com:99999/c.csv", "port 99999 is not 1 to 65535"),
        ("http://files example.com/c.csv", "is not a host name or IP address"),
        ("http://files..example.com/c.csv", "is not a host name or IP address"),
        ("http://user:secret@files.example.com/c.csv", "contains credentials"),
        ("http:///c.csv", "has no host name"),
    ],
)
def test_a_malformed_source_url_is_refused_at_create(client: httpx.Client, url: str, says: str) -> None:
    """Refused when the batch is made, saying what is wrong (a port or host like these was
    accepted, and the batch ended in error when a worker tried it)."""
    job = uuid.uuid4().hex
    body = {"type": "billing.customer", "job_id": job, "source_url": url}
    answer = problem(client.post("/v1/batches", json=body), 400, "INVALID_SOURCE_URL")
    assert answer["detail"].startswith("source_url: ") and says in answer["detail"], answer
    assert client.get("/v1/batches", params={"job_id": job}).json()["data"] == []


def _loopback(httpserver: HTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{httpserver.port}{path}"


def test_missing_source_is_fetch_failed(client: httpx.Client, httpserver: HTTPServer, p: str) -> None:
    httpserver.expect_request("/missing.csv").respond_with_data("gone", status=404)
    httpserver.expect_request("/broken.csv").respond_with_data("oops", status=500)
    for path, status in (("/missing.csv", "404"), ("/broken.csv", "500")):
        batch = create(client, source_url=_loopback(httpserver, path))
        assert batch["status"] != "open" and batch["submitted_at"], batch  # a source_url submits at once
        done = wait_final(client, batch["id"], timeout=30)
        message = assert_error_batch(done, "FETCH_FAILED")
        assert re.search(rf"\b{status}\b", message), message
    httpserver.expect_request("/good.csv").respond_with_data(
        customers_csv([f"{p}1"]).decode(), content_type=CSV
    )
    done = wait_final(client, create(client, source_url=_loopback(httpserver, "/good.csv"))["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done


def test_unreadable_source_is_a_batch_error(client: httpx.Client, httpserver: HTTPServer, p: str) -> None:
    httpserver.expect_request("/latin1.csv").respond_with_data(
        b"customer_number,name\n" + p.encode() + b"1,caf\xe9\n", content_type=CSV
    )
    httpserver.expect_request("/huge.csv").respond_with_data(
        b"customer_number,name\n" + b"h" * LIMIT, content_type=CSV
    )
    done = wait_final(
        client, create(client, source_url=_loopback(httpserver, "/latin1.csv"))["id"], timeout=30
    )
    assert_error_batch(done, "BAD_ENCODING")
    done = wait_final(client, create(client, source_url=_loopback(httpserver, "/huge.csv"))["id"], timeout=30)
    assert_error_batch(done, "PAYLOAD_TOO_LARGE")
    assert_fresh(client, [f"{p}1"])


def test_a_source_served_as_octet_stream_is_told_by_its_first_bytes(
    client: httpx.Client, httpserver: HTTPServer, p: str
) -> None:
    """A file with no extension served as application/octet-stream (as object stores serve
    one) is read by its first bytes, and the `copied` event says so (the batch ended in error,
    "unsupported Content-Type None"); one whose first bytes are no CSV or JSON text ends in
    error naming the Content-Type received, and keeps no input."""
    octet = "application/octet-stream"
    httpserver.expect_request("/objects/7781").respond_with_data(customers_csv([f"{p}1"]), content_type=octet)
    httpserver.expect_request("/objects/7782").respond_with_data(b"PK\x03\x04\x14\x00", content_type=octet)
    done = wait_final(
        client, create(client, source_url=_loopback(httpserver, "/objects/7781"))["id"], timeout=30
    )
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done
    events = client.get(f"/v1/batches/{done['id']}/events").json()["data"]
    [copied] = [e["detail"] for e in events if e["event"] == "copied"]
    assert "read as csv by its first bytes (Content-Type 'application/octet-stream'" in copied, copied
    done = wait_final(
        client, create(client, source_url=_loopback(httpserver, "/objects/7782"))["id"], timeout=30
    )
    message = assert_error_batch(done, "UNSUPPORTED_MEDIA_TYPE")
    assert "Content-Type 'application/octet-stream'" in message and "None" not in message, message
    assert client.get(f"/v1/batches/{done['id']}/inputs").json()["data"] == []


def test_a_source_in_a_charset_other_than_utf8_is_refused(
    client: httpx.Client, httpserver: HTTPServer, p: str
) -> None:
    """`text/csv; charset=latin-1` is refused as an upload's is; the file was read by its
    URL's extension as UTF-8 instead."""
    latin = "text/csv; charset=latin-1"
    httpserver.expect_request("/latin-declared.csv").respond_with_data(
        customers_csv([f"{p}1"]), content_type=latin
    )
    done = wait_final(
        client, create(client, source_url=_loopback(httpserver, "/latin-declared.csv"))["id"], timeout=30
    )
    message = assert_error_batch(done, "UNSUPPORTED_MEDIA_TYPE")
    assert "charset 'latin-1'" in message and latin in message, message
    assert_fresh(client, [f"{p}1"])


# --------------------------------------------------------------------------- a stricter server


def test_a_source_that_drips_its_file_ends_the_batch_without_holding_a_worker(
    database_url: str, tmp_path: Path, httpserver: HTTPServer
) -> None:
    """LOADBAY_FETCH_TIMEOUT=1: the answer's head must come within 1 s, then the body at least
    64 KiB a second. A server sending a byte every 0.2 s (each read well within the timeout)
    held the worker for as long as it liked: ~30 s for this file."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 120\r\n\r\n"
    httpserver.expect_request("/good.csv").respond_with_data(customers_csv(["D1"]).decode(), content_type=CSV)
    env = {"LOADBAY_FETCH_ALLOW": "127.0.0.1", "LOADBAY_FETCH_TIMEOUT": "1"}
    timed = start_server(database_url, tmp_path / "timed", env=env)
    try:
        with timed.client(timed.account("timed")) as c, dripping(pause=0.2) as slow:
            for at_once, dripped, says in ((b"", head, "timed out"), (head, b"x" * 120, "is too slow")):
                started = time.monotonic()
                batch = create(c, source_url=slow.answer(at_once, dripped))
                message = assert_error_batch(wait_final(c, batch["id"], timeout=30), "FETCH_FAILED")
                assert says in message, message
                assert time.monotonic() - started < 8
            done = wait_final(c, create(c, source_url=_loopback(httpserver, "/good.csv"))["id"], timeout=30)
            assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done
    finally:
        timed.stop()


def test_strict_server_refuses_loopback_sources_and_expired_urls(
    database_url: str, tmp_path: Path, httpserver: HTTPServer, anon: httpx.Client
) -> None:
    """A server with the default fetch policy (public addresses only) and 1-second signed URLs."""
    httpserver.expect_request("/secret.csv").respond_with_data(
        customers_csv(["S1"]).decode(), content_type=CSV
    )
    strict = start_server(database_url, tmp_path / "strict", env={"LOADBAY_SIGNED_URL_TTL": "1"})
    try:
        with strict.client(strict.account("strict")) as c:
            fetched = create(c, source_url=_loopback(httpserver, "/secret.csv"))
            signed = create(c, upload_url=True)
            # Loopback is not a public address: refused before any connection is made.
            message = assert_error_batch(wait_final(c, fetched["id"], timeout=30), "FETCH_REFUSED")
            assert "127.0.0.1" in message, message
            assert httpserver.log == [], "the refused URL must not even be requested"
            # A signed URL past its expiry is refused, and the batch keeps no data.
            time.sleep(max(0.0, 2.1 - (time.time() - _created_at(signed))))
            answer = problem(
                _signed_put(anon, signed["upload_url"], customers_csv(["S1"])), 403, "BAD_SIGNATURE"
            )
            assert "expired" in answer["detail"], answer
            problem(c.post(f"/v1/batches/{signed['id']}/submit"), 409, "NO_DATA")
            # Neither left anything behind: the same data straight in completes and creates S1.
            upload(c, signed["id"], customers_csv(["S1"]))
            done = wait_final(c, submit(c, signed["id"])["id"], timeout=30)
            assert done["status"] == "completed" and done["counts"]["succeeded"] == 1, done
            assert results(c, done["id"])[0]["loadbay_action"] == "created"
    finally:
        strict.stop()


def _created_at(batch: dict[str, Any]) -> float:
    return datetime.fromisoformat(batch["created_at"].replace("Z", "+00:00")).timestamp()
