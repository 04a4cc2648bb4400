"""GET /v1/batches/{id}/inputs: a batch's files and pages as a client (and the dashboard)
sees them, against a real `loadbay serve` on each backend and store.

What each input says: its name, kind, format, size, whether it still waits at its upload URL,
when it was received, and the records it holds when known; never where it is stored."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from tests.support.servers import Server, wait_final

pytestmark = pytest.mark.stores("file", "s3")

TYPE = "billing.customer"
CSV = "text/csv"
FIELDS = {"name", "kind", "format", "size", "pending", "received_at", "item_count"}


@pytest.fixture
def other_key(server: Server) -> str:
    return server.account(f"other-{uuid.uuid4().hex[:8]}")


def create(client: httpx.Client, **body: Any) -> int:
    r = client.post("/v1/batches", json={"type": TYPE} | body)
    assert r.status_code == 201, r.text
    batch_id: int = r.json()["id"]
    return batch_id


def inputs(client: httpx.Client, batch_id: int) -> list[dict[str, Any]]:
    r = client.get(f"/v1/batches/{batch_id}/inputs")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"data", "next_cursor"}
    found: list[dict[str, Any]] = r.json()["data"]
    for item in found:
        assert set(item) == FIELDS, item  # no blob key, etag or storage path
    return found


def put_file(client: httpx.Client, batch_id: int, body: bytes, name: str | None = None) -> None:
    params = {"name": name} if name else None
    r = client.put(f"/v1/batches/{batch_id}/data", content=body, params=params, headers={"Content-Type": CSV})
    assert r.status_code == 200, r.text


def test_a_batch_with_no_data_has_no_inputs(server: Server, key: str) -> None:
    with server.client(key) as client:
        assert inputs(client, create(client)) == []


def test_direct_uploads_in_order_and_one_sent_again_keeps_its_place(server: Server, key: str) -> None:
    first = b"customer_number,name\nA1,Ada\nA2,Bo\n"
    second = b"customer_number,name\nB1,Cy\n"
    again = b"customer_number,name\nA1,Ada\nA2,Bo\nA3,Di\n"
    with server.client(key) as client:
        batch = create(client)
        put_file(client, batch, first, "first.csv")
        put_file(client, batch, second, "second.csv")
        before = inputs(client, batch)
        put_file(client, batch, again, "first.csv")
        after = inputs(client, batch)
        assert client.post(f"/v1/batches/{batch}/submit").status_code == 200
        wait_final(client, batch)
        read = inputs(client, batch)
    assert [(i["name"], i["kind"], i["format"], i["size"], i["pending"]) for i in before] == [
        ("first.csv", "file", "csv", len(first), False),
        ("second.csv", "file", "csv", len(second), False),
    ]
    assert [i["item_count"] for i in before] == [None, None]  # counted once read through
    assert [(i["name"], i["size"]) for i in after] == [("first.csv", len(again)), ("second.csv", len(second))]
    assert _at(after[0]) > _at(before[1])  # received again, after the second file
    assert [(i["name"], i["item_count"]) for i in read] == [("first.csv", 3), ("second.csv", 1)]


@pytest.mark.parametrize(
    ("batch_type", "body", "records"),
    [
        (TYPE, b"customer_number,name\nA1,Ada\nA2,\n\nA3,Cy\n", 3),  # two-phase: not applied early
        ("billing.payment", b"customer_number,amount\nNOPE,5\nNOPE,x\n", 2),  # a type never applied early
    ],
)
def test_a_files_records_are_counted_by_the_end_of_validation(
    server: Server, key: str, batch_type: str, body: bytes, records: int
) -> None:
    with server.client(key) as client:
        batch = create(client, type=batch_type, process="manual")
        put_file(client, batch, body, "file.csv")
        assert client.post(f"/v1/batches/{batch}/submit").status_code == 200
        assert wait_final(client, batch)["status"] == "validated"
        (found,) = inputs(client, batch)
    assert (found["name"], found["item_count"]) == ("file.csv", records)


def test_a_file_at_its_upload_url_is_pending_until_received(server: Server, key: str) -> None:
    body = b"customer_number,name\nU1,One\nU2,Two\n"
    with server.client(key) as client:
        batch = create(client)
        r = client.post(f"/v1/batches/{batch}/upload-url", json={"name": "customers.csv"})
        assert r.status_code == 200, r.text
        [waiting] = inputs(client, batch)
        assert waiting == {
            "name": "customers.csv",
            "kind": "file",
            "format": None,
            "size": None,
            "pending": True,
            "received_at": None,
            "item_count": None,
        }
        put_file(client, batch, b"customer_number,name\nD1,Direct\n", "direct.csv")
        put = httpx.put(r.json()["url"], content=body, headers={"Content-Type": CSV}, timeout=30)
        assert put.status_code == 200, put.text
        [sent, direct] = inputs(client, batch)  # in the order of the upload URL and the file
        if server.s3 is not None:  # loadbay does not see a PUT to S3: it looks at submit
            assert sent == waiting
        else:  # loadbay's own signed URL received it
            assert sent["pending"] is False
        assert client.post(f"/v1/batches/{batch}/submit").status_code == 200
        [confirmed, _] = inputs(client, batch)
        done = wait_final(client, batch)
    assert done["counts"]["succeeded"] == 3
    assert confirmed["pending"] is False
    assert (confirmed["format"], confirmed["size"]) == ("csv", len(body))
    assert _at(confirmed) > _at(direct)  # received after the direct file, not when its URL was made


def test_a_file_never_received_is_not_pending_once_the_batch_has_left_open(server: Server, key: str) -> None:
    """`pending` says loadbay will look for the file when the batch is submitted: a cancelled
    batch never will. The file stays listed, as never received, even if sent to its URL then."""
    with server.client(key) as client:
        batch = create(client)
        r = client.post(f"/v1/batches/{batch}/upload-url", json={"name": "never.csv"})
        assert r.status_code == 200, r.text
        put_file(client, batch, b"customer_number,name\nD1,Direct\n", "direct.csv")
        assert [i["pending"] for i in inputs(client, batch)] == [True, False]
        cancelled = client.post(f"/v1/batches/{batch}/cancel")
        assert cancelled.json()["status"] == "cancelled", cancelled.text
        late = httpx.put(
            r.json()["url"], content=b"customer_number,name\nL1,Late\n", headers={"Content-Type": CSV}
        )
        [never, direct] = inputs(client, batch)
    if server.s3 is None:  # loadbay's own signed URL refuses it; S3 takes it, and loadbay never reads it
        assert (late.status_code, late.json()["code"]) == (409, "BATCH_NOT_OPEN"), late.text
    assert never == {
        "name": "never.csv",
        "kind": "file",
        "format": None,
        "size": None,
        "pending": False,
        "received_at": None,
        "item_count": None,
    }
    assert (direct["name"], direct["pending"]) == ("direct.csv", False) and direct["received_at"]


def test_an_upload_url_for_a_file_received_leaves_it_received(server: Server, key: str) -> None:
    """Asking for an upload URL again under the name of a file the batch holds answers a URL
    (a PUT to it would replace the file) and leaves the file as it was: received, not pending
    (it was made pending again, with no size and no time of receipt)."""
    body = b"customer_number,name\nR1,Received\n"
    with server.client(key) as client:
        batch = create(client)
        put_file(client, batch, body, "customers.csv")
        [before] = inputs(client, batch)
        r = client.post(f"/v1/batches/{batch}/upload-url", json={"name": "customers.csv"})
        assert r.status_code == 200, r.text
        assert (r.json()["method"], r.json()["url"].startswith("http")) == ("PUT", True)
        assert inputs(client, batch) == [before]
        assert client.post(f"/v1/batches/{batch}/submit").status_code == 200
        done = wait_final(client, batch)
        [read] = inputs(client, batch)
    assert (before["pending"], before["size"], before["received_at"] is not None) == (False, len(body), True)
    assert done["counts"]["succeeded"] == 1
    assert read == before | {"item_count": 1}


def test_pages_with_their_item_counts_in_page_order(server: Server, key: str) -> None:
    items = [{"customer_number": f"P{n}", "name": f"Pat {n}"} for n in range(5)]
    with server.client(key) as client:
        batch = create(client, page_size=3, total_items=5)
        for number, page in ((1, items[3:]), (0, items[:3])):
            r = client.put(f"/v1/batches/{batch}/pages/{number}", json=page)
            assert r.status_code == 200, r.text
        found = inputs(client, batch)
    assert [(i["name"], i["kind"], i["format"], i["pending"], i["item_count"]) for i in found] == [
        ("page-000000000", "page", "json", False, 3),
        ("page-000000001", "page", "json", False, 2),
    ]
    assert all(i["size"] > 0 and i["received_at"] for i in found)


def test_a_fetched_source_is_listed_as_fetched(server: Server, key: str, httpserver: HTTPServer) -> None:
    body = "customer_number,name\nS1,One\nS2,Two\n"
    httpserver.expect_request("/export.csv").respond_with_data(body, content_type="text/csv")
    with server.client(key) as client:
        batch = create(client, source_url=f"http://127.0.0.1:{httpserver.port}/export.csv")
        assert wait_final(client, batch)["status"] == "completed"
        [fetched] = inputs(client, batch)
    assert (fetched["name"], fetched["kind"], fetched["format"]) == ("source", "fetched", "csv")
    assert (fetched["size"], fetched["item_count"], fetched["pending"]) == (len(body), 2, False)


def test_a_file_cannot_take_the_name_of_the_fetched_source(
    server: Server, key: str, httpserver: HTTPServer
) -> None:
    """A batch with a source_url takes files of its own too, but none named `source`, the
    name of its source_url's copy: sent so, it replaced the copy's input (or the copy replaced
    it, the file's records never read: `total` 1 for 3 records sent)."""
    body = "customer_number,name\nS1,One\n"
    httpserver.expect_request("/export.csv").respond_with_data(body, content_type="text/csv")
    mine = b"customer_number,name\nU1,Up\nU2,Up\n"
    with server.client(key) as client:
        source = f"http://127.0.0.1:{httpserver.port}/export.csv"
        batch = create(client, source_url=source, submit=False)
        for refused in (
            client.put(f"/v1/batches/{batch}/data", content=mine, params={"name": "source"}),
            client.post(f"/v1/batches/{batch}/upload-url", json={"name": "source"}),
        ):
            assert refused.status_code == 400, refused.text
            assert refused.json()["code"] == "INVALID_NAME" and "source_url" in refused.json()["detail"]
        put_file(client, batch, mine, "mine.csv")
        assert client.post(f"/v1/batches/{batch}/submit").status_code == 200
        done = wait_final(client, batch)
        assert (done["status"], done["counts"]["total"], done["counts"]["succeeded"]) == ("completed", 3, 3)
    with server.client(key) as client:  # (a batch without a source_url may name a file so)
        plain = create(client)
        put_file(client, plain, mine, "source")


def test_another_accounts_batch_is_not_found(server: Server, key: str, other_key: str) -> None:
    with server.client(key) as owner:
        batch = create(owner)
        put_file(owner, batch, b"customer_number,name\nO1,One\n")
    with server.client(other_key) as stranger:
        r = stranger.get(f"/v1/batches/{batch}/inputs")
        missing = stranger.get("/v1/batches/999999999/inputs")
    for answer in (r, missing):
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "NOT_FOUND"
    with server.client() as anonymous:
        assert anonymous.get(f"/v1/batches/{batch}/inputs").status_code == 401


def _at(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["received_at"])
