"""A loopback HTTP server that drips its answer: each byte comes quickly enough for a
per-read timeout, the whole answer does not. For the deadlines of webhook attempts and
`source_url` downloads."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Dripping:
    """The server's URL, what it answers, and each request's (arrival, hang-up) times."""

    url: str
    at_once: bytes = b""  # sent as soon as the request is read
    dripped: bytes = b""  # then one byte every `pause` seconds
    pause: float = 0.2
    spans: list[tuple[float, float]] = field(default_factory=list)

    def answer(self, at_once: bytes, dripped: bytes) -> str:
        """Answer every request so from now on; the URL to ask."""
        self.at_once, self.dripped = at_once, dripped
        return self.url


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
        data += chunk
    if b"\r\n\r\n" not in data:
        return
    head, body = data.split(b"\r\n\r\n", 1)
    lengths = [int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
    while lengths and len(body) < lengths[0] and (chunk := conn.recv(65536)):
        body += chunk


def _drip(conn: socket.socket, server: Dripping, stop: threading.Event) -> None:
    """Answer until done, stopped, or the client hangs up (the socket turns readable)."""
    came = time.monotonic()
    with conn:
        _read_request(conn)
        try:
            conn.sendall(server.at_once)
            for byte in server.dripped:
                if stop.is_set() or select.select([conn], [], [], server.pause)[0]:
                    break
                conn.sendall(bytes([byte]))
        except OSError:
            pass
    server.spans.append((came, time.monotonic()))


@contextmanager
def dripping(path: str = "/drip", pause: float = 0.2) -> Iterator[Dripping]:
    """A dripping server on loopback while the block runs."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = Dripping(f"http://127.0.0.1:{listener.getsockname()[1]}{path}", pause=pause)
    stop = threading.Event()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_drip, args=(conn, server, stop), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server
    finally:
        stop.set()
        listener.close()
