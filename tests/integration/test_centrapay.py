"""The Centrapay profile (seed 002) as a Centrapay client uses it, against a real
`loadbay serve` on each backend, with files served by pytest-httpserver on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.support.centrapay_seed import SEED_CREATE_TEXT, SEED_CREATED_TEXT, SEED_GOT_TEXT, SEED_URL
from tests.support.s3 import S3Store
from tests.support.servers import Server, free_port, start_server

pytestmark = pytest.mark.stores("file", "s3")

API = "/compat/centrapay/api/batches"
ASSET = "farmlands-external-asset"
TERMINAL = "verifone-terminal-status"
ACCOUNT_ID = "C4QnjXvj8At6SMsEN4LRi9"  # the seed's accountId
SEED_EXTERNAL_ID = "69d64d80-f9bd-4057-bc5b-1c55685d995b"
BATCH_FIELDS = [
    "id",
    "accountId",
    "status",
    "type",
    "url",
    "test",
    "count",
    "totalCount",
    "errorCount",
    "errors",
]
LIFECYCLE = ["created", "copied", "chunked", "complete"]
BARCODE = "1234567890123456"
ASSET_HEADER = "external_id,barcode,description,balance,currency,expires_on\n"
SCALE_POSTGRES = "LOADBAY_TEST_SCALE_POSTGRES"


# servers and accounts -------------------------------------------------------


@pytest.fixture(scope="module")
def server(
    module_database_url: str, store: S3Store | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One real `loadbay serve` per backend and store that may fetch from loopback; it takes
    files up to 64 MB (the 160,000-record file is about 11 MB; conftest's server stops at 5 MB)."""
    env = {"LOADBAY_FETCH_ALLOW": "127.0.0.1", "LOADBAY_MAX_UPLOAD_BYTES": str(64 * 1024 * 1024)}
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), env=env, s3=store)
    yield running
    running.stop()


# `loadbay accounts create` pays the imports on every call; this makes a module's
# accounts in one process, with the service call the CLI makes.
_MAKE_ACCOUNTS = """
import json, sys
from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.types import default_registry

settings = Settings()
rt = Runtime.build(settings, default_registry(), base_url=settings.base_url())
service = BatchService(rt)
keys = {
    mode: [service.create_account(f"{sys.argv[1]}-{mode}-{i}", test=mode == "test")[1] for i in range(40)]
    for mode in ("live", "test")
}
rt.close()
print(json.dumps(keys))
"""


@pytest.fixture(scope="module")
def made_keys(server: Server) -> dict[str, Iterator[str]]:
    """Keys of new live and test accounts, each handed out once."""
    args = [sys.executable, "-c", _MAKE_ACCOUNTS, f"centrapay-{uuid.uuid4().hex[:8]}"]
    made = json.loads(subprocess.run(args, env=server.env, check=True, capture_output=True).stdout)
    return {mode: _hand_out(server, keys, mode == "test") for mode, keys in made.items()}


def _hand_out(server: Server, keys: list[str], test: bool) -> Iterator[str]:
    yield from keys
    while True:  # more tests than accounts made: fall back to the CLI
        yield server.account(f"centrapay-{uuid.uuid4().hex[:8]}", test=test)


@pytest.fixture
def key(made_keys: dict[str, Iterator[str]]) -> str:
    """A fresh live account's key (overrides conftest's, which runs the CLI per test)."""
    return next(made_keys["live"])


@pytest.fixture
def other_key(made_keys: dict[str, Iterator[str]]) -> str:
    return next(made_keys["live"])


@pytest.fixture
def test_key(made_keys: dict[str, Iterator[str]]) -> str:
    """A fresh test account's key."""
    return next(made_keys["test"])


# helpers ----------------------------------------------------------------------


def serve(httpserver: HTTPServer, path: str, body: str | bytes, content_type: str = "text/csv") -> str:
    httpserver.expect_request(path).respond_with_data(body, content_type=content_type)
    return f"http://127.0.0.1:{httpserver.port}{path}"


def seed_body(url: str, **changes: Any) -> dict[str, Any]:
    """The seed's Create Batch body, with `url` pointing at a file loadbay may fetch."""
    return {"type": ASSET, "url": url, "accountId": ACCOUNT_ID, "test": True} | changes


