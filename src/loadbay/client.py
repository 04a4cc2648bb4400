"""A client of loadbay's native API (/v1), as the `loadbay` CLI uses it.

Every request is tried again, with growing waits, while the server does not answer, restarts
or says it is busy, for up to a time budget per outage; every error answer becomes an
exception that carries the server's problem code and detail. It imports nothing of the
server: it speaks HTTP only.

Errors:

    ClientError        a request to loadbay failed
    ├── Refused        the server answered with an error (a 4xx, or a 5xx that is no restart)
    └── Unreachable    no usable answer for longer than the retry budget
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from loadbay import __version__

__all__ = [
    "FINAL",
    "Batch",
    "Client",
    "ClientError",
    "Refused",
    "RetryPolicy",
    "Unreachable",
    "settled",
]

Batch = dict[str, Any]  # a batch as GET /v1/batches/{id} answers it
FINAL = frozenset({"completed", "error", "cancelled", "cleared"})
# Answers that say "not now" rather than "no": a proxy whose server is down or restarting
# (502, 504) and loadbay's own 503 BUSY (a database lock waited for too long).
_TRY_LATER = frozenset({502, 503, 504})
_PROBLEM = "application/problem+json"

Body = Callable[[], Iterable[bytes]]  # makes a request body afresh for each try
Attempt = Callable[[httpx.Timeout], httpx.Response]  # one try of a request, within these timeouts
RetryNote = Callable[[str, float, float], None]  # (what went wrong, seconds to wait, seconds left)


class ClientError(Exception):
    """A request to loadbay failed."""


class Refused(ClientError):
    """The server answered the request with an error: `code` and `detail` say which and why."""

    def __init__(self, status: int, code: str, detail: str, *, retried: bool = False) -> None:
        super().__init__(f"HTTP {status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.retried = retried  # the request was sent more than once (an earlier answer was lost)


class Unreachable(ClientError):
    """The server gave no usable answer within the retry budget: check the URL, and that it runs."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to keep trying: `budget` seconds of one outage (from the start of the first
    failed try of a run of them), waiting `first` seconds, then twice as long each time up to
    `cap`, each wait cut by up to half at random so that many clients do not come back at the
    same instant. No try waits for an answer longer than the budget left (but `shortest`)."""

    budget: float = 120.0
    first: float = 0.5
    cap: float = 5.0
    shortest: float = 1.0

    def wait(self, failures: int, elapsed: float, hint: float | None = None) -> float | None:
        """Seconds to wait before the next try after `failures` failed ones in a row, the first
        of them `elapsed` seconds ago; None once the budget is spent. `hint`: the server's
        Retry-After."""
        left = self.budget - elapsed
        if left <= 0:
            return None
        delay = min(self.cap, self.first * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
        return min(left, delay if hint is None else hint)

    def timeout(self, usual: httpx.Timeout, elapsed: float) -> httpx.Timeout:
        """`usual`, each part cut to the budget left `elapsed` seconds into an outage (0: none
        yet), so that a server that takes the connection and never answers ends the budget."""
        most = max(self.shortest, self.budget - elapsed)
        parts = (usual.connect, usual.read, usual.write, usual.pool)
        connect, read, write, pool = (most if part is None else min(part, most) for part in parts)
        return httpx.Timeout(connect=connect, read=read, write=write, pool=pool)


class Client:
    """The native API with an API key. Use it as a context manager (it holds connections)."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        retry: RetryPolicy | None = None,
        on_retry: RetryNote | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._on_retry = on_retry or (lambda _problem, _delay, _left: None)
        self._sleep = sleep
        self._clock = clock
        headers = {"X-Api-Key": key, "User-Agent": f"loadbay-cli/{__version__}"}
        self._timeout = httpx.Timeout(60.0, connect=5.0)
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=self._timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # batches ----------------------------------------------------------------

    def create_batch(self, body: dict[str, Any]) -> tuple[Batch, bool]:
        """Create a batch; (the batch, False) when its job_id already named one with this body."""
        response = self._send("POST", "/v1/batches", json=body)
        return _json(response), response.status_code == 201

    def batch(self, batch_id: int) -> Batch:
        return _json(self._send("GET", f"/v1/batches/{batch_id}"))

    def batches(self, filters: dict[str, str], limit: int) -> Iterator[Batch]:
        """The account's batches, newest first, at most `limit` (0: all)."""
        return self._pages("/v1/batches", filters, limit, most=500)

    def upload(self, batch_id: int, name: str, content_type: str, body: Body, size: int | None) -> Batch:
        """PUT a file as the batch's input `name` (a second PUT of the same name replaces it,
        so a try cut short is simply made again)."""
        headers = {"Content-Type": content_type}
        if size is not None:
            headers["Content-Length"] = str(size)
        path = f"/v1/batches/{batch_id}/data"
        return _json(self._send("PUT", path, params={"name": name}, headers=headers, body=body))

    def submit(self, batch_id: int) -> Batch:
        return self._move(batch_id, "submit", lambda b: b["status"] != "open")

    def process(self, batch_id: int) -> Batch:
        return self._move(batch_id, "process", lambda b: b["status"] != "validated")

    def cancel(self, batch_id: int) -> Batch:
        return self._move(batch_id, "cancel", lambda b: b["status"] == "cancelled")

    def _move(self, batch_id: int, action: str, moved: Callable[[Batch], bool]) -> Batch:
        """POST one of a batch's transitions. When an answer was lost and the try made again is
        refused as a conflict, the lost one may have done it: the batch, if it shows so."""
        try:
            return _json(self._send("POST", f"/v1/batches/{batch_id}/{action}"))
        except Refused as exc:
            if exc.status != 409 or not exc.retried:
                raise
            batch = self.batch(batch_id)
            if moved(batch):
                return batch
            raise

    # a batch's records --------------------------------------------------------

    def errors(self, batch_id: int, filters: dict[str, str], limit: int) -> Iterator[dict[str, Any]]:
        """The batch's record errors in order of discovery, at most `limit` (0: all)."""
        return self._pages(f"/v1/batches/{batch_id}/errors", filters, limit, most=1000)

    def error_summary(self, batch_id: int) -> dict[str, Any]:
        return _json(self._send("GET", f"/v1/batches/{batch_id}/errors/summary"))

    @contextmanager
    def results(self, batch_id: int, outcomes: list[str]) -> Iterator[Iterator[bytes]]:
        """The batch's result CSV as it arrives (only records with these outcomes, if any);
        Refused when the server refuses it (RESULTS_NOT_READY before the batch is final)."""
        params = {"outcome": ",".join(outcomes)} if outcomes else None

        def attempt(timeout: httpx.Timeout) -> httpx.Response:
            path = f"/v1/batches/{batch_id}/results"
            request = self._http.build_request("GET", path, params=params, timeout=timeout)
            return self._http.send(request, stream=True)

        response, tries = self._retrying(attempt)
        if response.is_error:
            raise _refusal(response, retried=tries > 1)
        try:
            yield _streamed(response, self.url)
        finally:
            response.close()

    # webhooks -----------------------------------------------------------------

    def webhooks(self) -> list[dict[str, Any]]:
        """The account's webhook endpoints (GET /v1/webhooks: no secrets)."""
        found: list[dict[str, Any]] = _json(self._send("GET", "/v1/webhooks"))["data"]
        return found

    # types --------------------------------------------------------------------

    def types(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = _json(self._send("GET", "/v1/types"))["data"]
        return found

    def template(self, name: str) -> str:
        """The CSV template of a type: its header row."""
        return self._send("GET", f"/types/{name}/template.csv").text

    # the requests themselves -----------------------------------------------------

    def _pages(self, path: str, filters: dict[str, str], limit: int, most: int) -> Iterator[Any]:
        params, left = dict(filters), limit or None
        while True:
            params["limit"] = str(min(most, left) if left else most)
            page = _json(self._send("GET", path, params=params))
            yield from page["data"][:left]
            left = None if left is None else left - len(page["data"])
            if not page.get("next_cursor") or (left is not None and left <= 0):
                return
            params["cursor"] = page["next_cursor"]

    def _send(self, method: str, path: str, *, body: Body | None = None, **options: Any) -> httpx.Response:
        def attempt(timeout: httpx.Timeout) -> httpx.Response:
            content = body() if body else None
            request = self._http.build_request(method, path, content=content, timeout=timeout, **options)
            return self._http.send(request)

        response, tries = self._retrying(attempt)
        if response.is_error:
            raise _refusal(response, retried=tries > 1)
        return response

    def _retrying(self, attempt: Attempt) -> tuple[httpx.Response, int]:
        """Try until there is an answer that is not "try later", or the budget is spent; the
        answer and the number of tries. An outage counts from the start of its first failed
        try. An error answer of a streamed request is read."""
        failures, first_failure = 0, 0.0
        while True:
            hint, started = None, self._clock()
            outage = started - first_failure if failures else 0.0
            try:
                response = attempt(self.retry.timeout(self._timeout, outage))
            except httpx.TransportError as exc:
                problem = _describe(exc)
            else:
                if not _try_later(response):
                    if response.is_error:
                        response.read()
                    return response, failures + 1
                response.close()
                problem, hint = f"HTTP {response.status_code}", _retry_after(response)
            failures += 1
            first_failure = first_failure if failures > 1 else started
            elapsed = self._clock() - first_failure
            delay = self.retry.wait(failures, elapsed, hint)
            if delay is None:
                raise Unreachable(f"no answer from {self.url} for {elapsed:.0f} s ({problem})")
            self._on_retry(problem, delay, self.retry.budget - elapsed)
            self._sleep(delay)


def settled(batch: Batch) -> bool:
    """Whether the batch will not move on by itself: final (a cancelled batch once its records
    not read yet have their outcome), or a two-phase batch validated."""
    if batch.get("unread_pending"):
        return False
    return batch["status"] in FINAL or (batch["status"] == "validated" and batch["process"] == "manual")


def _try_later(response: httpx.Response) -> bool:
    """A proxy's 502/503/504, or loadbay's own 503 (BUSY); loadbay's 502 (a failed fetch) is an answer."""
    if response.status_code not in _TRY_LATER:
        return False
    return response.status_code == 503 or not response.headers.get("content-type", "").startswith(_PROBLEM)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}" if str(exc) else "cannot connect"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    return f"connection lost: {type(exc).__name__}"


def _refusal(response: httpx.Response, *, retried: bool) -> Refused:
    """The error answer as a Refused: loadbay's problem+json code and detail (each field an
    INVALID_INPUT names, too), or the status and the start of whatever else it is."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "code" not in body:
        text = " ".join(response.text.split())[:200] or response.reason_phrase
        return Refused(response.status_code, f"HTTP_{response.status_code}", text, retried=retried)
    detail = str(body.get("detail") or body.get("title") or "")
    fields = [
        f"{e.get('field')}: {e.get('message')}" for e in body.get("errors") or [] if isinstance(e, dict)
    ]
    if fields:
        detail = f"{detail} ({'; '.join(fields)})" if detail else "; ".join(fields)
    return Refused(response.status_code, str(body["code"]), detail, retried=retried)


def _json(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of an answer (every answer of the native API is one)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        detail = f"{response.request.url} answered something other than a JSON object: is it loadbay?"
        raise Refused(response.status_code, "NOT_JSON", detail)
    return body


def _streamed(response: httpx.Response, url: str) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes()
    except httpx.TransportError as exc:
        raise Unreachable(f"{url} stopped sending ({_describe(exc)}); nothing more to read") from exc
