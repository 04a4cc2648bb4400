"""Webhooks against a real receiver on loopback (allowed by LOADBAY_FETCH_ALLOW), on each
backend: signed as the Standard Webhooks specification says (checked here with the
specification's algorithm, written again), retried with backoff, timed out, redirects not
followed, endpoints disabled after failing, accounts kept apart, and an event still
delivered after the worker that was sending it is SIGKILLed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.accounts import make_keys
from tests.support.dripping import dripping
from tests.support.receiver import Answer, Receiver, receiving
from tests.support.servers import Server, start_server, start_worker, wait_final

# Short times, so that the retries, the timeout and the disabling happen within seconds.
ENV = {
    "LOADBAY_FETCH_ALLOW": "127.0.0.1",
    "LOADBAY_WEBHOOK_TIMEOUT": "1",
    "LOADBAY_WEBHOOK_BACKOFF": "0.2",
    "LOADBAY_WEBHOOK_RETRY_FOR": "4",
    "LOADBAY_WEBHOOK_DISABLE_AFTER": "1.5",
}
ITEMS = [{"customer_number": "C1", "name": "Ada"}, {"customer_number": "C2", "name": ""}]


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), env=ENV)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def keys(server: Server) -> Iterator[str]:
    return iter(make_keys(server, f"hooks-{uuid.uuid4().hex[:6]}", 24))


@pytest.fixture
def client(server: Server, keys: Iterator[str]) -> Iterator[httpx.Client]:
    """A fresh account's client: each test sees only its own endpoints."""
    with server.client(next(keys)) as made:
        yield made


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


def path() -> str:
    return f"/hook-{uuid.uuid4().hex[:8]}"