def create(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(API, json=body)
    assert response.status_code == 200, response.text
    batch: dict[str, Any] = response.json()
    return batch


def get(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    response = client.get(f"{API}/{batch_id}")
    assert response.status_code == 200, response.text
    batch: dict[str, Any] = response.json()
    return batch


def poll(client: httpx.Client, batch_id: str, timeout: float = 240.0) -> tuple[dict[str, Any], list[str]]:
    """GET the batch until it is complete or error; also every status seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = get(client, batch_id)
        if not seen or seen[-1] != batch["status"]:
            seen.append(batch["status"])
        if batch["status"] in ("complete", "error"):
            return batch, seen
        time.sleep(0.02)
    raise AssertionError(f"batch {batch_id} not finished after {timeout}s: {seen}")


def finish(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    return poll(client, create(client, body)["id"])[0]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()
    assert set(error) == {"code", "message"} and error["code"] == code and error["message"]
    return error


def native_events(client: httpx.Client, url: str) -> list[str]:
    """The core events of this account's batch that fetched `url` (through the native API)."""
    batches = client.get("/v1/batches").json()["data"]
    [batch] = [b for b in batches if b["source_url"] == url]
    return [e["event"] for e in client.get(f"/v1/batches/{batch['id']}/events").json()["data"]]


def asset_rows(count: int, bad: int) -> Iterator[str]:
    yield ASSET_HEADER
    for i in range(count):
        if i == bad:
            yield f"{SEED_EXTERNAL_ID},123456789012345,Gift card,25.00,NZD,2027-06-30\n"
        else:
            yield f"{i:08x}-0000-4000-8000-{i:012x},{i:016d},Gift card,25.00,NZD,2027-06-30\n"


# the seed, step by step -------------------------------------------------------


def test_seed_create_then_get_until_complete(server: Server, test_key: str, httpserver: HTTPServer) -> None:
    """The seed's Create Batch body (its url pointing at a file served here, 3000 records with
    the seed's bad barcode at index 1954), then GET until complete: the seed's two example
    answers, with totalCount (the model table's name) besides count."""
    url = serve(httpserver, "/1234", "".join(asset_rows(3000, bad=1954)))
    body = SEED_CREATE_TEXT.replace(SEED_URL, url)
    with server.client(test_key) as client:
        response = client.post(API, content=body.encode(), headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        created = response.json()
        assert list(created) == BATCH_FIELDS
        assert created == json.loads(SEED_CREATED_TEXT) | {
            "id": created["id"],
            "accountId": ACCOUNT_ID,
            "url": url,
            "totalCount": "0",
        }
        done, _ = poll(client, created["id"])
    assert list(done) == BATCH_FIELDS
    assert done == json.loads(SEED_GOT_TEXT) | {
        "id": created["id"],
        "accountId": ACCOUNT_ID,
        "url": url,
        "count": "3000",
        "totalCount": "3000",
    }
    assert list(done["errors"][0]) == ["externalId", "index", "message"]


def test_ids_are_opaque_strings(server: Server, key: str, httpserver: HTTPServer) -> None:
    url = serve(httpserver, "/opaque.csv", ASSET_HEADER + f"o1,{BARCODE}\n")
    with server.client(key) as client:
        batch = finish(client, seed_body(url, test=False))
        native_id = client.get("/v1/batches").json()["data"][0]["id"]
        assert_error(client.get(f"{API}/{native_id}"), 404, "NOT_FOUND")
    assert len(batch["id"]) >= 20 and not batch["id"].isdigit()
    assert batch["id"] != str(native_id)


@pytest.mark.slow
def test_the_seeds_160000_record_file_completes(
    server: Server, test_key: str, httpserver: HTTPServer
) -> None:
    """The seed's example size, and the lifecycle on the way: a poller sees the statuses in
    lifecycle order (which ones depends on how fast this machine is), and the batch's events
    record every milestone in order.

    SQLite only unless LOADBAY_TEST_SCALE_POSTGRES=1: on PostgreSQL it takes minutes on
    a small, busy machine (on SQLite 40-100 s)."""
    if server.env["LOADBAY_DATABASE_URL"].startswith("postgresql") and not os.environ.get(SCALE_POSTGRES):
        pytest.skip(f"160,000 records on PostgreSQL are slow here; {SCALE_POSTGRES}=1 runs them")
    url = serve(httpserver, "/azurebuckets/1234", "".join(asset_rows(160_000, bad=1954)).encode())
    with server.client(test_key) as client:
        started = time.monotonic()
        created = create(client, seed_body(url))
        done, seen = poll(client, created["id"])
        elapsed = time.monotonic() - started
        events = native_events(client, url)
    print(f"160,000 records: complete in {elapsed:.1f}s; statuses seen: {seen}")
    assert done["status"] == "complete" and done["count"] == done["totalCount"] == "160000"
    assert done["errorCount"] == "1"
    assert done["errors"] == [
        {"externalId": SEED_EXTERNAL_ID, "index": "1954", "message": "INVALID_BARCODE_LENGTH"}
    ]
    assert seen == [s for s in LIFECYCLE if s in seen] and seen[-1] == "complete"
    assert [e for e in events if e in LIFECYCLE] == LIFECYCLE


def test_created_while_the_file_is_fetched(server: Server, key: str, httpserver: HTTPServer) -> None:
    """A slow file server: the batch says `created` while loadbay fetches the file, then
    moves on in lifecycle order."""
    body = "".join(asset_rows(5_000, bad=-1))

    def slow(_request: Request) -> Response:
        time.sleep(1.0)
        return Response(body, content_type="text/csv")

    httpserver.expect_request("/slow.csv").respond_with_handler(slow)
    url = f"http://127.0.0.1:{httpserver.port}/slow.csv"
    with server.client(key) as client:
        created = create(client, seed_body(url, test=False))
        time.sleep(0.5)
        fetching = get(client, created["id"])
        done, seen = poll(client, created["id"])
    assert fetching["status"] == "created"
    assert seen == [s for s in LIFECYCLE if s in seen] and seen[-1] == "complete"
    assert done["count"] == "5000" and done["errorCount"] == "0"


# record types -----------------------------------------------------------------


def test_bad_rows_are_listed_with_their_index(server: Server, key: str, httpserver: HTTPServer) -> None:
    rows = [
        f"b0,{BARCODE},,1.00,NZD,2027-01-01",
        "b1,12345678ABCDEFGH,,,,",
        f"b2,{BARCODE},,-5,,",
        f"b3,{BARCODE},,,QQQ,",
        ",1234,,,,",
        f"b0,{BARCODE},,,,",
    ]
    url = serve(httpserver, "/bad.csv", ASSET_HEADER + "\n".join(rows) + "\n")
    with server.client(key) as client:
        done = finish(client, seed_body(url, test=False))
    assert (done["status"], done["count"], done["errorCount"]) == ("complete", "6", "5")
    assert done["errors"] == [
        {"externalId": "b1", "index": "1", "message": "INVALID_BARCODE"},
        {"externalId": "b2", "index": "2", "message": "NEGATIVE_BALANCE"},
        {"externalId": "b3", "index": "3", "message": "INVALID_CURRENCY"},
        {"index": "4", "message": "REQUIRED"},
        {"index": "4", "message": "INVALID_BARCODE_LENGTH"},
        {"externalId": "b0", "index": "5", "message": "DUPLICATE_KEY"},
    ]


def test_terminal_status_from_json_lines_and_a_stale_report(
    server: Server, key: str, httpserver: HTTPServer
) -> None:
    first = [
        {"terminal_id": "T1", "status": "online", "reported_at": "2026-03-01T10:00:00Z"},
        {"terminal_id": "T2", "status": "broken", "reported_at": "2026-03-01T10:00:00Z"},
        {"terminal_id": "T3", "status": "faulty", "reported_at": "2026-03-01 10:00"},
    ]
    stale = [{"terminal_id": "T1", "status": "offline", "reported_at": "2026-03-01T09:00:00Z"}]
    lines = "".join(json.dumps(r) + "\n" for r in first)
    url1 = serve(httpserver, "/terminals.jsonl", lines, "application/x-ndjson")
    url2 = serve(httpserver, "/stale.jsonl", json.dumps(stale[0]) + "\n", "application/x-ndjson")
    with server.client(key) as client:
        done = finish(client, seed_body(url1, type=TERMINAL, test=False))
        skipped = finish(client, seed_body(url2, type=TERMINAL, test=False))
        results = _native_results(client, url2)
    assert (done["type"], done["count"], done["errorCount"]) == (TERMINAL, "3", "2")
    assert done["errors"] == [
        {"externalId": "T2", "index": "1", "message": "INVALID_STATUS"},
        {"externalId": "T3", "index": "2", "message": "INVALID_TIMESTAMP"},
    ]
    assert (skipped["status"], skipped["count"], skipped["errorCount"], skipped["errors"]) == (
        "complete",
        "1",
        "0",
        [],
    )
    assert "succeeded,skipped" in results and "STALE_STATUS" in results


def _native_results(client: httpx.Client, url: str) -> str:
    [batch] = [b for b in client.get("/v1/batches").json()["data"] if b["source_url"] == url]
    return client.get(f"/v1/batches/{batch['id']}/results").text


# files that cannot be had -----------------------------------------------------


def test_unreachable_url_is_an_error_with_the_reason(server: Server, key: str) -> None:
    url = f"http://127.0.0.1:{free_port()}/closed.csv"  # nothing listens there
    with server.client(key) as client:
        done = finish(client, seed_body(url, test=False))
    assert (done["status"], done["count"], done["errorCount"]) == ("error", "0", "1")
    [error] = done["errors"]
    assert list(error) == ["message"]
    assert error["message"].startswith("FETCH_FAILED: ") and url in error["message"]


def test_a_missing_file_is_an_error(server: Server, key: str, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/gone.csv").respond_with_data("gone", status=404)
    with server.client(key) as client:
        done = finish(client, seed_body(f"http://127.0.0.1:{httpserver.port}/gone.csv", test=False))
    assert done["status"] == "error"
    assert "HTTP 404" in done["errors"][0]["message"]


def test_a_file_without_the_required_columns_is_an_error(
    server: Server, key: str, httpserver: HTTPServer
) -> None:
    url = serve(httpserver, "/columns.csv", "id,code\n1,2\n")
    with server.client(key) as client:
        done = finish(client, seed_body(url, test=False))
    assert done["status"] == "error" and done["errors"][0]["message"].startswith("MISSING_COLUMN: ")


def test_a_private_address_is_refused(database_url: str, tmp_path: Path, httpserver: HTTPServer) -> None:
    """A server without LOADBAY_FETCH_ALLOW fetches from public addresses only."""
    url = serve(httpserver, "/private.csv", ASSET_HEADER + f"p1,{BARCODE}\n")
    strict = start_server(database_url, tmp_path / "strict")
    try:
        with strict.client(strict.account("strict")) as client:
            done = finish(client, seed_body(url, test=False))
    finally:
        strict.stop()
    assert done["status"] == "error"
    message = done["errors"][0]["message"]
    assert message.startswith("FETCH_REFUSED: ") and "127.0.0.1" in message
    assert not httpserver.log  # refused without connecting


# requests that are refused ----------------------------------------------------


def test_liveness_mismatch_both_ways(server: Server, key: str, test_key: str) -> None:
    url = "http://127.0.0.1:9/never-fetched.csv"
    with server.client(key) as live, server.client(test_key) as test:
        error = assert_error(live.post(API, json=seed_body(url, test=True)), 403, "LIVENESS_MISSMATCH")
        other = assert_error(test.post(API, json=seed_body(url, test=False)), 403, "LIVENESS_MISSMATCH")
        # the flag as the request's JSON spells it, not as Python does (test=True)
        assert error["message"] == "this key belongs to a live account; the batch says test=true"
        assert other["message"] == "this key belongs to a test account; the batch says test=false"
        assert live.get("/v1/batches").json()["data"] == []


def test_test_may_be_left_out(server: Server, test_key: str, httpserver: HTTPServer) -> None:
    url = serve(httpserver, "/no-test.csv", ASSET_HEADER + f"n1,{BARCODE}\n")
    body = seed_body(url)
    del body["test"]
    with server.client(test_key) as client:
        assert create(client, body)["test"] is True


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"type": "farmlands-internal-asset"}, "UNKNOWN_TYPE"),
        ({"type": "assets.external_asset"}, "UNKNOWN_TYPE"),  # loadbay's own name is not Centrapay's
        ({"url": None}, "INVALID_REQUEST"),
        ({"url": ""}, "INVALID_REQUEST"),
        ({"url": "ftp://127.0.0.1/file.csv"}, "INVALID_SOURCE_URL"),
        ({"url": "not a url"}, "INVALID_SOURCE_URL"),
        ({"accountId": None}, "INVALID_REQUEST"),
        ({"accountId": "a\x00b"}, "INVALID_REQUEST"),
        ({"test": "maybe"}, "INVALID_REQUEST"),
    ],
)
def test_a_bad_body_is_400(server: Server, key: str, change: dict[str, Any], code: str) -> None:
    body = {
        k: v for k, v in (seed_body("http://127.0.0.1:9/f.csv", test=False) | change).items() if v is not None
    }
    with server.client(key) as client:
        error = assert_error(client.post(API, json=body), 400, code)
        if code == "UNKNOWN_TYPE":
            assert ASSET in error["message"] and TERMINAL in error["message"]


