"""A retry reads its records from the batch it retries when it is validated, on each backend:
the request that makes it copies nothing (before, it copied every record into pages in the
transaction that made it, and on SQLite a retry of 2M records held every writer back for 89 s).
Its input stands for those records; pages added to an open retry come after them; and a
batch whose staged records are gone cannot be retried, nor a retry of it validated."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.servers import Server, start_server, wait_final

RECORDS = 300  # 43 chunks of 7: the retry reads them a few chunks per transaction
ENV = {"LOADBAY_CHUNK_SIZE": "7"}


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), env=ENV)
    yield running
    running.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.account(f"retry-{uuid.uuid4().hex[:6]}")) as made:
        yield made


def cancelled_batch(client: httpx.Client, prefix: str) -> dict[str, Any]:
    """A manual batch of RECORDS customers, every tenth refused (no name), cancelled at
    validated: 270 unprocessed, 30 invalid."""
    items = [
        {"customer_number": f"{prefix}-{i:03}", "name": "" if i % 10 == 9 else f"N{i}"}
        for i in range(RECORDS)
    ]
    body = {"type": "billing.customer", "process": "manual", "submit": True, "items": items}
    made = client.post("/v1/batches", json=body)
    assert made.status_code == 201, made.text
    wait_final(client, made.json()["id"])
    batch: dict[str, Any] = client.post(f"/v1/batches/{made.json()['id']}/cancel").json()
    assert (batch["counts"]["unprocessed"], batch["counts"]["invalid"]) == (270, 30)
    return batch


def result_numbers(client: httpx.Client, batch_id: int, **params: str) -> list[str]:
    answer = client.get(f"/v1/batches/{batch_id}/results", params=params)
    assert answer.status_code == 200, answer.text
    text = answer.text
    return [row["customer_number"] for row in csv.DictReader(io.StringIO(text))]


def test_an_open_retry_lists_its_records_as_one_input_and_takes_pages_after_them(
    client: httpx.Client,
) -> None:
    p = uuid.uuid4().hex[:6]
    original = cancelled_batch(client, p)
    made = client.post(f"/v1/batches/{original['id']}/retry", json={"submit": False})
    assert made.status_code == 201, made.text
    retry = made.json()
    assert (retry["status"], retry["progress"]["total"]) == ("open", 270)
    inputs = client.get(f"/v1/batches/{retry['id']}/inputs").json()["data"]
    assert [(i["name"], i["kind"], i["item_count"], i["size"], i["format"]) for i in inputs] == [
        (f"batch-{original['id']}", "retry", 270, 0, None)
    ]

    extra = [{"customer_number": f"{p}-new-{n}", "name": "New"} for n in range(2)]
    assert client.put(f"/v1/batches/{retry['id']}/pages/0", json={"items": extra}).status_code == 200
    file = client.put(
        f"/v1/batches/{retry['id']}/data",
        content="customer_number,name\nX,Y\n",
        headers={"Content-Type": "text/csv"},
    )
    assert (file.status_code, file.json()["code"]) == (409, "MIXED_INPUT")
    assert f"after the records of batch {original['id']}" in file.json()["detail"]
    inputs = client.get(f"/v1/batches/{retry['id']}/inputs").json()["data"]
    assert [i["kind"] for i in inputs] == ["retry", "page"]

    assert client.post(f"/v1/batches/{retry['id']}/submit").status_code == 200
    validated = wait_final(client, retry["id"])
    assert validated["counts"]["total"] == 272 and validated["counts"]["invalid"] == 0
    client.post(f"/v1/batches/{retry['id']}/process")
    assert wait_final(client, retry["id"])["outcome"] == "succeeded"
    sent_again = [f"{p}-{i:03}" for i in range(RECORDS) if i % 10 != 9]
    assert result_numbers(client, retry["id"]) == sent_again + [f"{p}-new-0", f"{p}-new-1"]


def test_a_retry_of_invalid_records_reads_them_as_they_were_sent(client: httpx.Client) -> None:
    p = uuid.uuid4().hex[:6]
    original = cancelled_batch(client, p)
    retry = client.post(f"/v1/batches/{original['id']}/retry", json={"outcomes": ["invalid"]}).json()
    done = wait_final(client, retry["id"])
    assert (done["status"], done["counts"]["total"], done["counts"]["invalid"]) == ("validated", 30, 30)
    assert result_numbers(client, retry["id"], outcome="invalid") == [
        f"{p}-{i:03}" for i in range(9, RECORDS, 10)
    ]


def test_an_automatic_retry_reads_its_records_like_any_batch(client: httpx.Client) -> None:
    """billing.customer applies while it is validated, so an automatic batch reads its files
    through first: that took the retry's records for a file (an error after three attempts)."""
    p = uuid.uuid4().hex[:6]
    items = [{"customer_number": f"{p}-{i}", "name": "" if i < 2 else "Ann"} for i in range(5)]
    body = {"type": "billing.customer", "submit": True, "items": items}
    original = wait_final(client, client.post("/v1/batches", json=body).json()["id"])
    assert (original["process"], original["counts"]["invalid"]) == ("auto", 2)
    retry = client.post(f"/v1/batches/{original['id']}/retry", json={"outcomes": ["invalid"]}).json()
    done = wait_final(client, retry["id"])
    assert (done["status"], done["counts"]["total"], done["counts"]["invalid"]) == ("completed", 2, 2), done


