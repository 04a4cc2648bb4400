"""GET /v1/batches/{id}, the request clients poll: it checks the key and reads the batch in one
read, and renders its answer itself (not through FastAPI's response_model), on each backend.
Its answers must stay those of every other operation: the same JSON as the batch listed, the
key checked before the batch id, the same problems."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.accounts import make_keys
from tests.support.servers import Server, wait_final

TYPE = "billing.customer"
CSV = "customer_number,name,email\nS1,Ada,ada@example.com\nS2,,nobody\n"


@pytest.fixture(scope="module")
def keys(server: Server) -> list[str]:
    return make_keys(server, "status-reads", 2)


@pytest.fixture(scope="module")
def client(server: Server, keys: list[str]) -> Iterator[httpx.Client]:
    with server.client(keys[0]) as c:
        yield c


@pytest.fixture(scope="module")
def anon(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def _create(client: httpx.Client, **body: Any) -> int:
    r = client.post("/v1/batches", json={"type": TYPE, **body})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _listed(client: httpx.Client, batch_id: int) -> dict[str, Any]:
    """The batch as GET /v1/batches lists it (rendered by FastAPI from BatchOut)."""
    r = client.get("/v1/batches", params={"cursor": batch_id + 1, "limit": 1})
    assert r.status_code == 200, r.text
    (batch,) = r.json()["data"]
    assert batch["id"] == batch_id
    return dict(batch)


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status, body
    return body


def test_status_is_the_batch_as_listed(client: httpx.Client) -> None:
    """Open (with a page: a total known), completed (an outcome, eta 0), and one with options,
    a description and a job id: each answered as the list renders it, with its headers."""
    options = {"csv_delimiter": "semicolon", "unknown_columns": "refuse"}
    paged = _create(client, description="pages – ü", job_id="status-reads-1", options=options)
    page = client.put(f"/v1/batches/{paged}/pages/1", json=[{"customer_number": "P1", "name": "A"}])
    assert page.status_code == 200, page.text
    done = _create(client)
    put = client.put(f"/v1/batches/{done}/data", content=CSV, headers={"Content-Type": "text/csv"})
    assert put.status_code == 200, put.text
    assert client.post(f"/v1/batches/{done}/submit").status_code == 200
    final = wait_final(client, done)
    assert final["status"] == "completed" and final["outcome"] == "partial", final
    for batch_id in (paged, done):
        r = client.get(f"/v1/batches/{batch_id}")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert int(r.headers["content-length"]) == len(r.content)
        assert r.json() == _listed(client, batch_id)
    assert client.get(f"/v1/batches/{paged}").json()["progress"]["total"] == 1


def test_every_key_style_reads_the_batch(server: Server, keys: list[str], client: httpx.Client) -> None:
    batch_id = _create(client)
    styles = [
        {"X-Api-Key": keys[0]},
        {"Authorization": f"Bearer {keys[0]}"},
        {"Authorization": f"Basic {keys[0]}"},
    ]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for headers in styles:
            r = c.get(f"/v1/batches/{batch_id}", headers=headers)
            assert r.status_code == 200 and r.json()["id"] == batch_id, (headers, r.text)


def test_the_key_is_checked_before_the_batch_id(
    server: Server, client: httpx.Client, anon: httpx.Client
) -> None:
    batch_id = _create(client)
    with server.client("lb_live_no-such-key") as unknown:
        for path in ("abc", "1.5", "9" * 30, str(batch_id), "0", str(2**63)):
            body = _problem(unknown.get(f"/v1/batches/{path}"), 401, "UNAUTHORIZED")
            assert body["detail"] == "unknown API key", body
            _problem(anon.get(f"/v1/batches/{path}"), 401, "UNAUTHORIZED")
    assert "batch_id" in _problem(client.get("/v1/batches/abc"), 400, "INVALID_INPUT")["detail"]


def test_another_accounts_batch_and_ids_no_row_has_are_not_found(
    server: Server, keys: list[str], client: httpx.Client
) -> None:
    batch_id = _create(client)
    with server.client(keys[1]) as other:
        body = _problem(other.get(f"/v1/batches/{batch_id}"), 404, "NOT_FOUND")
        assert body["detail"] == f"batch {batch_id} not found", body
    for path in ("0", "-3", str(2**63 - 1), str(2**63), str(2**70)):
        _problem(client.get(f"/v1/batches/{path}"), 404, "NOT_FOUND")