def test_a_body_that_is_not_json_is_400(server: Server, key: str) -> None:
    with server.client(key) as client:
        response = client.post(API, content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "INVALID_REQUEST")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_or_infinity_in_a_body_is_refused(server: Server, key: str, constant: str) -> None:
    """No JSON number, even in a property the profile does not read: the body is refused as
    the native API refuses it (json.loads took it as a float and the batch was made), saying
    what and where, and no batch is made."""
    text = json.dumps(seed_body("http://127.0.0.1:9/f.csv", test=False) | {"note": "@"})
    body = text.replace('"@"', constant)
    with server.client(key) as client:
        newest = client.get("/v1/batches", params={"limit": 1}).json()["data"]
        headers = {"Content-Type": "application/json"}
        error = assert_error(client.post(API, content=body.encode(), headers=headers), 400, "INVALID_REQUEST")
        assert client.get("/v1/batches", params={"limit": 1}).json()["data"] == newest
    column = body.index(constant) + 1
    assert error["message"] == (
        f"the body is not valid JSON at line 1, column {column}: {constant} is not a JSON number"
    )


def test_unknown_and_other_accounts_ids_are_404(
    server: Server, key: str, other_key: str, httpserver: HTTPServer
) -> None:
    url = serve(httpserver, "/mine.csv", ASSET_HEADER + f"m1,{BARCODE}\n")
    with server.client(key) as mine, server.client(other_key) as theirs:
        batch = create(mine, seed_body(url, test=False))
        assert_error(theirs.get(f"{API}/{batch['id']}"), 404, "NOT_FOUND")
        assert_error(mine.get(f"{API}/AVH5uG4gRLYK6YR8JyrViN"), 404, "NOT_FOUND")
        assert get(mine, batch["id"])["id"] == batch["id"]


