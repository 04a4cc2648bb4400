"""What the dashboard (and any client) reads from the native API: progress with a total that
never grows, errors grouped by code and field, the refused-records file, text search and the
key's account. Against a real `loadbay serve` on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.accounts import make_keys
from tests.support.servers import FINAL, Server, wait_final

TYPE = "billing.customer"
CSV = {"Content-Type": "text/csv"}
REFUSED = ("invalid", "failed", "unprocessed")

BAD_ROWS = (
    "customer_number,name,email,balance\n"
    "C1,Ada,ada@example.com,1\n"
    "C2,Bob,not-an-email,2\n"
    "C3,,c3@example.com,3\n"
    "C4,Dee,also bad,4\n"
    "C5,Eve,eve@example.com,1.234\n"
    "C6,Fay,x@,5\n"
    "C7,Gus,gus@example.com,6\n"
    "C8,Hal,@nowhere,7\n"
)


@pytest.fixture(scope="module")
def fresh_keys(server: Server) -> Iterator[str]:
    return iter(make_keys(server, f"dash-{uuid.uuid4().hex[:6]}", 20))


@pytest.fixture
def key(fresh_keys: Iterator[str]) -> str:
    """A fresh live account's key (one process makes the module's accounts)."""
    return next(fresh_keys)


@pytest.fixture
def other_key(fresh_keys: Iterator[str]) -> str:
    return next(fresh_keys)


def _create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/batches", json={"type": TYPE} | body)
    assert r.status_code == 201, r.text
    batch: dict[str, Any] = r.json()
    return batch


def _run(client: httpx.Client, text: str, **body: Any) -> dict[str, Any]:
    batch = _create(client, **body)
    assert client.put(f"/v1/batches/{batch['id']}/data", content=text, headers=CSV).status_code == 200
    assert client.post(f"/v1/batches/{batch['id']}/submit").status_code == 200
    return wait_final(client, batch["id"])


def _rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    header, *rows = list(csv.reader(io.StringIO(response.text, newline="")))
    return [dict(zip(header, row, strict=True)) for row in rows]


def _problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


# progress ----------------------------------------------------------------------------------


def test_the_total_is_never_a_number_that_grows(server: Server, key: str) -> None:
    """Polled while it moves, a batch's progress has no total or its real one; a rate while
    it moves; done / total as its fraction; no time left once final."""
    rows = 30_000
    text = "customer_number,name\n" + "".join(f"P{i},Name {i}\n" for i in range(rows))
    seen: list[dict[str, Any]] = []
    with server.client(key) as client:
        batch = _create(client)
        assert batch["progress"] == {
            "done": 0,
            "total": None,
            "fraction": None,
            "rate": None,
            "eta_seconds": None,
        }
        client.put(f"/v1/batches/{batch['id']}/data", content=text, headers=CSV)
        client.post(f"/v1/batches/{batch['id']}/submit")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen.append(client.get(f"/v1/batches/{batch['id']}").json())
            if seen[-1]["status"] in FINAL:
                break
    for polled in seen:
        progress, status = polled["progress"], polled["status"]
        assert progress["total"] in (None, rows), polled
        assert progress["done"] == polled["counts"]["invalid"] + polled["counts"]["succeeded"]
        if progress["total"] is None:
            assert status in ("queued", "validating") and progress["fraction"] is None
        else:
            assert progress["fraction"] == round(progress["done"] / rows, 4)
        if status in ("queued", "completed"):
            assert progress["rate"] is None
        if progress["eta_seconds"] is not None and status not in FINAL:
            assert progress["eta_seconds"] >= 0 and progress["rate"] and progress["total"] == rows
    done = seen[-1]
    assert done["status"] == "completed"
    assert done["progress"] == {"done": rows, "total": rows, "fraction": 1.0, "rate": None, "eta_seconds": 0}
    moving = [p for p in seen if p["status"] in ("validating", "processing")]
    if moving:  # (a fast machine may finish between two polls)
        assert any(p["progress"]["rate"] is not None for p in moving)


def test_pages_give_the_total_before_any_worker_reads_them(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = _create(client, items=[{"customer_number": f"G{i}", "name": "n"} for i in range(7)])
        assert batch["status"] == "open"
        assert batch["progress"]["total"] == 7 and batch["progress"]["fraction"] == 0.0


def test_a_batch_that_could_not_be_read_has_no_total(server: Server, key: str) -> None:
    with server.client(key) as client:
        failed = _run(client, "name\nno key column\n")
        assert failed["status"] == "error"
        assert failed["progress"]["total"] is None and failed["progress"]["fraction"] is None


def test_a_two_phase_batch_shows_its_total_while_it_waits(server: Server, key: str) -> None:
    with server.client(key) as client:
        validated = _run(client, BAD_ROWS, process="manual")
        assert validated["status"] == "validated"
        progress = validated["progress"]
        assert (progress["total"], progress["done"], progress["rate"], progress["eta_seconds"]) == (
            8,
            6,
            None,
            None,
        )
        assert progress["fraction"] == 0.75  # the invalid records have their outcome already


# errors/summary ----------------------------------------------------------------------------


def test_errors_are_grouped_by_code_and_field_with_examples(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = _run(client, BAD_ROWS)
        summary = client.get(f"/v1/batches/{batch['id']}/errors/summary").json()
    assert summary["total"] == 6
    groups = {(g["code"], g["field"]): g for g in summary["groups"]}
    assert [(g["code"], g["field"], g["count"]) for g in summary["groups"]] == [
        ("INVALID_EMAIL", "email", 4),
        ("INVALID_DECIMAL", "balance", 1),
        ("REQUIRED", "name", 1),
    ]  # the largest group first, then by code
    emails = groups[("INVALID_EMAIL", "email")]["examples"]
    assert [(e["index"], e["external_id"], e["value"]) for e in emails] == [
        (1, "C2", "not-an-email"),
        (3, "C4", "also bad"),
        (5, "C6", "x@"),
    ]  # the first three, in record order
    assert all(e["message"].startswith("email:") for e in emails)
    assert groups[("INVALID_DECIMAL", "balance")]["examples"][0]["value"] == "1.234"
    assert groups[("REQUIRED", "name")]["examples"] == [
        {"index": 2, "external_id": "C3", "message": "name: Field required", "value": None}
    ]


def test_an_example_value_read_from_json_as_a_number_shows_its_digits(server: Server, key: str) -> None:
    """A balance sent as the JSON number 1.234 (kept in its chunk as that number) is shown
    as 1.234, as one read from CSV is, not as the JSON text "1.234"."""
    items = [{"customer_number": "J1", "name": "One", "balance": 1.234}]
    with server.client(key) as client:
        batch = wait_final(client, _create(client, items=items, submit=True)["id"])
        summary = client.get(f"/v1/batches/{batch['id']}/errors/summary").json()
    (group,) = summary["groups"]
    assert (group["code"], group["examples"][0]["value"]) == ("INVALID_DECIMAL", "1.234")


def test_the_errors_of_groups_past_the_fifty_listed_are_counted(server: Server, key: str) -> None:
    """52 groups (an unknown field each): 50 listed, and the 2 errors of the others counted in
    `not_listed` (they were left out without a word: 50 groups summing to 50 of 52)."""
    items = [{"id": f"G{i}", f"bogus_{i:02}": 1} for i in range(52)]
    with server.client(key) as client:
        made = client.post("/v1/batches", json={"type": "catalog.user1", "items": items, "submit": True})
        batch = wait_final(client, made.json()["id"])
        summary = client.get(f"/v1/batches/{batch['id']}/errors/summary").json()
    assert (summary["total"], len(summary["groups"]), summary["not_listed"]) == (52, 50, 2)
    assert {g["code"] for g in summary["groups"]} == {"UNKNOWN_FIELD"}


def test_a_clean_batch_has_an_empty_summary_and_others_see_none(
    server: Server, key: str, other_key: str
) -> None:
    with server.client(key) as client:
        batch = _run(client, "customer_number,name\nK1,One\n")
        summary = client.get(f"/v1/batches/{batch['id']}/errors/summary").json()
        assert summary == {"total": 0, "groups": [], "not_listed": 0}
    with server.client(other_key) as other:
        _problem(other.get(f"/v1/batches/{batch['id']}/errors/summary"), 404, "NOT_FOUND")


def test_a_file_error_that_is_one_records_has_no_field(server: Server, key: str) -> None:
    lines = '{"customer_number": "J1", "name": "One"}\n{not json\n'
    with server.client(key) as client:
        batch = _create(client)
        headers = {"Content-Type": "application/x-ndjson"}
        client.put(f"/v1/batches/{batch['id']}/data", content=lines, headers=headers)
        client.post(f"/v1/batches/{batch['id']}/submit")
        wait_final(client, batch["id"])
        summary = client.get(f"/v1/batches/{batch['id']}/errors/summary").json()
    assert [(g["code"], g["field"], g["count"]) for g in summary["groups"]] == [("INVALID_JSON", None, 1)]
    assert summary["groups"][0]["examples"][0]["value"] is None


def test_the_errors_of_one_group_page_on_their_own(server: Server, key: str) -> None:
    lines = "".join(
        f'{{"customer_number": "E{i}", "name": "n", "email": "{"bad" if i % 2 else f"e{i}@x.io"}"}}\n'
        for i in range(9)
    )
    with server.client(key) as client:
        batch = _create(client)
        headers = {"Content-Type": "application/x-ndjson"}
        client.put(f"/v1/batches/{batch['id']}/data", content=lines + "{broken\n", headers=headers)
        client.post(f"/v1/batches/{batch['id']}/submit")
        wait_final(client, batch["id"])
        url = f"/v1/batches/{batch['id']}/errors"

        def indexes(**params: Any) -> tuple[list[int], str | None]:
            page = client.get(url, params=params).json()
            return [e["index"] for e in page["data"]], page["next_cursor"]

        assert indexes(code="INVALID_EMAIL", field="email") == ([1, 3, 5, 7], None)
        first, cursor = indexes(code="INVALID_EMAIL", field="email", limit=3)
        assert (first, indexes(code="INVALID_EMAIL", field="email", cursor=cursor)) == (
            [1, 3, 5],
            ([7], None),
        )
        assert indexes(field="") == ([9], None)  # the errors of whole records
        assert indexes(code="INVALID_JSON") == ([9], None)
        assert indexes(code="INVALID_EMAIL", field="name") == ([], None)
        assert indexes() == ([1, 3, 5, 7, 9], None)


# results?outcome= --------------------------------------------------------------------------


def test_the_refused_records_file_has_only_refused_records(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = _run(client, BAD_ROWS)
        every = _rows(client.get(f"/v1/batches/{batch['id']}/results"))
        refused = client.get(f"/v1/batches/{batch['id']}/results", params={"outcome": ",".join(REFUSED)})
        repeated = client.get(f"/v1/batches/{batch['id']}/results?outcome=invalid&outcome=failed")
        succeeded = _rows(client.get(f"/v1/batches/{batch['id']}/results?outcome=succeeded"))
    assert refused.headers["content-disposition"] == (
        f'attachment; filename="batch-{batch["id"]}-failed-invalid-unprocessed.csv"'
    )
    assert [r["customer_number"] for r in _rows(refused)] == ["C2", "C3", "C4", "C5", "C6", "C8"]
    assert _rows(repeated) == _rows(refused)
    assert {r["loadbay_status"] for r in _rows(refused)} == {"invalid"}
    assert [r["customer_number"] for r in succeeded] == ["C1", "C7"]
    assert [r for r in every if r["loadbay_status"] != "succeeded"] == _rows(refused)


def test_cancelled_records_are_in_the_refused_file(server: Server, key: str) -> None:
    with server.client(key) as client:
        validated = _run(client, BAD_ROWS, process="manual")
        client.post(f"/v1/batches/{validated['id']}/cancel")
        refused = _rows(client.get(f"/v1/batches/{validated['id']}/results?outcome=invalid,unprocessed"))
    statuses = [(r["customer_number"], r["loadbay_status"]) for r in refused]
    assert statuses == [
        ("C1", "unprocessed"),
        ("C2", "invalid"),
        ("C3", "invalid"),
        ("C4", "invalid"),
        ("C5", "invalid"),
        ("C6", "invalid"),
        ("C7", "unprocessed"),
        ("C8", "invalid"),
    ]


def test_outcomes_are_checked(server: Server, key: str) -> None:
    with server.client(key) as client:
        batch = _run(client, BAD_ROWS)
        _problem(client.get(f"/v1/batches/{batch['id']}/results?outcome=refused"), 400, "INVALID_OUTCOME")
        waiting = _create(client)
        _problem(client.get(f"/v1/batches/{waiting['id']}/results?outcome=invalid"), 409, "RESULTS_NOT_READY")


# search, ref, account ----------------------------------------------------------------------


def test_text_search_finds_job_ids_and_descriptions(server: Server, key: str) -> None:
    tag = uuid.uuid4().hex[:6]
    with server.client(key) as client:
        a = _create(client, job_id=f"March-{tag}-customers")
        b = _create(client, description=f"the MARCH {tag} invoices, 100% checked")
        c = _create(client, job_id=f"april-{tag}", description="nothing in March_")

        def found(**params: Any) -> list[int]:
            page = client.get("/v1/batches", params=params).json()
            return [batch["id"] for batch in page["data"]]

        assert found(q=f"march-{tag}") == [a["id"]]
        assert found(q=f"march {tag}") == [b["id"]]  # any letter case
        assert found(q=tag) == [c["id"], b["id"], a["id"]]  # newest first
        assert found(q="100%") == [b["id"]] and found(q="march_") == [c["id"]]  # no wildcards
        assert found(q="h_") == [c["id"]] and found(q="0%c") == []
        assert found(q=tag, limit=2) == [c["id"], b["id"]]
        assert found(q=tag, cursor=b["id"]) == [a["id"]]
        assert found(q=tag, status="cancelled") == []


def test_the_batch_shows_its_ref_and_the_key_its_account(server: Server) -> None:
    name = f"dash-{uuid.uuid4().hex[:6]}"
    key = server.account(name, test=True)
    with server.client(key) as client:
        assert client.get("/v1/account").json() | {"id": 0} == {"id": 0, "name": name, "test": True}
        batch = _create(client)
        assert len(batch["ref"]) == 22
    with server.client("lb_live_wrong") as stranger:
        _problem(stranger.get("/v1/account"), 401, "UNAUTHORIZED")
