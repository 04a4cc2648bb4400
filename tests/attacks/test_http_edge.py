"""The HTTP edge under attack: keyless bodies, huge or slow heads, stalled and abandoned
bodies, malformed framing. Each case states the safe answer; the module also fails on any
5xx or traceback in the server's log (conftest)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.rawhttp import connect, exchange, read_answer
from tests.support.servers import Server, start_server, wait_final

PROFILES = ("ebill", "fusebill", "centrapay", "alliant", "click2mail")
HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
THIRTY_MIB = 30 * 1024 * 1024


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with short head and body timeouts, so slow clients are cut off quickly."""
    env = {"LOADBAY_HEAD_TIMEOUT": str(HEAD_TIMEOUT), "LOADBAY_BODY_TIMEOUT": str(BODY_TIMEOUT)}
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), env=env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def owner(server: Server) -> str:
    return server.account(f"edge-{uuid.uuid4().hex[:6]}")


def head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: loadbay.test", *headers, "", ""]
    return "\r\n".join(lines).encode()


def body_routes(server: Server) -> list[tuple[str, str]]:
    """(method, path) of every route that takes a body, native and profiles, as served."""
    routes = []
    for prefix in ["", *(f"/compat/{name}" for name in PROFILES)]:
        spec = httpx.get(f"{server.url}{prefix}/openapi.json").json()
        for path, operations in spec["paths"].items():
            for method in operations:
                if method.upper() in {"POST", "PUT", "PATCH"}:
                    routes.append((method.upper(), prefix + _filled(path)))
    return routes


def _filled(path: str) -> str:
    """The path with each parameter given a plausible value."""
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + "1" + path[end + 1 :]
    return path


def vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --------------------------------------------------------------------------- the key before the body


@pytest.mark.parametrize("credential", [None, "X-Api-Key: lb_live_not-a-key"], ids=["keyless", "unknown key"])
def test_every_body_route_answers_a_caller_without_a_valid_key_before_the_body(
    server: Server, credential: str | None
) -> None:
    """A request that declares a 30 MiB body and sends none of it is refused at once."""
    routes = body_routes(server)
    assert len(routes) >= 15, routes  # the native API and every profile were found
    wrong = []
    for method, path in routes:
        headers = ["Content-Type: application/json", f"Content-Length: {THIRTY_MIB}"]
        answer = exchange(server.url, head(method, path, *headers, *filter(None, [credential])))
        if answer.status not in (401, 403) or answer.elapsed > 3:
            wrong.append((method, path, answer.status, round(answer.elapsed, 1)))
    assert not wrong, f"routes that did not refuse the caller before the body: {wrong}"


def test_a_signed_upload_url_checks_its_signature_before_the_body(server: Server) -> None:
    path = "/v1/blobs/batches/1/inputs/data?expires=9999999999&signature=forged"
    answer = exchange(
        server.url, head("PUT", path, "Content-Type: text/csv", f"Content-Length: {THIRTY_MIB}")
    )
    assert answer.status == 403 and answer.elapsed < 3


def test_keyless_bodies_are_not_buffered(server: Server) -> None:
    """Eight connections each pushing 8 MiB with no key: the server drains, never stores."""
    before = vm_rss_kb(server.process.pid)
    sockets = [connect(server.url) for _ in range(8)]
    declared = head("POST", "/v1/batches", "Content-Type: application/json", f"Content-Length: {THIRTY_MIB}")
    for sock in sockets:
        sock.sendall(declared)
    for sock in sockets:
        answer = read_answer(sock, time.monotonic())
        assert answer.status == 401
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may stop draining
            sock.sendall(b" " * 8 * 1024 * 1024)
        sock.close()
    assert vm_rss_kb(server.process.pid) - before < 20_000


def test_an_answered_connection_is_reused_once_its_short_body_is_sent(server: Server) -> None:
    with connect(server.url) as sock:
        sock.sendall(
            head("POST", "/v1/batches", "Content-Type: application/json", "Content-Length: 2") + b"{}"
        )
        assert read_answer_keep(sock).startswith("HTTP/1.1 401")
        sock.sendall(head("GET", "/healthz"))
        assert read_answer_keep(sock).startswith("HTTP/1.1 200")