def test_a_batch_of_another_type_is_not_a_centrapay_batch(server: Server, key: str) -> None:
    with server.client(key) as client:
        native = client.post("/v1/batches", json={"type": "billing.customer"})
        assert native.status_code == 201, native.text
        assert_error(client.get(f"{API}/{native.json()['id']}"), 404, "NOT_FOUND")


def test_missing_or_unknown_key(server: Server) -> None:
    body = seed_body("http://127.0.0.1:9/f.csv")
    with server.client() as anonymous, server.client("lb_live_nobody") as stranger:
        assert_error(anonymous.post(API, json=body), 401, "UNAUTHORIZED")
        assert_error(anonymous.get(f"{API}/AVH5uG4gRLYK6YR8JyrViN"), 401, "UNAUTHORIZED")
        assert_error(stranger.get(f"{API}/AVH5uG4gRLYK6YR8JyrViN"), 403, "FORBIDDEN")


def test_unknown_paths_answer_in_the_profiles_error_shape(server: Server, key: str) -> None:
    with server.client(key) as client:
        assert_error(client.get("/compat/centrapay/api/nothing"), 404, "NOT_FOUND")
        assert_error(client.delete(f"{API}/AVH5uG4gRLYK6YR8JyrViN"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("DELETE", f"{API}/AVH5uG4gRLYK6YR8JyrViN", "GET"), ("GET", API, "POST"), ("PUT", API, "POST")],
)
def test_a_method_the_path_does_not_take_is_405_with_allow(
    server: Server, key: str, method: str, path: str, allow: str
) -> None:
    """A 405 names the methods the path takes in `Allow`, as HTTP requires (it had none)."""
    with server.client(key) as client:
        response = client.request(method, path)
    error = assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers.get("allow") == allow, error


