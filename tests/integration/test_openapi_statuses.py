"""Every status /openapi.json lists for an operation of the native API is one the server
really answers: each (operation, status) pair is provoked here on a real `loadbay serve`
(SQLite, small body limits) and its answer checked: the status, and for an error a
problem+json body with that status and the code the document names.

A pair the document lists and nothing here provokes fails `test_the_document_lists_what_is_provoked`,
and so does a provoked pair it does not list: the document and this list change together.
(schemathesis, in test_openapi_schemathesis, checks the other way: every answer it gets is listed.)

503 BUSY is the one status not provoked here: it needs a database lock held past
LOADBAY_LOCK_TIMEOUT (test_pg_sessions holds one on PostgreSQL); every operation lists it
because each one reads or writes the database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.types import default_registry
from tests.support.accounts import make_keys
from tests.support.servers import Server, start_server, wait_final

LIMIT = 4096  # bytes: LOADBAY_MAX_BODY_BYTES and LOADBAY_MAX_UPLOAD_BYTES of this module's server
TYPE = "billing.customer"
ITEMS = [{"customer_number": "C1", "name": "Ada"}, {"customer_number": "C2", "name": ""}]
CSV = "customer_number,name\nC1,Ada\n"
NOT_PROVOKED = {503}  # see the module's docstring


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data: Path = tmp_path_factory.mktemp("statuses")
    env = {"LOADBAY_MAX_BODY_BYTES": str(LIMIT), "LOADBAY_MAX_UPLOAD_BYTES": str(LIMIT)}
    running = start_server(f"sqlite:///{data / 'loadbay.db'}", data, workers=1, env=env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def key(api_server: Server) -> str:
    """One account for all: no answer here depends on the account's other batches."""
    return make_keys(api_server, f"statuses-{uuid.uuid4().hex[:6]}", 1)[0]


@pytest.fixture(scope="module")
def runtime(api_server: Server) -> Iterator[Runtime]:
    """The server's own runtime (same database and secret): it signs download URLs, which
    the native API hands out only through the eBill profile."""
    env = api_server.env
    settings = Settings(
        database_url=env["LOADBAY_DATABASE_URL"],
        data_dir=Path(env["LOADBAY_DATA_DIR"]),
        secret_key=env["LOADBAY_SECRET_KEY"],
    )
    rt = Runtime.build(settings, default_registry(), base_url=api_server.url)
    yield rt
    rt.close()


