"""Attacks that already fail, kept failing: forged fetch targets (SSRF), path traversal in
file names, races on idempotent creates, and reaching another account's batches. Each case
states the safe answer; the module also fails on any 5xx or traceback in the server log."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pytest_httpserver import HTTPServer

from tests.support.servers import Server, start_server, wait_final


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default fetch policy: public addresses only."""
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.account(f"hold-{uuid.uuid4().hex[:6]}")) as c:
        yield c


def create(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/batches", json={"type": "billing.customer", **body})


# --------------------------------------------------------------------------- SSRF


def loopback_forms(port: int) -> list[str]:
    """The same loopback server, spelled the ways that slip past naive checks."""
    return [
        f"http://127.0.0.1:{port}/x.csv",
        f"http://2130706433:{port}/x.csv",  # decimal
        f"http://0x7f000001:{port}/x.csv",  # hexadecimal
        f"http://0177.0.0.1:{port}/x.csv",  # octal
        f"http://127.1:{port}/x.csv",  # short form
        f"http://[::ffff:127.0.0.1]:{port}/x.csv",  # IPv4-mapped IPv6
        f"http://[::1]:{port}/x.csv",
        f"http://localhost:{port}/x.csv",  # a name that resolves to loopback
        f"http://0.0.0.0:{port}/x.csv",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://10.1.2.3/x.csv",
    ]


def test_source_urls_to_private_addresses_never_connect(client: httpx.Client, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x.csv").respond_with_data("customer_number,name\nS1,Secret\n")
    outcomes = {}
    for url in loopback_forms(httpserver.port):
        answer = create(client, source_url=url)
        if answer.status_code == 400:
            outcomes[url] = answer.json()["code"]
            continue
        assert answer.status_code == 201, answer.text
        batch = wait_final(client, answer.json()["id"], timeout=30)
        outcomes[url] = (batch["status"], (batch["error"] or {}).get("code"))
    # refused: at create (a URL httpx cannot parse, such as the octal form), or when fetched
    refusals = (("error", "FETCH_REFUSED"), "INVALID_SOURCE_URL")
    refused = {url: o for url, o in outcomes.items() if o not in refusals}
    assert not refused, f"not refused: {refused}"
    assert httpserver.log == [], "a private address was connected to"


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/x.csv", "gopher://127.0.0.1:25/", "//x/y.csv"],
)
def test_source_urls_of_other_schemes_are_refused_at_create(client: httpx.Client, url: str) -> None:
    answer = create(client, source_url=url)
    assert answer.status_code == 400, answer.text


# --------------------------------------------------------------------------- file names


@pytest.mark.parametrize(
    "name",
    ["../../../../escaped.csv", "a/../../../../escaped.csv", "..\\..\\escaped.csv", "%2e%2e/escaped.csv"],
)
def test_file_names_cannot_leave_the_batch(client: httpx.Client, server: Server, name: str) -> None:
    """A name is a label: stored URL-encoded inside the batch's folder, never a path."""
    batch = create(client).json()["id"]
    put = client.put(
        f"/v1/batches/{batch}/data",
        params={"name": name},
        content=b"customer_number,name\nP1,Path\n",
        headers={"Content-Type": "text/csv"},
    )
    assert put.status_code == 200, put.text
    data_dir = Path(server.env["LOADBAY_DATA_DIR"])
    inputs = data_dir / "blobs" / "batches" / str(batch) / "inputs"
    assert [p.name for p in inputs.iterdir()] == [quote(name, safe="")]
    assert not list(data_dir.parent.rglob("escaped.csv"))
    assert client.post(f"/v1/batches/{batch}/upload-url", json={"name": name}).status_code == 200


# --------------------------------------------------------------------------- races


def test_concurrent_creates_with_one_job_id_make_one_batch(server: Server, client: httpx.Client) -> None:
    job = f"race-{uuid.uuid4().hex[:8]}"
    answers: list[httpx.Response] = []

    def create_once() -> None:
        with server.client(client.headers["X-Api-Key"]) as own:
            answers.append(create(own, job_id=job))

    threads = [threading.Thread(target=create_once) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1


# --------------------------------------------------------------------------- tenancy


def test_another_accounts_batch_cannot_be_reached_through_a_profile(
    server: Server, client: httpx.Client
) -> None:
    """The native id of another account's batch is not found through the profiles either."""
    batch = create(client).json()["id"]
    stranger = server.account(f"stranger-{uuid.uuid4().hex[:6]}")
    with server.client(stranger) as other:
        for path in (
            f"/compat/centrapay/api/batches/{batch}",
            f"/compat/alliant/api/Import/customer/{batch}",
            f"/compat/click2mail/batches/{batch}",
        ):
            answer = other.get(path)
            assert answer.status_code == 404, (path, answer.status_code, answer.text)
        assert other.post(f"/v1/batches/{batch}/submit").status_code == 404
    assert client.get(f"/v1/batches/{batch}").json()["status"] == "open"