def test_a_trailing_slash_is_the_same_call(server: Server, key: str, httpserver: HTTPServer) -> None:
    """`POST …/batches/` and `GET …/batches/{id}/` are the calls without the slash, as on the
    other profiles (they answered a 307 redirect with an empty body)."""
    url = serve(httpserver, "/slash.csv", ASSET_HEADER + f"s1,{BARCODE}\n")
    with server.client(key) as client:
        response = client.post(f"{API}/", json=seed_body(url, test=False))
        assert response.status_code == 200, response.text
        batch = response.json()
        assert batch["url"] == url and batch["status"] == "created"
        got = client.get(f"{API}/{batch['id']}/")
        assert got.status_code == 200, got.text
        assert got.json()["id"] == batch["id"]
        wrong = client.delete(f"{API}/{batch['id']}/")
        assert_error(wrong, 405, "METHOD_NOT_ALLOWED")
        assert wrong.headers["allow"] == "GET"


@pytest.mark.parametrize("flag", ["yes", "true", "false", 0, 1, []])
def test_test_must_be_a_json_boolean(server: Server, key: str, flag: Any) -> None:
    """`test` is true or false: "yes" was read as true, 0 as false (a live batch was made)."""
    with server.client(key) as client:
        newest = client.get("/v1/batches", params={"limit": 1}).json()["data"]
        response = client.post(API, json=seed_body("http://127.0.0.1:9/f.csv", test=flag))
        error = assert_error(response, 400, "INVALID_REQUEST")
        assert error["message"].startswith("test: ") and "boolean" in error["message"], error
        assert client.get("/v1/batches", params={"limit": 1}).json()["data"] == newest


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_a_body_sent_as_another_media_type_is_415(server: Server, key: str, content_type: str) -> None:
    """JSON sent as text/plain (or form-encoded, or in another charset) is refused saying what
    to send, as the native API and the Alliant profile refuse it; it was a 400 "body: Input
    should be a valid dictionary". A body with no Content-Type is read as JSON, as there."""
    body = json.dumps(seed_body("http://127.0.0.1:9/f.csv", test=False)).encode()
    with server.client(key) as client:
        newest = client.get("/v1/batches", params={"limit": 1}).json()["data"]
        error = assert_error(
            client.post(API, content=body, headers={"Content-Type": content_type}),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        assert "application/json" in error["message"] or "UTF-8" in error["message"], error
        assert client.get("/v1/batches", params={"limit": 1}).json()["data"] == newest
        untyped = client.post(API, content=body)
    assert untyped.status_code == 200, untyped.text


# files whose type their server does not say ----------------------------------------


def serve_as(httpserver: HTTPServer, path: str, body: bytes, content_type: str | None) -> str:
    """Serve `body` with this Content-Type, or with none at all."""

    def answer(_request: Request) -> Response:
        response = Response(body)
        del response.headers["Content-Type"]
        if content_type is not None:
            response.headers["Content-Type"] = content_type
        return response

    httpserver.expect_request(path).respond_with_handler(answer)
    return f"http://127.0.0.1:{httpserver.port}{path}"


def native_batch(client: httpx.Client, url: str) -> dict[str, Any]:
    """This account's batch that fetched `url`, as the native API shows it."""
    batches: list[dict[str, Any]] = client.get("/v1/batches").json()["data"]
    [batch] = [b for b in batches if b["source_url"] == url]
    return batch


def stored_inputs(server: Server, batch_id: int) -> list[str]:
    """The objects in the server's store under the batch's inputs (files only)."""
    prefix = f"batches/{batch_id}/inputs/"
    if server.s3 is not None:
        return [k for k in server.s3.listed() if k.startswith(prefix)]
    root = Path(server.env["LOADBAY_DATA_DIR"]) / "blobs"
    return [str(p.relative_to(root)) for p in (root / prefix).rglob("*") if p.is_file()]


TERMINAL_LINE = '{"terminal_id": "T9", "status": "online", "reported_at": "2026-03-01T10:00:00Z"}\n'


@pytest.mark.parametrize(
    ("kind", "body", "content_type"),
    [
        (ASSET, (ASSET_HEADER + f"x1,{BARCODE}\n").encode(), "application/octet-stream"),
        (ASSET, (ASSET_HEADER + f"x1,{BARCODE}\n").encode(), "binary/octet-stream"),
        (ASSET, (ASSET_HEADER + f"x1,{BARCODE}\n").encode(), None),
        (TERMINAL, b"\xef\xbb\xbf \n" + TERMINAL_LINE.encode(), "application/octet-stream"),
        (ASSET, f'[\n  {{"external_id": "x1", "barcode": "{BARCODE}"}}\n]'.encode(), "binary/octet-stream"),
    ],
)
def test_a_file_whose_type_says_nothing_is_told_by_its_first_bytes(
    server: Server, key: str, httpserver: HTTPServer, kind: str, body: bytes, content_type: str | None
) -> None:
    """The seed's own URL has no extension (https://azurebuckets.com/1234), and object stores
    serve such files as application/octet-stream: the file's first bytes tell its format (`{`
    JSON Lines, `[` a JSON array, else CSV), and the `copied` event says so. It ended in error,
    "UNSUPPORTED_MEDIA_TYPE: unsupported Content-Type None"."""
    url = serve_as(httpserver, f"/{uuid.uuid4().hex[:8]}/1234", body, content_type)
    with server.client(key) as client:
        done = finish(client, seed_body(url, type=kind, test=False))
        native = native_batch(client, url)
        events = client.get(f"/v1/batches/{native['id']}/events").json()["data"]
        inputs = client.get(f"/v1/batches/{native['id']}/inputs").json()["data"]
    assert (done["status"], done["count"], done["errorCount"]) == ("complete", "1", "0"), done
    [copied] = [e for e in events if e["event"] == "copied"]
    assert "by its first bytes" in copied["detail"], copied
    said = repr(content_type) if content_type else "no Content-Type"
    assert said in copied["detail"], copied
    expected = {"{": "jsonl", "[": "json"}.get(body.lstrip(b"\xef\xbb\xbf \n")[:1].decode(), "csv")
    assert [i["format"] for i in inputs] == [expected]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "application/octet-stream"),  # a workbook
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", None),  # an .xls
        (b"<html><body>Sign in</body></html>", "binary/octet-stream"),
        (ASSET_HEADER.encode(), "text/html"),
    ],
)
def test_a_file_whose_format_cannot_be_told_is_an_error_that_leaves_nothing(
    server: Server, key: str, httpserver: HTTPServer, body: bytes, content_type: str | None
) -> None:
    """Neither its Content-Type, nor its URL's name, nor its first bytes say CSV or JSON: the
    batch ends in error naming the Content-Type received (it said `None` whatever was sent),
    and keeps no input and no stored copy (the copy stayed in the store, with no input row)."""
    url = serve_as(httpserver, f"/{uuid.uuid4().hex[:8]}/5678", body, content_type)
    with server.client(key) as client:
        done = finish(client, seed_body(url, test=False))
        native = native_batch(client, url)
        inputs = client.get(f"/v1/batches/{native['id']}/inputs").json()["data"]
    assert (done["status"], done["errorCount"]) == ("error", "1"), done
    [error] = done["errors"]
    assert error["message"].startswith("UNSUPPORTED_MEDIA_TYPE: "), error
    said = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
    assert said in error["message"], error
    assert inputs == []
    assert stored_inputs(server, native["id"]) == []


def test_a_charset_other_than_utf8_is_refused_whatever_the_name_says(
    server: Server, key: str, httpserver: HTTPServer
) -> None:
    """`text/csv; charset=latin-1` is refused, as an upload's is (docs/native-api.md); the
    fetched file fell back to its URL's extension and was read as UTF-8."""
    url = serve_as(
        httpserver, "/latin.csv", (ASSET_HEADER + f"l1,{BARCODE}\n").encode(), "text/csv; charset=latin-1"
    )
    with server.client(key) as client:
        done = finish(client, seed_body(url, test=False))
    assert done["status"] == "error", done
    message = done["errors"][0]["message"]
    assert message.startswith("UNSUPPORTED_MEDIA_TYPE: ") and "'latin-1'" in message, message
