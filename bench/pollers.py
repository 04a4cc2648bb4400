"""Status pollers in a process of their own: N clients, each on its own keep-alive
connection, GET /v1/batches/{id} in a loop and keep each answer's latency.

They run apart from the bench's own process, which uploads the file and downloads the
result: as threads there, a poller's latency held the time its answer waited for that
process's GIL and CPU (behind the upload, the download and 49 other httpx clients), which a
real poller on a machine of its own does not wait for. Here one event loop writes each
request and reads its answer (tens of µs of CPU a request), so a latency is the server's
answer time, the loopback and little else.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any
from urllib.parse import urlsplit

__all__ = ["PollerProcess", "Polled"]

# Each poller starts at a random point of its first pause, and each pause is the given one
# ±20%, so that the pollers are independent clients. With equal pauses from one start they
# poll in step: every 0.25 s, 50 requests at once, the last answered after the other 49
# (a herd, not a crowd of clients).
_JITTER = 0.2

FINAL = frozenset({"completed", "error", "cancelled", "cleared"})  # (as tests.support.servers.FINAL)


@dataclass
class Polled:
    """What the pollers saw: latencies (s), failed requests, (perf_counter, records applied)."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    progress: list[tuple[float, int]] = field(default_factory=list)


class PollerProcess:
    """`count` pollers of batch `batch_id` in a child process, from `start()` to `stop()`.

    `done` is set, and `final` gives the answer, once a poller sees the batch final.
    time.perf_counter is CLOCK_MONOTONIC on Linux, so progress times compare with this
    process's."""

    def __init__(self, url: str, key: str, batch_id: int, count: int, pause: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.count = count
        self.done: Event = context.Event()
        self._stop: Event = context.Event()
        self._ready: Event = context.Event()
        self._answers, child_end = context.Pipe(duplex=False)
        args = (url, key, batch_id, count, pause, self._ready, self.done, self._stop, child_end)
        self._process = context.Process(target=_main, args=args, daemon=True)
        self._final: dict[str, Any] | None = None
        self.polled = Polled()

    def start(self, timeout: float = 60.0) -> None:
        """Start the pollers; back once each has its connection open."""
        if self.count:
            self._process.start()
            if not self._ready.wait(timeout):
                raise RuntimeError(f"the status pollers were not connected after {timeout}s")

    def alive(self) -> bool:
        return bool(self.count) and self._process.is_alive()

    @property
    def final(self) -> dict[str, Any] | None:
        """The first final answer, once `done` is set."""
        if self._final is None and self.done.is_set() and self._answers.poll(5):
            self._final = self._answers.recv()
        return self._final

    def stop(self) -> Polled:
        """Stop polling; what the pollers saw (the final answer, if any, comes before it)."""
        if not self.count:
            return self.polled
        self._stop.set()
        while self._answers.poll(60 if self._process.is_alive() else 1):
            try:
                answer = self._answers.recv()
            except EOFError:  # the process ended without a word: what it saw is lost
                break
            if isinstance(answer, Polled):
                self.polled = answer
                break
            self._final = self._final or answer
        self._process.join(10)
        return self.polled


@dataclass
class _Shared:
    """What the child's pollers share: the events, the pipe back, what they saw."""

    ready: Event
    done: Event
    stop: Event
    answers: Connection
    polled: Polled = field(default_factory=Polled)
    final: dict[str, Any] | None = None


def _main(
    url: str,
    key: str,
    batch_id: int,
    count: int,
    pause: float,
    ready: Event,
    done: Event,
    stop: Event,
    answers: Connection,
) -> None:
    pollers = _ChildPollers(url, key, batch_id, pause, _Shared(ready, done, stop, answers))
    asyncio.run(pollers.run(count))
    answers.send(pollers.shared.polled)


class _ChildPollers:
    """The pollers of the child process, on one event loop."""

    def __init__(self, url: str, key: str, batch_id: int, pause: float, shared: _Shared) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        head = f"GET /v1/batches/{batch_id} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nX-Api-Key: {key}"
        self.request = f"{head}\r\n\r\n".encode()
        self.pause = pause
        self.shared = shared
        self.connected = 0

    async def run(self, count: int) -> None:
        await asyncio.gather(*(self.poller(n, count) for n in range(count)))

    async def poller(self, number: int, count: int) -> None:
        pauses = random.Random(number)
        connection: _Connection | None = await asyncio.open_connection(self.host, self.port)
        self.connected += 1
        if self.connected == count:
            self.shared.ready.set()
        await asyncio.sleep(pauses.uniform(0, self.pause))
        try:
            while not self.shared.stop.is_set():
                connection = await self.poll_once(connection)
                await asyncio.sleep(self.pause * pauses.uniform(1 - _JITTER, 1 + _JITTER))
        finally:
            if connection is not None:
                connection[1].close()

    async def poll_once(self, connection: _Connection | None) -> _Connection | None:
        """One request (on a new connection if the last one failed); the connection to use
        next, None when this one failed (a failure is counted, never raised: a poller polls
        until it is stopped)."""
        polled = self.shared.polled
        try:
            connection = connection or await asyncio.open_connection(self.host, self.port)
            started = time.perf_counter()
            status, body = await _get(*connection, self.request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            polled.errors += 1
            if connection is not None:
                connection[1].close()
            return None
        if status == 200:
            polled.latencies.append(time.perf_counter() - started)
            self.see(json.loads(body))
        else:
            polled.errors += 1
        return connection

    def see(self, batch: dict[str, Any]) -> None:
        shared = self.shared
        counts = batch["counts"]
        applied = counts["succeeded"] + counts["failed"] + counts["unprocessed"]
        shared.polled.progress.append((time.perf_counter(), applied))
        if batch["status"] in FINAL and shared.final is None:
            shared.final = batch
            shared.answers.send(batch)
            shared.done.set()


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """One request on a keep-alive connection: (status code, body); ValueError when the answer
    has no Content-Length (loadbay's JSON answers all have one)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = dict(line.partition(":")[::2] for line in lines[1:] if line)
    length = next((int(v) for k, v in fields.items() if k.lower() == "content-length"), None)
    if length is None:
        raise ValueError(f"an answer without Content-Length: {lines[0]}")
    return status, await reader.readexactly(length)