@dataclass
class Api:
    """An account on the server, and ways to get its batches into each state."""

    server: Server
    client: httpx.Client
    runtime: Runtime

    def anonymous(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.server.client() as client:
            return client.request(method, path, **kwargs)

    def batch(self, **spec: Any) -> int:
        answer = self.client.post("/v1/batches", json={"type": TYPE} | spec)
        assert answer.status_code == 201, answer.text
        batch_id: int = answer.json()["id"]
        return batch_id

    def submitted(self, **spec: Any) -> int:
        return self.batch(items=ITEMS, submit=True, **spec)

    def final(self, **spec: Any) -> int:
        """A batch at its end (completed; or validated, for a manual one)."""
        batch_id = self.submitted(**spec)
        wait_final(self.client, batch_id)
        return batch_id

    def upload_url(self, batch_id: int) -> str:
        url: str = self.client.post(f"/v1/batches/{batch_id}/upload-url").json()["url"]
        return url

    def signed(self, key: str, method: str = "GET") -> str:
        return self.runtime.blobs.signed_url(key, method, 600)


@pytest.fixture
def api(api_server: Server, key: str, runtime: Runtime) -> Iterator[Api]:
    with api_server.client(key) as client:
        yield Api(api_server, client, runtime)


Provoke = Callable[[Api], httpx.Response]
Pair = tuple[str, str, int]  # (method, path as the document spells it, status)
Case = tuple[Provoke, str | None]  # how to make the server answer it, and the error's code
BATCH = "/v1/batches/{batch_id}"


def _on_batch(method: str, suffix: str, sent: str | None = None, **kwargs: Any) -> dict[Pair, Case]:
    """What every operation on one batch answers: 400 (a batch id that is no number), 401
    (no key) and 404 (no such batch for this key). `sent`: the suffix as sent, when it has
    a parameter of its own."""
    path, real = BATCH + suffix, sent or suffix
    return {
        (method, path, 400): (lambda api: api.client.request(method, f"/v1/batches/x{real}", **kwargs), None),
        (method, path, 401): (
            lambda api: api.anonymous(method, f"/v1/batches/{api.batch()}{real}", **kwargs),
            None,
        ),
        (method, path, 404): (
            lambda api: api.client.request(method, f"/v1/batches/999999{real}", **kwargs),
            None,
        ),
    }


def _read_final(suffix: str) -> dict[Pair, Case]:
    return _on_batch("GET", suffix) | {
        ("GET", BATCH + suffix, 200): (lambda api: api.client.get(f"/v1/batches/{api.final()}{suffix}"), None)
    }


def _big(**fields: Any) -> dict[str, Any]:
    return fields | {"description": "x" * LIMIT}


def _put_file(url: str, body: str = CSV, content_type: str = "text/csv") -> httpx.Response:
    return httpx.put(url, content=body, headers={"Content-Type": content_type}, timeout=30)


def _put_data(api: Api, batch_id: int, body: str = CSV, content_type: str = "text/csv") -> httpx.Response:
    return api.client.put(
        f"/v1/batches/{batch_id}/data", content=body, headers={"Content-Type": content_type}
    )


def _twice(api: Api, path: str) -> httpx.Response:
    api.client.post(path).raise_for_status()
    return api.client.post(path)


def _job_id_again(api: Api, description: str | None) -> httpx.Response:
    job = f"job-{uuid.uuid4().hex[:8]}"
    api.batch(job_id=job)
    return api.client.post("/v1/batches", json={"type": TYPE, "job_id": job, "description": description})


def _uploaded_then_submitted(api: Api) -> str:
    batch_id = api.batch()
    url = api.upload_url(batch_id)
    assert _put_file(url).status_code == 200
    api.client.post(f"/v1/batches/{batch_id}/submit").raise_for_status()
    return url


_BATCHES: dict[Pair, Case] = {
    ("POST", "/v1/batches", 201): (lambda api: api.client.post("/v1/batches", json={"type": TYPE}), None),
    ("POST", "/v1/batches", 200): (lambda api: _job_id_again(api, None), None),
    ("POST", "/v1/batches", 400): (
        lambda api: api.client.post("/v1/batches", json={"type": "no.such"}),
        "UNKNOWN_TYPE",
    ),
    ("POST", "/v1/batches", 401): (
        lambda api: api.anonymous("POST", "/v1/batches", json={"type": TYPE}),
        None,
    ),
    ("POST", "/v1/batches", 403): (
        lambda api: api.client.post("/v1/batches", json={"type": TYPE, "test": True}),
        "TEST_MODE_MISMATCH",
    ),
    ("POST", "/v1/batches", 404): (
        lambda api: api.client.post("/v1/batches", json={"type": TYPE, "parent_id": 999999}),
        None,
    ),
    ("POST", "/v1/batches", 409): (lambda api: _job_id_again(api, "another body"), "JOB_ID_CONFLICT"),
    ("POST", "/v1/batches", 413): (
        lambda api: api.client.post("/v1/batches", json=_big(type=TYPE)),
        "PAYLOAD_TOO_LARGE",
    ),
    ("GET", "/v1/batches", 200): (lambda api: api.client.get("/v1/batches"), None),
    ("GET", "/v1/batches", 400): (
        lambda api: api.client.get("/v1/batches", params={"status": "nope"}),
        "INVALID_STATUS",
    ),
    ("GET", "/v1/batches", 401): (lambda api: api.anonymous("GET", "/v1/batches"), None),
}

_DATA: dict[Pair, Case] = _on_batch("PUT", "/data", content=CSV, headers={"Content-Type": "text/csv"}) | {
    ("PUT", BATCH + "/data", 200): (lambda api: _put_data(api, api.batch()), None),
    ("PUT", BATCH + "/data", 409): (lambda api: _put_data(api, api.submitted()), "BATCH_NOT_OPEN"),
    ("PUT", BATCH + "/data", 413): (
        lambda api: _put_data(api, api.batch(), CSV + "C2,x\n" * LIMIT),
        "PAYLOAD_TOO_LARGE",
    ),
    ("PUT", BATCH + "/data", 415): (
        lambda api: _put_data(api, api.batch(), content_type="image/png"),
        "UNSUPPORTED_MEDIA_TYPE",
    ),
}

_PAGES: dict[Pair, Case] = _on_batch("PUT", "/pages/{number}", "/pages/0", json=ITEMS) | {
    ("PUT", BATCH + "/pages/{number}", 200): (
        lambda api: api.client.put(f"/v1/batches/{api.batch()}/pages/0", json=ITEMS),
        None,
    ),
    ("PUT", BATCH + "/pages/{number}", 409): (
        lambda api: api.client.put(f"/v1/batches/{api.submitted()}/pages/1", json=ITEMS),
        "BATCH_NOT_OPEN",
    ),
    ("PUT", BATCH + "/pages/{number}", 413): (
        lambda api: api.client.put(f"/v1/batches/{api.batch()}/pages/0", json=[_big()]),
        "PAYLOAD_TOO_LARGE",
    ),
}

_UPLOAD_URL: dict[Pair, Case] = _on_batch("POST", "/upload-url", json={"name": "customers.csv"}) | {
    ("POST", BATCH + "/upload-url", 200): (
        lambda api: api.client.post(f"/v1/batches/{api.batch()}/upload-url", json={"name": "a.csv"}),
        None,
    ),
    ("POST", BATCH + "/upload-url", 409): (
        lambda api: api.client.post(f"/v1/batches/{api.submitted()}/upload-url"),
        "BATCH_NOT_OPEN",
    ),
    ("POST", BATCH + "/upload-url", 413): (
        lambda api: api.client.post(f"/v1/batches/{api.batch()}/upload-url", json=_big()),
        "PAYLOAD_TOO_LARGE",
    ),
}

_LIFECYCLE: dict[Pair, Case] = {
    **_on_batch("POST", "/submit"),
    ("POST", BATCH + "/submit", 200): (
        lambda api: api.client.post(f"/v1/batches/{api.batch(items=ITEMS)}/submit"),
        None,
    ),
    ("POST", BATCH + "/submit", 409): (
        lambda api: api.client.post(f"/v1/batches/{api.batch()}/submit"),
        "NO_DATA",
    ),
    **_on_batch("POST", "/process"),
    ("POST", BATCH + "/process", 200): (
        lambda api: api.client.post(f"/v1/batches/{api.final(process='manual')}/process"),
        None,
    ),
    ("POST", BATCH + "/process", 409): (
        lambda api: api.client.post(f"/v1/batches/{api.batch()}/process"),
        "INVALID_STATE",
    ),
    **_on_batch("POST", "/cancel"),
    ("POST", BATCH + "/cancel", 200): (
        lambda api: api.client.post(f"/v1/batches/{api.batch()}/cancel"),
        None,
    ),
    ("POST", BATCH + "/cancel", 409): (
        lambda api: _twice(api, f"/v1/batches/{api.batch()}/cancel"),
        "INVALID_STATE",
    ),
    **_on_batch("POST", "/clear"),
    ("POST", BATCH + "/clear", 200): (lambda api: api.client.post(f"/v1/batches/{api.batch()}/clear"), None),
    ("POST", BATCH + "/clear", 409): (
        lambda api: _twice(api, f"/v1/batches/{api.batch()}/clear"),
        "INVALID_STATE",
    ),
}

_READS: dict[Pair, Case] = {
    **_on_batch("GET", ""),
    ("GET", BATCH, 200): (lambda api: api.client.get(f"/v1/batches/{api.batch()}"), None),
    **_read_final("/errors"),
    **_read_final("/errors/summary"),
    **_read_final("/children"),
    **_read_final("/events"),
    **_read_final("/inputs"),
    **_read_final("/results"),
    ("GET", BATCH + "/results", 400): (
        lambda api: api.client.get(f"/v1/batches/{api.final()}/results", params={"outcome": "won"}),
        "INVALID_OUTCOME",
    ),
    ("GET", BATCH + "/results", 409): (
        lambda api: api.client.get(f"/v1/batches/{api.batch()}/results"),
        "RESULTS_NOT_READY",
    ),
    ("GET", "/v1/account", 200): (lambda api: api.client.get("/v1/account"), None),
    ("GET", "/v1/account", 401): (lambda api: api.anonymous("GET", "/v1/account"), None),
    ("GET", "/v1/types", 200): (lambda api: api.client.get("/v1/types"), None),
    ("GET", "/v1/types", 401): (
        lambda api: api.anonymous("GET", "/v1/types", headers={"X-Api-Key": "lb_live_unknown"}),
        None,
    ),
}

# Signed URLs: the signature is the credential, so no 401.
_SIGNED: dict[Pair, Case] = {
    ("PUT", "/v1/blobs/{key}", 200): (lambda api: _put_file(api.upload_url(api.batch())), None),
    ("PUT", "/v1/blobs/{key}", 403): (
        lambda api: _put_file(api.upload_url(api.batch()).replace("signature=", "signature=0")),
        "BAD_SIGNATURE",
    ),
    ("PUT", "/v1/blobs/{key}", 404): (lambda api: _put_file(api.signed("batches/1/elsewhere", "PUT")), None),
    ("PUT", "/v1/blobs/{key}", 409): (lambda api: _put_file(_uploaded_then_submitted(api)), "BATCH_NOT_OPEN"),
    ("PUT", "/v1/blobs/{key}", 413): (
        lambda api: _put_file(api.upload_url(api.batch()), CSV * LIMIT),
        "PAYLOAD_TOO_LARGE",
    ),
    ("PUT", "/v1/blobs/{key}", 415): (
        lambda api: _put_file(api.upload_url(api.batch()), content_type="image/png"),
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    ("GET", "/v1/blobs/{key}", 200): (
        lambda api: httpx.get(api.signed(f"batches/{api.final()}/results.csv")),
        None,
    ),
    ("GET", "/v1/blobs/{key}", 403): (
        lambda api: httpx.get(api.signed(f"batches/{api.final()}/results.csv") + "0"),
        "BAD_SIGNATURE",
    ),
    ("GET", "/v1/blobs/{key}", 404): (lambda api: httpx.get(api.signed("batches/999999/results.csv")), None),
    ("GET", "/v1/blobs/{key}", 409): (
        lambda api: httpx.get(api.signed(f"batches/{api.batch()}/results.csv")),
        "RESULTS_NOT_READY",
    ),
}


def _retried_twice(api: Api) -> httpx.Response:
    batch_id = api.final()
    api.client.post(f"/v1/batches/{batch_id}/retry", json={"outcomes": ["invalid"]})
    return api.client.post(f"/v1/batches/{batch_id}/retry", json={"outcomes": ["invalid"]})


_RETRY: dict[Pair, Case] = _on_batch("POST", "/retry") | {
    ("POST", BATCH + "/retry", 200): (_retried_twice, None),
    ("POST", BATCH + "/retry", 201): (
        lambda api: api.client.post(f"/v1/batches/{api.final()}/retry", json={"outcomes": ["invalid"]}),
        None,
    ),
    ("POST", BATCH + "/retry", 409): (
        lambda api: api.client.post(f"/v1/batches/{api.batch()}/retry"),
        "RESULTS_NOT_READY",
    ),
    ("POST", BATCH + "/retry", 413): (
        lambda api: api.client.post(f"/v1/batches/{api.final()}/retry", json=_big()),
        "PAYLOAD_TOO_LARGE",
    ),
}

# Webhook endpoints: at an address never sent to (disabled, or deleted once used).
HOOK = "/v1/webhooks/{webhook_id}"
HOOK_URL = "https://hooks.example.com/loadbay"


def _hook(api: Api, **fields: Any) -> int:
    answer = api.client.post("/v1/webhooks", json={"url": HOOK_URL, "enabled": False} | fields)
    assert answer.status_code == 201, answer.text
    hook_id: int = answer.json()["id"]
    return hook_id


def _on_hook(method: str, suffix: str, sent: str | None = None, **kwargs: Any) -> dict[Pair, Case]:
    """What every operation on one endpoint answers: 400 (an id that is no number), 401 (no
    key) and 404 (no such endpoint for this key)."""
    path, real = HOOK + suffix, sent or suffix
    return {
        (method, path, 400): (
            lambda api: api.client.request(method, f"/v1/webhooks/x{real}", **kwargs),
            None,
        ),
        (method, path, 401): (
            lambda api: api.anonymous(method, f"/v1/webhooks/{_hook(api)}{real}", **kwargs),
            None,
        ),
        (method, path, 404): (
            lambda api: api.client.request(method, f"/v1/webhooks/999999{real}", **kwargs),
            None,
        ),
    }


def _too_many(api: Api) -> httpx.Response:
    """Endpoints made until one is refused; then they are deleted (later cases make more)."""
    made = [_hook(api) for _ in range(len(api.client.get("/v1/webhooks").json()["data"]), 20)]
    answer = api.client.post("/v1/webhooks", json={"url": HOOK_URL})
    for hook_id in made:
        api.client.delete(f"/v1/webhooks/{hook_id}").raise_for_status()
    return answer


def _redelivered(api: Api) -> httpx.Response:
    """An endpoint's delivery sent again; the endpoint is deleted then."""
    hook_id = _hook(api, enabled=True, events=["batch.cancelled"])
    api.client.post(f"/v1/batches/{api.batch()}/cancel").raise_for_status()
    delivery = api.client.get(f"/v1/webhooks/{hook_id}/deliveries").json()["data"][0]["id"]
    answer = api.client.post(f"/v1/webhooks/{hook_id}/deliveries/{delivery}/redeliver")
    api.client.delete(f"/v1/webhooks/{hook_id}").raise_for_status()
    return answer


_WEBHOOKS: dict[Pair, Case] = {
    ("POST", "/v1/webhooks", 201): (
        lambda api: api.client.post("/v1/webhooks", json={"url": HOOK_URL}),
        None,
    ),
    ("POST", "/v1/webhooks", 400): (
        lambda api: api.client.post("/v1/webhooks", json={"url": "ftp://hooks.example.com/x"}),
        "INVALID_WEBHOOK_URL",
    ),
    ("POST", "/v1/webhooks", 401): (
        lambda api: api.anonymous("POST", "/v1/webhooks", json={"url": HOOK_URL}),
        None,
    ),
    ("POST", "/v1/webhooks", 409): (_too_many, "TOO_MANY_WEBHOOKS"),
    ("POST", "/v1/webhooks", 413): (
        lambda api: api.client.post("/v1/webhooks", json=_big(url=HOOK_URL)),
        "PAYLOAD_TOO_LARGE",
    ),
    ("GET", "/v1/webhooks", 200): (lambda api: api.client.get("/v1/webhooks"), None),
    ("GET", "/v1/webhooks", 401): (lambda api: api.anonymous("GET", "/v1/webhooks"), None),
    **_on_hook("GET", ""),
    ("GET", HOOK, 200): (lambda api: api.client.get(f"/v1/webhooks/{_hook(api)}"), None),
    **_on_hook("PATCH", "", json={"description": "d"}),
    ("PATCH", HOOK, 200): (lambda api: api.client.patch(f"/v1/webhooks/{_hook(api)}", json={}), None),
    ("PATCH", HOOK, 413): (
        lambda api: api.client.patch(f"/v1/webhooks/{_hook(api)}", json=_big()),
        "PAYLOAD_TOO_LARGE",
    ),
    **_on_hook("DELETE", ""),
    ("DELETE", HOOK, 204): (lambda api: api.client.delete(f"/v1/webhooks/{_hook(api)}"), None),
    **_on_hook("POST", "/rotate"),
    ("POST", HOOK + "/rotate", 200): (lambda api: api.client.post(f"/v1/webhooks/{_hook(api)}/rotate"), None),
    **_on_hook("GET", "/deliveries"),
    ("GET", HOOK + "/deliveries", 200): (
        lambda api: api.client.get(f"/v1/webhooks/{_hook(api)}/deliveries"),
        None,
    ),
    **_on_hook("POST", "/deliveries/{delivery_id}/redeliver", "/deliveries/1/redeliver"),
    ("POST", HOOK + "/deliveries/{delivery_id}/redeliver", 200): (_redelivered, None),
}


def _as_text(api: Api, method: str, path: str, body: Any) -> httpx.Response:
    """A JSON body sent as text/plain: every operation that takes a JSON body answers 415."""
    headers = {"Content-Type": "text/plain"}
    return api.client.request(method, path, content=json.dumps(body).encode(), headers=headers)


_NOT_JSON = "UNSUPPORTED_MEDIA_TYPE"
_JSON_BODIES: dict[Pair, Case] = {
    ("POST", "/v1/batches", 415): (
        lambda api: _as_text(api, "POST", "/v1/batches", {"type": TYPE}),
        _NOT_JSON,
    ),
    ("PUT", BATCH + "/pages/{number}", 415): (
        lambda api: _as_text(api, "PUT", f"/v1/batches/{api.batch()}/pages/0", ITEMS),
        _NOT_JSON,
    ),
    ("POST", BATCH + "/upload-url", 415): (
        lambda api: _as_text(api, "POST", f"/v1/batches/{api.batch()}/upload-url", {"name": "a.csv"}),
        _NOT_JSON,
    ),
    ("POST", BATCH + "/retry", 415): (
        lambda api: _as_text(api, "POST", f"/v1/batches/{api.final()}/retry", {"outcomes": ["invalid"]}),
        _NOT_JSON,
    ),
    ("POST", "/v1/webhooks", 415): (
        lambda api: _as_text(api, "POST", "/v1/webhooks", {"url": HOOK_URL, "enabled": False}),
        _NOT_JSON,
    ),
    ("PATCH", HOOK, 415): (
        lambda api: _as_text(api, "PATCH", f"/v1/webhooks/{_hook(api)}", {"description": "d"}),
        _NOT_JSON,
    ),
}

PROVOKED: dict[Pair, Case] = (
    _BATCHES
    | _DATA
    | _PAGES
    | _UPLOAD_URL
    | _LIFECYCLE
    | _READS
    | _SIGNED
    | _RETRY
    | _WEBHOOKS
    | _JSON_BODIES
)


def _documented(document: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {
        (method.upper(), path, int(status))
        for path, operations in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
        for status in operation["responses"]
    }


def test_the_document_lists_what_is_provoked(api_server: Server) -> None:
    documented = _documented(httpx.get(api_server.url + "/openapi.json").json())
    assert {pair for pair in documented if pair[2] not in NOT_PROVOKED} == set(PROVOKED)


@pytest.mark.parametrize("pair", sorted(PROVOKED), ids=lambda pair: "{} {} {}".format(*pair))
def test_the_server_answers_each_documented_status(pair: tuple[str, str, int], api: Api) -> None:
    provoke, code = PROVOKED[pair]
    answer = provoke(api)
    status = pair[2]
    assert answer.status_code == status, answer.text
    if status < 400:
        return
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.headers
    body = answer.json()
    assert body["status"] == status
    assert body["code"] == (code or _default_code(status)), body


def _default_code(status: int) -> str:
    return {400: "INVALID_INPUT", 401: "UNAUTHORIZED", 404: "NOT_FOUND"}[status]
