"""JSON bodies are read whole into memory, so they have a limit of their own
(LOADBAY_MAX_BODY_BYTES): over it a request is refused with 413 PAYLOAD_TOO_LARGE before
anything is parsed or stored, whether it declares its length or streams without one.
Files are streamed into the blob store and are not held to it. A real `loadbay serve`
on each backend, with a 4 KiB limit."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from xml.etree.ElementTree import fromstring

import httpx
import pytest

from tests.support.pdfs import pdf
from tests.support.servers import Server, start_server, wait_final

LIMIT = 4096


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"LOADBAY_MAX_BODY_BYTES": str(LIMIT)}
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), env=env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.account("limits")) as c:
        yield c


def items(count: int) -> list[dict[str, str]]:
    prefix = uuid.uuid4().hex[:8]
    return [
        {"customer_number": f"{prefix}-{i}", "name": f"Customer {i} of a long name"} for i in range(count)
    ]


def too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "PAYLOAD_TOO_LARGE", body
    assert "LOADBAY_MAX_BODY_BYTES" in body["detail"] and str(LIMIT) in body["detail"], body


def new_batch(client: httpx.Client, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/batches", json={"type": "billing.customer", **body})
    assert r.status_code == 201, r.text
    batch: dict[str, Any] = r.json()
    return batch


def test_a_page_over_the_limit_is_refused_and_stores_nothing(client: httpx.Client) -> None:
    batch = new_batch(client)
    big = items(100)
    assert len(json.dumps(big)) > LIMIT
    too_large(client.put(f"/v1/batches/{batch['id']}/pages/0", json=big))
    assert client.post(f"/v1/batches/{batch['id']}/submit").json()["code"] == "NO_DATA"
    small = items(10)
    assert client.put(f"/v1/batches/{batch['id']}/pages/0", json=small).status_code == 200
    done = wait_final(client, client.post(f"/v1/batches/{batch['id']}/submit").json()["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 10, done


def test_a_body_streamed_without_a_length_is_cut_off_at_the_limit(client: httpx.Client) -> None:
    batch = new_batch(client)

    def chunks() -> Iterator[bytes]:
        yield b"["
        for item in items(200):
            yield json.dumps(item).encode() + b","
        yield b"{}]"

    response = client.put(
        f"/v1/batches/{batch['id']}/pages/0", content=chunks(), headers={"Content-Type": "application/json"}
    )
    too_large(response)
    assert client.post(f"/v1/batches/{batch['id']}/submit").json()["code"] == "NO_DATA"


def test_a_create_with_items_over_the_limit_creates_no_batch(client: httpx.Client) -> None:
    job = uuid.uuid4().hex
    too_large(
        client.post("/v1/batches", json={"type": "billing.customer", "job_id": job, "items": items(100)})
    )
    assert client.get("/v1/batches", params={"job_id": job}).json()["data"] == []


def test_files_are_not_held_to_the_json_limit(client: httpx.Client) -> None:
    batch = new_batch(client)
    rows = items(500)
    csv = "customer_number,name\n" + "".join(f"{r['customer_number']},{r['name']}\n" for r in rows)
    assert len(csv) > 3 * LIMIT
    r = client.put(
        f"/v1/batches/{batch['id']}/data", content=csv.encode(), headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    done = wait_final(client, client.post(f"/v1/batches/{batch['id']}/submit").json()["id"], timeout=30)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 500, done


def test_requests_without_a_body_are_not_affected(client: httpx.Client) -> None:
    batch = new_batch(client)
    assert client.get(f"/v1/batches/{batch['id']}").status_code == 200
    assert client.post(f"/v1/batches/{batch['id']}/cancel").status_code == 200


def test_a_profile_refuses_it_in_its_own_error_format(server: Server) -> None:
    """Fusebill (its routes added straight to its app) answers in the seed's error body."""
    key = server.account("limits-fusebill")
    headers = {"Authorization": f"Basic {key}", "Content-Type": "application/json"}
    body = {"uploadType": "BulkPayment", "items": items(100)}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as fusebill:
        response = fusebill.post("/compat/fusebill/v1/BulkApi", json=body)
    assert response.status_code == 413, response.text
    answer = response.json()
    assert answer["HttpStatusCode"] == 413, answer
    assert "LOADBAY_MAX_BODY_BYTES" in answer["Errors"][0]["Value"], answer


def test_click2mail_limits_its_batch_xml_but_not_its_pdf(server: Server) -> None:
    """One route takes both: the PDF is a file (streamed), the batch XML a document."""
    key = server.account("limits-click2mail")
    pdf_type, xml_type = {"Content-Type": "application/pdf"}, {"Content-Type": "application/xml"}
    with httpx.Client(base_url=server.url + "/compat/click2mail", auth=("user", key), timeout=30) as c2m:
        created = c2m.post("/batches")
        assert created.status_code == 201, created.text
        batch_id = int(fromstring(created.text).findtext("id") or "0")
        document = pdf(100)
        assert len(document) > 2 * LIMIT
        stored = c2m.put(f"/batches/{batch_id}", content=document, headers=pdf_type)
        assert stored.status_code == 200, stored.text
        job = "<job><startingPage>1</startingPage><endingPage>1</endingPage></job>"
        xml = f"<batch><filename>a.pdf</filename>{job * 200}</batch>".encode()
        refused = c2m.put(f"/batches/{batch_id}", content=xml, headers=xml_type)
    assert refused.status_code == 413, refused.text
    assert "LOADBAY_MAX_BODY_BYTES" in refused.text