def endpoint(client: httpx.Client, url: str, **fields: Any) -> dict[str, Any]:
    made = client.post("/v1/webhooks", json={"url": url} | fields)
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def deliveries(client: httpx.Client, endpoint_id: int) -> list[dict[str, Any]]:
    answer = client.get(f"/v1/webhooks/{endpoint_id}/deliveries")
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["data"]
    return found


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """What `check` answers once it answers something true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError(f"not so after {timeout} s")


def finished(client: httpx.Client, endpoint_id: int, count: int = 1) -> list[dict[str, Any]]:
    """The endpoint's deliveries once `count` of them are delivered or failed."""

    def done() -> list[dict[str, Any]] | None:
        found = deliveries(client, endpoint_id)
        return found if sum(d["status"] != "pending" for d in found) >= count else None

    result: list[dict[str, Any]] = eventually(done)
    return result


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> None:
    """The Standard Webhooks verification, as its specification describes it: the signature
    is base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")) where key is the base64 after
    `whsec_`, and the header holds space-separated `v1,<signature>` entries."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) < tolerance, "a timestamp too far from now is refused"
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [entry.split(",", 1) for entry in headers["webhook-signature"].split(" ")]
    assert any(version == "v1" and hmac.compare_digest(sig, expected) for version, sig in given)


def two_phase(client: httpx.Client) -> dict[str, Any]:
    made = client.post(
        "/v1/batches", json={"type": "billing.customer", "process": "manual", "items": ITEMS, "submit": True}
    )
    assert made.status_code == 201, made.text
    return wait_final(client, made.json()["id"])


# ---------------------------------------------------------------------------------------------


def test_events_are_signed_and_show_the_batch_as_it_was(client: httpx.Client, receiver: Receiver) -> None:
    where = path()
    hook = endpoint(client, receiver.plan(where, Answer(200, body=b"ok")), description="crm")
    assert hook["secret"].startswith("whsec_") and hook["events"] == [
        "batch.validated",
        "batch.completed",
        "batch.failed",
        "batch.cancelled",
    ]
    assert "secret" not in client.get(f"/v1/webhooks/{hook['id']}").json()  # shown once

    batch = two_phase(client)
    validated = receiver.wait_for(where, 1)[0]
    client.post(f"/v1/batches/{batch['id']}/process")
    completed = receiver.wait_for(where, 2)[1]
    for got in (validated, completed):
        verify(hook["secret"], got.headers, got.body)
        assert got.headers["content-type"] == "application/json"

    first, second = json.loads(validated.body), json.loads(completed.body)
    assert (first["type"], second["type"]) == ("batch.validated", "batch.completed")
    assert first["data"]["status"] == "validated" and first["data"]["counts"]["succeeded"] == 0
    now = client.get(f"/v1/batches/{batch['id']}").json()
    ignore = {"updated_at"}  # (a worker may touch the batch after it completed)
    assert {k: v for k, v in second["data"].items() if k not in ignore} == {
        k: v for k, v in now.items() if k not in ignore
    }

    log = finished(client, hook["id"], 2)
    assert [d["event"] for d in log] == ["batch.completed", "batch.validated"]  # newest first
    assert log[0]["event_id"] == completed.headers["webhook-id"] and log[0]["batch_id"] == batch["id"]
    assert [(a["attempt"], a["result"], a["status_code"], a["response"]) for a in log[0]["attempts"]] == [
        (1, "delivered", 200, "ok")
    ]


def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt(
    client: httpx.Client, receiver: Receiver
) -> None:
    where = path()
    url = receiver.plan(where, Answer(500, body=b"down"), Answer(503), Answer(200))
    hook = endpoint(client, url, events=["batch.cancelled"])
    batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    client.post(f"/v1/batches/{batch['id']}/cancel")

    tries = receiver.wait_for(where, 3)
    assert len({t.headers["webhook-id"] for t in tries}) == 1  # one event, three attempts
    assert len({t.body for t in tries}) == 1
    gaps = [later.at - earlier.at for earlier, later in zip(tries, tries[1:], strict=False)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.18, gaps  # 0.2 s, then 0.4 s, each cut by up to half

    [delivery] = finished(client, hook["id"])
    assert delivery["status"] == "delivered"
    log = [(a["attempt"], a["result"], a["status_code"]) for a in delivery["attempts"]]
    assert log == [(1, "failed", 500), (2, "failed", 503), (3, "delivered", 200)]
    assert delivery["attempts"][0]["response"] == "down"
    assert delivery["attempts"][0]["error"] == "HTTP 500: not a 2xx answer"
    assert client.get(f"/v1/webhooks/{hook['id']}").json()["failing_since"] is None  # it recovered


def test_an_answer_with_a_nul_byte_is_recorded_once(client: httpx.Client, receiver: Receiver) -> None:
    """PostgreSQL refuses U+0000 in text: the answer's excerpt keeps U+FFFD in its place, so the
    attempt is recorded (it was rolled back, and the event sent again every 2x timeout)."""
    where = path()
    hook = endpoint(
        client, receiver.plan(where, Answer(200, body=b"\x1f\x8b\x08\x00ok")), events=["batch.cancelled"]
    )
    batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    client.post(f"/v1/batches/{batch['id']}/cancel")

    [delivery] = finished(client, hook["id"])
    assert delivery["status"] == "delivered"
    assert [(a["attempt"], a["result"], a["status_code"], a["response"]) for a in delivery["attempts"]] == [
        (1, "delivered", 200, "\x1f\ufffd\x08\ufffdok")
    ]
    time.sleep(2.5)  # over twice LOADBAY_WEBHOOK_TIMEOUT: not sent again
    assert len(receiver.requests(where)) == 1


def test_a_receiver_that_never_answers_times_out(client: httpx.Client, receiver: Receiver) -> None:
    where = path()
    hook = endpoint(client, receiver.plan(where, Answer(200, delay=3)), events=["batch.cancelled"])
    batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    client.post(f"/v1/batches/{batch['id']}/cancel")

    def first_attempt_over() -> dict[str, Any] | None:
        found = deliveries(client, hook["id"])
        attempts = found[0]["attempts"] if found else []
        return attempts[0] if attempts and attempts[0]["result"] != "sending" else None

    attempt = eventually(first_attempt_over)
    assert attempt["result"] == "failed" and attempt["status_code"] is None
    assert "timed out" in attempt["error"]
    assert 900 <= attempt["latency_ms"] < 2900, attempt  # LOADBAY_WEBHOOK_TIMEOUT=1, not the 3 s answer


ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_a_receiver_that_drips_its_answer_gets_an_event_once_at_a_time(client: httpx.Client) -> None:
    """Each byte of the answer within LOADBAY_WEBHOOK_TIMEOUT, the whole of it not: the attempt
    ends at the timeout (it went on for ~8 s, and once it outlived its hold, 2 s, another
    worker sent the same event at the same time)."""
    with dripping() as receiver:
        spans = receiver.spans
        hook = endpoint(client, receiver.answer(b"", ANSWER), events=["batch.cancelled"])
        batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
        client.post(f"/v1/batches/{batch['id']}/cancel")
        eventually(lambda: len(spans) >= 2, timeout=12)
    ordered = sorted(spans)
    for (_, ended), (came, _) in zip(ordered, ordered[1:], strict=False):
        assert came > ended - 0.25, ordered  # never two at once (0.25: a hang-up is seen within 0.2 s)
    attempts = eventually(
        lambda: [a for a in deliveries(client, hook["id"])[0]["attempts"] if a["result"] != "sending"][:2]
    )
    for attempt in attempts:
        assert attempt["result"] == "failed" and "timed out" in attempt["error"], attempt
        assert 900 <= attempt["latency_ms"] < 1900, attempt


def test_a_redirect_is_not_followed(client: httpx.Client, receiver: Receiver) -> None:
    where, elsewhere = path(), path()
    hook = endpoint(client, receiver.plan(where, Answer(302, location=elsewhere)), events=["batch.cancelled"])
    batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    client.post(f"/v1/batches/{batch['id']}/cancel")

    receiver.wait_for(where, 2)  # retried: the redirect was a failed attempt
    first = eventually(
        lambda: [a for d in deliveries(client, hook["id"]) for a in d["attempts"] if a["error"]]
    )[0]
    assert first["status_code"] == 302 and elsewhere in first["error"] and "not followed" in first["error"]
    assert receiver.requests(elsewhere) == []


def test_an_endpoint_that_keeps_failing_is_disabled_and_says_why(
    client: httpx.Client, receiver: Receiver
) -> None:
    where = path()
    hook = endpoint(client, receiver.plan(where, Answer(503)), events=["batch.cancelled"])
    batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    client.post(f"/v1/batches/{batch['id']}/cancel")

    disabled = eventually(
        lambda: (e := client.get(f"/v1/webhooks/{hook['id']}").json())["enabled"] is False and e
    )
    assert "every attempt since" in disabled["disabled_reason"] and "HTTP 503" in disabled["disabled_reason"]
    assert disabled["failing_since"] is not None
    tried = len(receiver.requests(where))
    assert tried >= 3
    other = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    client.post(f"/v1/batches/{other['id']}/cancel")  # a disabled endpoint gets no new event
    time.sleep(0.5)
    assert len(receiver.requests(where)) == tried

    enabled = client.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": True}).json()
    assert (enabled["enabled"], enabled["disabled_reason"], enabled["failing_since"]) == (True, None, None)


def test_a_patch_clears_the_description_refuses_null_and_keeps_the_failures_when_disabling(
    client: httpx.Client, receiver: Receiver
) -> None:
    """`"description": null` clears the description, and `"url": null` or `"events": null` is a
    400 (each answered 200 and changed nothing); `"enabled": false` keeps `failing_since` and
    `disabled_reason` (it cleared them, as only `"enabled": true` does)."""
    where = path()
    hook = endpoint(client, receiver.plan(where, Answer(503)), events=["batch.cancelled"], description="CRM")
    cancelled(client)
    disabled = eventually(
        lambda: (e := client.get(f"/v1/webhooks/{hook['id']}").json())["enabled"] is False and e
    )
    kept = client.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": False})
    assert kept.status_code == 200, kept.text
    assert (kept.json()["disabled_reason"], kept.json()["failing_since"]) == (
        disabled["disabled_reason"],
        disabled["failing_since"],
    )
    assert disabled["disabled_reason"] is not None and disabled["failing_since"] is not None

    cleared = client.patch(f"/v1/webhooks/{hook['id']}", json={"description": None})
    assert cleared.status_code == 200 and cleared.json()["description"] is None, cleared.text
    for field in ("url", "events", "enabled"):
        refused = client.patch(f"/v1/webhooks/{hook['id']}", json={field: None})
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "INVALID_INPUT"
        assert [e["field"] for e in refused.json()["errors"]] == [field], refused.json()
    after = client.get(f"/v1/webhooks/{hook['id']}").json()
    assert (after["url"], after["events"], after["enabled"]) == (hook["url"], ["batch.cancelled"], False)

    enabled = client.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": True}).json()
    assert (enabled["enabled"], enabled["disabled_reason"], enabled["failing_since"]) == (True, None, None)


def test_rotate_and_redeliver(client: httpx.Client, receiver: Receiver) -> None:
    where = path()
    hook = endpoint(client, receiver.plan(where, Answer(200)), events=["batch.cancelled"])
    batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    client.post(f"/v1/batches/{batch['id']}/cancel")
    [delivery] = finished(client, hook["id"])

    rotated = client.post(f"/v1/webhooks/{hook['id']}/rotate").json()
    assert rotated["secret"] != hook["secret"] and rotated["secret"].startswith("whsec_")
    again = client.post(f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 200 and again.json()["status"] == "pending"
    first, second = receiver.wait_for(where, 2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] and first.body == second.body
    verify(rotated["secret"], second.headers, second.body)
    with pytest.raises(AssertionError):
        verify(hook["secret"], second.headers, second.body)
    log = eventually(lambda: (d := deliveries(client, hook["id"])[0])["status"] == "delivered" and d)[
        "attempts"
    ]
    assert [(a["attempt"], a["result"]) for a in log] == [(1, "delivered"), (2, "delivered")]


def test_endpoints_are_checked_and_kept_per_account(
    client: httpx.Client, server: Server, keys: Iterator[str], receiver: Receiver
) -> None:
    hook = endpoint(client, receiver.url(path()))
    refused = {
        "ftp://example.com/x": "INVALID_WEBHOOK_URL",
        "http://user:pw@example.com/x": "INVALID_WEBHOOK_URL",
        "http://10.1.2.3/x": "INVALID_WEBHOOK_URL",  # not public, not in LOADBAY_FETCH_ALLOW
        "http://[::1]:8000/x": "INVALID_WEBHOOK_URL",
        "http://xn--a.com/": "INVALID_WEBHOOK_URL",  # malformed IDNA host names (answered 500)
        "http://xn--/": "INVALID_WEBHOOK_URL",
        "https://xn--zz-zzz.com/hook": "INVALID_WEBHOOK_URL",
    }
    for url, code in refused.items():
        answer = client.post("/v1/webhooks", json={"url": url})
        assert (answer.status_code, answer.json()["code"]) == (400, code), url
    assert (
        client.post("/v1/webhooks", json={"url": hook["url"], "events": []}).json()["code"] == "INVALID_EVENT"
    )
    assert client.post("/v1/webhooks", json={"url": hook["url"], "events": ["batch.x"]}).status_code == 400

    with server.client(next(keys)) as other:
        assert other.get("/v1/webhooks").json()["data"] == []
        base = f"/v1/webhooks/{hook['id']}"
        for method, where in [
            ("GET", base),
            ("PATCH", base),
            ("DELETE", base),
            ("POST", f"{base}/rotate"),
            ("GET", f"{base}/deliveries"),
            ("POST", f"{base}/deliveries/1/redeliver"),
        ]:
            answer = other.request(method, where, json={} if method == "PATCH" else None)
            assert (answer.status_code, answer.json()["code"]) == (404, "NOT_FOUND"), (method, where)
        batch = other.post("/v1/batches", json={"type": "billing.customer"}).json()
        other.post(f"/v1/batches/{batch['id']}/cancel")  # another account's event: not sent here
    time.sleep(0.3)
    assert deliveries(client, hook["id"]) == []

    assert [h["id"] for h in client.get("/v1/webhooks").json()["data"]] == [hook["id"]]
    bad = client.patch(f"/v1/webhooks/{hook['id']}", json={"url": "http://xn--a.com/"})
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_WEBHOOK_URL")
    changed = client.patch(
        f"/v1/webhooks/{hook['id']}", json={"events": ["batch.failed"], "description": "d"}
    )
    assert changed.json()["events"] == ["batch.failed"] and changed.json()["description"] == "d"
    assert client.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    assert client.get(f"/v1/webhooks/{hook['id']}").status_code == 404


# a worker killed while it sends ------------------------------------------------------------


def test_an_event_survives_the_worker_killed_while_sending_it(database_url: str, tmp_path: Path) -> None:
    """The batch completes (its event written with the move), the worker that sends the event
    is SIGKILLed before the receiver answers; the next worker sends it again: the log has the
    interrupted attempt and the delivered one, each once."""
    data = tmp_path / "data"
    api = start_server(database_url, data, workers=0, env=ENV)
    try:
        with receiving() as receiver, api.client(api.account("kill")) as client:
            where = path()
            hook = endpoint(
                client, receiver.plan(where, Answer(200, delay=30), Answer(200)), events=["batch.completed"]
            )
            made = client.post(
                "/v1/batches", json={"type": "billing.customer", "items": ITEMS, "submit": True}
            )
            worker = start_worker(database_url, data, env=ENV)
            try:
                receiver.wait_for(where, 1)  # the event is being sent: the answer takes 30 s
                assert client.get(f"/v1/batches/{made.json()['id']}").json()["status"] == "completed"
            finally:
                worker.kill()
                worker.wait()
            [pending] = deliveries(client, hook["id"])
            assert pending["status"] == "pending" and [a["result"] for a in pending["attempts"]] == [
                "sending"
            ]

            again = start_worker(database_url, data, env=ENV)
            try:
                first, second = receiver.wait_for(where, 2)
                [delivered] = finished(client, hook["id"])
            finally:
                again.terminate()
                again.wait(15)
    finally:
        api.stop()
    assert first.headers["webhook-id"] == second.headers["webhook-id"] and first.body == second.body
    assert delivered["status"] == "delivered"
    log = [(a["attempt"], a["result"]) for a in delivered["attempts"]]
    assert log == [(1, "interrupted"), (2, "delivered")]
    assert "worker stopped" in delivered["attempts"][0]["error"]


def test_the_cli_lists_the_endpoints(server: Server, client: httpx.Client, receiver: Receiver) -> None:
    hook = endpoint(client, receiver.url(path()), events=["batch.completed", "batch.failed"])
    client.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": False})
    key = client.headers["X-Api-Key"]
    run = [sys.executable, "-m", "loadbay", "webhooks", "list", "--url", server.url, "--key", key]
    listed = json.loads(subprocess.run([*run, "--json"], check=True, capture_output=True, text=True).stdout)
    assert [(e["id"], e["url"], e["enabled"]) for e in listed] == [(hook["id"], hook["url"], False)]
    assert all("secret" not in e for e in listed)
    table = subprocess.run(
        run, check=True, capture_output=True, text=True, env=os.environ | {"COLUMNS": "200"}
    )
    assert (
        f"{hook['id']} " in table.stdout
        and "completed, failed" in table.stdout
        and "disabled" in table.stdout
    )


def test_a_batch_that_cannot_be_read_sends_batch_failed(client: httpx.Client, receiver: Receiver) -> None:
    where = path()
    endpoint(client, receiver.plan(where, Answer(200)), events=["batch.failed", "batch.completed"])
    batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    client.put(
        f"/v1/batches/{batch['id']}/data",
        content="nothing,useful\n1,2\n",
        headers={"Content-Type": "text/csv"},
    )
    client.post(f"/v1/batches/{batch['id']}/submit")

    [got] = receiver.wait_for(where, 1)
    event = json.loads(got.body)
    assert (event["type"], event["data"]["id"], event["data"]["status"]) == (
        "batch.failed",
        batch["id"],
        "error",
    )
    assert event["data"]["error"]["code"] == "MISSING_COLUMN"
    time.sleep(0.3)
    assert len(receiver.requests(where)) == 1  # nothing else: it did not complete


def test_a_redeliver_retries_as_a_new_event_even_during_an_attempt(database_url: str, tmp_path: Path) -> None:
    """A redeliver starts the retries again, their backoff too (it went on from the attempts
    before: one more attempt, and the delivery failed); and one clicked while an attempt is
    being sent is not undone when that attempt fails (its failure, recorded after, put the
    delivery back on the old window: failed with no attempt after the redeliver)."""
    window = {"LOADBAY_WEBHOOK_RETRY_FOR": "6", "LOADBAY_WEBHOOK_TIMEOUT": "8"}
    env = ENV | window | {"LOADBAY_WEBHOOK_DISABLE_AFTER": "1000"}
    # One worker thread: it sends the third attempt and records its failure before it can send
    # the attempt the redeliver asked for (another would send that one at once).
    api = start_server(database_url, tmp_path / "data", workers=1, env=env)
    try:
        with receiving() as receiver, api.client(api.account("again")) as client:
            refusing = endpoint(client, receiver.plan(path(), Answer(500)), events=["batch.cancelled"])
            cancelled(client)
            [failed] = finished(client, refusing["id"])
            before = len(failed["attempts"])
            assert before >= 3, failed
            client.post(f"/v1/webhooks/{refusing['id']}/deliveries/{failed['id']}/redeliver")
            eventually(lambda: after_attempt(deliveries(client, refusing["id"])[0], before))
            [again] = finished(client, refusing["id"])
            assert len(again["attempts"]) - before >= 3, again

            # The third attempt starts 2.3 s or more into the 6 s window, well inside it, and fails
            # 4.5 s later, past its end; the next ones fail at once, well inside the window a
            # redeliver starts again.
            slow_then_fast = [Answer(500, delay=1), Answer(500, delay=1), Answer(500, delay=4.5), Answer(500)]
            slow = endpoint(client, receiver.plan(path(), *slow_then_fast), events=["batch.cancelled"])
            cancelled(client)

            def third_attempt_sending() -> dict[str, Any] | None:
                found = deliveries(client, slow["id"])
                last = found[0]["attempts"][-1] if found and found[0]["attempts"] else None
                return found[0] if last and last["attempt"] == 3 and last["result"] == "sending" else None

            sending = eventually(third_attempt_sending)  # (its failure comes past the window's end)
            client.post(f"/v1/webhooks/{slow['id']}/deliveries/{sending['id']}/redeliver")
            later = eventually(lambda: after_attempt(deliveries(client, slow["id"])[0], 3))
            assert later["status"] == "pending", later
    finally:
        api.stop()


def test_a_redeliver_during_an_attempt_that_succeeds_is_still_sent(database_url: str, tmp_path: Path) -> None:
    """A redeliver clicked while an attempt is being sent sends the event again, whatever became
    of that attempt: one that succeeded marked the delivery delivered, and the redeliver was
    lost (no second request ever came)."""
    env = ENV | {"LOADBAY_WEBHOOK_TIMEOUT": "8", "LOADBAY_WEBHOOK_DISABLE_AFTER": "1000"}
    # One worker thread: the redelivered attempt waits until the one under way is recorded.
    api = start_server(database_url, tmp_path / "data", workers=1, env=env)
    try:
        with receiving() as receiver, api.client(api.account("again")) as client:
            where = path()
            hook = endpoint(
                client, receiver.plan(where, Answer(200, delay=2), Answer(200)), events=["batch.cancelled"]
            )
            cancelled(client)

            def first_attempt_sending() -> dict[str, Any] | None:
                found = deliveries(client, hook["id"])
                attempts = found[0]["attempts"] if found else []
                return found[0] if attempts and attempts[-1]["result"] == "sending" else None

            sending = eventually(first_attempt_sending)
            again = client.post(f"/v1/webhooks/{hook['id']}/deliveries/{sending['id']}/redeliver")
            assert again.status_code == 200, again.text
            first, second = receiver.wait_for(where, 2, timeout=15)
            assert first.headers["webhook-id"] == second.headers["webhook-id"]
            done = eventually(lambda: (d := deliveries(client, hook["id"])[0])["status"] == "delivered" and d)
            assert [(a["attempt"], a["result"]) for a in done["attempts"]] == [
                (1, "delivered"),
                (2, "delivered"),
            ]
    finally:
        api.stop()


def test_a_delivery_is_retried_until_its_window_ends(database_url: str, tmp_path: Path) -> None:
    """The last attempt comes at the end of LOADBAY_WEBHOOK_RETRY_FOR, not before: a delivery
    whose next wait went past the window's end was failed at once, up to an hour early (here:
    one attempt, failed 3 s before its window ended, as the first wait is 15 to 30 s)."""
    env = ENV | {"LOADBAY_WEBHOOK_BACKOFF": "30", "LOADBAY_WEBHOOK_RETRY_FOR": "3"}
    api = start_server(
        database_url, tmp_path / "data", workers=1, env=env | {"LOADBAY_WEBHOOK_DISABLE_AFTER": "1000"}
    )
    try:
        with receiving() as receiver, api.client(api.account("window")) as client:
            where = path()
            hook = endpoint(client, receiver.plan(where, Answer(500)), events=["batch.cancelled"])
            cancelled(client)
            [failed] = finished(client, hook["id"])
            sent = receiver.requests(where)
    finally:
        api.stop()
    assert [(a["attempt"], a["result"]) for a in failed["attempts"]] == [(1, "failed"), (2, "failed")]
    assert 2.0 <= sent[1].at - sent[0].at <= 6.0  # at the window's end, 3 s after the event
    assert (failed["status"], len(sent)) == ("failed", 2)


def cancelled(client: httpx.Client) -> None:
    batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    assert client.post(f"/v1/batches/{batch['id']}/cancel").status_code == 200


def after_attempt(delivery: dict[str, Any], attempt: int) -> dict[str, Any] | None:
    """The delivery, once an attempt past `attempt` was made."""
    return delivery if delivery["attempts"] and delivery["attempts"][-1]["attempt"] > attempt else None
