"""A webhook receiver on loopback for tests: a threaded http.server that keeps every request
it gets and answers each path as the test planned (a status, a redirect, a delay)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Answer", "Received", "Receiver", "receiving"]


@dataclass(frozen=True)
class Answer:
    """How to answer one request: after `delay` seconds, `status` (with Location: `location`)."""

    status: int = 204
    location: str | None = None
    delay: float = 0.0
    body: bytes = b""


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic()


@dataclass
class Receiver:
    port: int = 0
    received: list[Received] = field(default_factory=list)
    plans: dict[str, list[Answer]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def plan(self, path: str, *answers: Answer) -> str:
        """Answer the requests to `path` in this order, the last one again and again; its URL."""
        with self.lock:
            self.plans[path] = list(answers)
        return self.url(path)

    def next_answer(self, path: str) -> Answer:
        with self.lock:
            answers = self.plans.get(path) or [Answer()]
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def requests(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 30.0) -> list[Received]:
        """The first `count` requests to `path`, waiting for them up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := self.requests(path)) >= count:
                return found[:count]
            time.sleep(0.02)
        raise AssertionError(f"{path} got {len(self.requests(path))} requests, not {count}, in {timeout} s")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            with receiver.lock:
                receiver.received.append(Received(self.path, headers, body, time.monotonic()))
            answer = receiver.next_answer(self.path)
            time.sleep(answer.delay)
            self.send_response(answer.status)
            if answer.location:
                self.send_header("Location", answer.location)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 until the block ends."""
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