def drop_staged_records(server: Server, batch_id: int) -> None:
    """What the database would hold had the batch's staged records been lost."""
    url = server.env["LOADBAY_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            chunks = "SELECT id FROM chunks WHERE batch_id = :b"
            conn.execute(text(f"DELETE FROM chunk_payloads WHERE chunk_id IN ({chunks})"), {"b": batch_id})
    finally:
        engine.dispose()


def test_records_no_longer_kept_are_refused_at_the_retry_and_fail_a_retry_made_before(
    server: Server, client: httpx.Client
) -> None:
    original = cancelled_batch(client, uuid.uuid4().hex[:6])
    retry = client.post(f"/v1/batches/{original['id']}/retry", json={"submit": False}).json()
    drop_staged_records(server, original["id"])

    again = client.post(f"/v1/batches/{original['id']}/retry", json={"outcomes": ["invalid"]})
    assert (again.status_code, again.json()["code"]) == (409, "RETRY_NOT_SUPPORTED")
    assert client.post(f"/v1/batches/{retry['id']}/submit").status_code == 200
    failed = wait_final(client, retry["id"])
    assert (failed["status"], failed["error"]["code"]) == ("error", "RETRY_NOT_SUPPORTED")
    assert f"batch {original['id']}'s records are no longer kept" in failed["error"]["message"]


def test_nothing_to_retry_makes_no_batch(client: httpx.Client) -> None:
    original = cancelled_batch(client, uuid.uuid4().hex[:6])
    before = client.get("/v1/batches").json()["data"]
    answer = client.post(f"/v1/batches/{original['id']}/retry", json={"outcomes": ["failed"]})
    assert (answer.status_code, answer.json()["code"]) == (409, "NOTHING_TO_RETRY")
    assert client.get("/v1/batches").json()["data"] == before


# numbers with a fraction (read from JSON as Decimal) are sent again as numbers -----------------

CATALOG_ITEM = '{"id": "%s", "description": "d", "ud_x": 1.50, "ud_l": [0.25, {"a": 1E-7}], "ud_t": "2.50"}'


def unprocessed_catalog_batch(client: httpx.Client, item_id: str, via: str) -> dict[str, Any]:
    """A manual catalog.user1 batch of one item sent `via` a JSON file or a JSON page,
    cancelled at validated: its item unprocessed."""
    text = CATALOG_ITEM % item_id
    if via == "file":
        made = client.post("/v1/batches", json={"type": "catalog.user1", "process": "manual"}).json()
        sent = client.put(
            f"/v1/batches/{made['id']}/data",
            content=f"[{text}]",
            headers={"Content-Type": "application/json"},
        )
        assert sent.status_code == 200, sent.text
        assert client.post(f"/v1/batches/{made['id']}/submit").status_code == 200
    else:
        body = f'{{"type": "catalog.user1", "process": "manual", "submit": true, "items": [{text}]}}'
        answer = client.post("/v1/batches", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 201, answer.text
        made = answer.json()
    assert wait_final(client, made["id"])["status"] == "validated"
    cancelled: dict[str, Any] = client.post(f"/v1/batches/{made['id']}/cancel").json()
    assert cancelled["counts"]["unprocessed"] == 1
    return cancelled


@pytest.mark.parametrize(
    ("via", "shown"),
    [
        ("file", '{"ud_x":1.50,"ud_l":[0.25,{"a":1E-7}],"ud_t":"2.50"}'),  # its digits as sent
        ("page", '{"ud_x":1.5,"ud_l":[0.25,{"a":1E-7}],"ud_t":"2.50"}'),  # (a page keeps 1.50 as 1.5)
    ],
)
def test_a_retry_sends_a_number_with_a_fraction_again_as_that_number(
    server: Server, client: httpx.Client, via: str, shown: str
) -> None:
    """Before, the chunk's payload kept it as text: the retry sent "1.50", and stored it so."""
    item_id = f"R-{uuid.uuid4().hex[:6]}"
    original = unprocessed_catalog_batch(client, item_id, via)
    retry = client.post(f"/v1/batches/{original['id']}/retry")
    assert retry.status_code == 201, retry.text
    assert wait_final(client, retry.json()["id"])["counts"]["valid"] == 1
    client.post(f"/v1/batches/{retry.json()['id']}/process")
    assert wait_final(client, retry.json()["id"])["outcome"] == "succeeded"

    answer = client.get(f"/v1/batches/{retry.json()['id']}/results")
    (row,) = csv.DictReader(io.StringIO(answer.text, newline=""))
    assert (row["id"], row["userDefined"]) == (item_id, shown)
    account = client.get("/v1/account").json()["id"]
    sql = "SELECT data FROM catalog_userx WHERE account_id = :a AND dimension = 1 AND item_id = :i"
    (stored,) = server.query(sql, a=account, i=item_id)
    assert json.loads(stored[0]) == {
        "id": item_id,
        "description": "d",
        "ud_x": 1.5,
        "ud_l": [0.25, {"a": 1e-7}],
        "ud_t": "2.50",
    }
