"""loadbay.client's retries and errors, against a scripted server (httpx.MockTransport) and a
fake clock: what the CLI does when the server is down, restarts, is busy or refuses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from loadbay.client import Client, Refused, RetryPolicy, Unreachable

BATCH = {"id": 7, "status": "open", "process": "auto"}
Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """A clock that moves only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def client(handler: Handler, fake: FakeTime, budget: float = 30.0) -> tuple[Client, list[str]]:
    notes: list[str] = []
    made = Client(
        "http://loadbay.test",
        "lb_live_x",
        retry=RetryPolicy(budget=budget),
        on_retry=lambda problem, _delay, _left: notes.append(problem),
        transport=httpx.MockTransport(handler),
        sleep=fake.sleep,
        clock=fake.clock,
    )
    return made, notes


def answers(*steps: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A server that answers each request with the next step (an exception: no answer)."""
    seen: list[httpx.Request] = []
    queue: Iterator[httpx.Response | Exception] = iter(steps)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = next(queue)
        if isinstance(step, Exception):
            raise step
        return step

    return handler, seen


def problem(status: int, code: str, detail: str, **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "status": status, "code": code, "detail": detail} | extra
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def test_a_create_is_sent_again_until_the_server_answers() -> None:
    fake = FakeTime()
    handler, seen = answers(
        httpx.ConnectError("refused"), httpx.ConnectError("refused"), httpx.Response(201, json=BATCH)
    )
    made, notes = client(handler, fake)
    assert made.create_batch({"type": "t", "job_id": "j"}) == (BATCH, True)
    assert len(seen) == 3 and len(notes) == 2 and "cannot connect" in notes[0]
    assert all(r.content == seen[0].content for r in seen), "every try sends the same body"
    assert 0.25 <= fake.sleeps[0] <= 0.5 and fake.sleeps[1] <= 1.0


def test_an_existing_batch_of_the_job_id_is_not_created() -> None:
    made, _ = client(answers(httpx.Response(200, json=BATCH))[0], FakeTime())
    assert made.create_batch({"type": "t", "job_id": "j"}) == (BATCH, False)


def test_no_answer_for_the_whole_budget_is_unreachable() -> None:
    fake = FakeTime()
    made, notes = client(lambda _r: (_ for _ in ()).throw(httpx.ConnectError("refused")), fake, budget=20)
    with pytest.raises(Unreachable, match="no answer from http://loadbay.test for 20 s"):
        made.batch(7)
    assert sum(fake.sleeps) == pytest.approx(20.0)
    assert max(fake.sleeps) <= 5.0, "waits are capped"
    assert len(notes) == len(fake.sleeps)


def test_busy_and_a_proxy_whose_server_restarts_are_tried_again() -> None:
    fake = FakeTime()
    busy = problem(503, "BUSY", "try again")
    busy.headers["Retry-After"] = "1"
    gateway = httpx.Response(502, text="<html>Bad Gateway</html>", headers={"content-type": "text/html"})
    handler, seen = answers(busy, gateway, httpx.Response(200, json=BATCH))
    made, _ = client(handler, fake)
    assert made.batch(7) == BATCH
    assert fake.sleeps[0] == 1.0, "Retry-After is heeded"
    assert len(seen) == 3


def test_a_refusal_is_not_tried_again_and_says_why() -> None:
    errors = [{"field": "body.type", "message": "Field required"}]
    handler, seen = answers(problem(400, "INVALID_INPUT", "the request is not valid", errors=errors))
    made, _ = client(handler, FakeTime())
    with pytest.raises(Refused) as refused:
        made.create_batch({})
    assert (refused.value.status, refused.value.code) == (400, "INVALID_INPUT")
    assert refused.value.detail == "the request is not valid (body.type: Field required)"
    assert len(seen) == 1


def test_loadbays_own_502_is_an_answer() -> None:
    handler, seen = answers(problem(502, "FETCH_FAILED", "the source URL answered 404"))
    made, _ = client(handler, FakeTime())
    with pytest.raises(Refused, match="FETCH_FAILED"):
        made.batch(7)
    assert len(seen) == 1


def test_a_submit_whose_answer_was_lost_is_found_done() -> None:
    queued = BATCH | {"status": "queued"}
    handler, seen = answers(
        httpx.ReadError("connection reset"),  # the server submitted it, then died
        problem(409, "INVALID_STATE", "batch 7 is queued"),
        httpx.Response(200, json=queued),
    )
    made, _ = client(handler, FakeTime())
    assert made.submit(7) == queued
    assert [r.method for r in seen] == ["POST", "POST", "GET"]


def test_a_conflict_without_a_retry_is_a_refusal() -> None:
    handler, _ = answers(problem(409, "INVALID_STATE", "batch 7 is completed"))
    made, _ = client(handler, FakeTime())
    with pytest.raises(Refused, match="INVALID_STATE"):
        made.cancel(7)


def test_results_not_ready_is_a_refusal_not_a_file() -> None:
    detail = "batch 7 is validated; … its invalid records are available now: outcome=invalid"
    handler, _ = answers(problem(409, "RESULTS_NOT_READY", detail), httpx.Response(200, text="a,b\r\n"))
    made, _ = client(handler, FakeTime())
    with pytest.raises(Refused, match="RESULTS_NOT_READY") as refused, made.results(7, []):
        pass
    assert refused.value.detail == detail
    with made.results(7, ["invalid"]) as body:
        assert b"".join(body) == b"a,b\r\n"


def test_an_upload_sends_the_whole_file_again_on_each_try() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        if len(bodies) == 1:
            raise httpx.WriteError("broken pipe")
        return httpx.Response(200, json=BATCH)

    made, _ = client(handler, FakeTime())
    made.upload(7, "a.csv", "text/csv", lambda: iter([b"a,b\n", b"1,2\n"]), size=8)
    assert bodies == [b"a,b\n1,2\n"] * 2


def test_pages_are_followed_up_to_the_limit() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        cursor = int(request.url.params.get("cursor", "0"))
        limit = int(request.url.params["limit"])
        data = [{"id": i} for i in range(cursor, min(cursor + limit, 5))]
        return httpx.Response(200, json={"data": data, "next_cursor": str(cursor + limit) if data else None})

    made, _ = client(handler, FakeTime())
    assert [b["id"] for b in made.batches({}, limit=3)] == [0, 1, 2]
    assert [e["id"] for e in made.errors(7, {}, limit=0)] == [0, 1, 2, 3, 4]


def test_an_answer_that_is_not_loadbays_is_a_refusal() -> None:
    made, _ = client(answers(httpx.Response(200, text="<html>hello</html>"))[0], FakeTime())
    with pytest.raises(Refused, match="NOT_JSON"):
        made.batch(7)