def read_answer_keep(sock: Any) -> str:
    """One whole answer (head and Content-Length body) from a connection that stays open."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head_part, body = received.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head_part.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head_part.decode("latin-1")


# --------------------------------------------------------------------------- request heads


def test_a_huge_header_is_refused_and_costs_no_memory(server: Server) -> None:
    """A 64 MiB header on /healthz: 400 once the head passes LOADBAY_MAX_HEAD_BYTES."""
    before = vm_rss_kb(server.process.pid)
    sent = 0
    with connect(server.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(b"a" * 1024 * 1024)
                sent += 1024 * 1024
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert sent < 16 * 1024 * 1024, "the server kept reading a head far past its limit"
    assert vm_rss_kb(server.process.pid) - before < 20_000
    assert httpx.get(f"{server.url}/healthz").status_code == 200


@pytest.mark.parametrize(
    "request_head",
    [
        head("GET", "/healthz", *(f"X-H{i}: v" for i in range(10_000))),
        head("GET", "/healthz", "X-Big: " + "a" * 40_000),
        head("GET", "/" + "a" * 40_000),
    ],
    ids=["10,000 headers", "a 40 KB header", "a 40 KB path"],
)
def test_heads_over_the_limit_are_400(server: Server, request_head: bytes) -> None:
    assert exchange(server.url, request_head).status in (400, 431)


def test_a_head_sent_slowly_is_cut_off(server: Server) -> None:
    """Slowloris: a byte now and then never completes the head; 408 after LOADBAY_HEAD_TIMEOUT."""
    with connect(server.url) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        try:
            for _ in range(int(HEAD_TIMEOUT * 10)):
                time.sleep(0.25)
                sock.sendall(b"X-Slow: 1\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_answer(sock, started, wait_close=True)
    assert answer.status == 408 and answer.closed
    assert answer.elapsed < HEAD_TIMEOUT + 1.5


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    with connect(server.url) as sock:
        answer = read_answer(sock, time.monotonic(), wait_close=True)
    assert answer.closed and answer.elapsed < HEAD_TIMEOUT + 1.5


@pytest.mark.parametrize(
    "request_bytes",
    [
        head("POST", "/v1/batches", "Content-Length: 5", "Transfer-Encoding: chunked")
        + b"0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        head("POST", "/v1/batches", "Content-Length: 5", "Content-Length: 7") + b"{}",
        head("POST", "/v1/batches", "Transfer-Encoding: chunked") + b"zz\r\n{}\r\n0\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
    ],
    ids=[
        "CL and TE (smuggling)",
        "two Content-Lengths",
        "bad chunk size",
        "header without colon",
        "TLS hello",
    ],
)
def test_malformed_framing_is_400(server: Server, owner: str, request_bytes: bytes) -> None:
    keyed = request_bytes.replace(b"Host: loadbay.test", f"Host: x\r\nX-Api-Key: {owner}".encode())
    answer = exchange(server.url, keyed, wait_close=True)
    assert answer.status in (400, None) and answer.closed


# --------------------------------------------------------------------------- bodies that stop


def _new_batch(server: Server, key: str) -> int:
    with server.client(key) as client:
        created = client.post("/v1/batches", json={"type": "billing.customer"})
        assert created.status_code == 201, created.text
        return int(created.json()["id"])


@pytest.mark.parametrize("client_action", ["stalls", "hangs up"])
def test_an_unfinished_upload_stores_nothing(server: Server, owner: str, client_action: str) -> None:
    """A body that stops (or a client that leaves) mid-upload leaves the batch as it was."""
    batch = _new_batch(server, owner)
    prefix = f"E{uuid.uuid4().hex[:6]}-"
    partial = f"customer_number,name\r\n{prefix}0,Partial\r\n".encode()
    headers = [f"X-Api-Key: {owner}", "Content-Type: text/csv", "Content-Length: 100000"]
    with connect(server.url) as sock:
        sock.sendall(head("PUT", f"/v1/batches/{batch}/data?name=partial", *headers) + partial)
        if client_action == "stalls":
            answer = read_answer(sock, time.monotonic(), wait_close=True)
            assert answer.closed and answer.elapsed < BODY_TIMEOUT + 2
    with server.client(owner) as client:
        good = f"customer_number,name\n{prefix}1,Good Ltd\n{prefix}2,Fine Inc\n"
        put = client.put(f"/v1/batches/{batch}/data", content=good, headers={"Content-Type": "text/csv"})
        assert put.status_code == 200, put.text
        assert client.post(f"/v1/batches/{batch}/submit").status_code == 200
        done = wait_final(client, batch)
    assert done["status"] == "completed"
    assert done["counts"]["total"] == 2 and done["counts"]["succeeded"] == 2
    stored = server.query(
        "SELECT count(*) FROM billing_customers WHERE customer_number LIKE :p", p=f"{prefix}%"
    )
    assert stored[0][0] == 2
    if client_action == "hangs up":
        assert "hung up during PUT" in server.log.read_text()
