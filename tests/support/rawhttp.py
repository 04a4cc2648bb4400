"""HTTP/1.1 spoken by hand over a socket: what a hostile client sends, byte for byte."""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Answer", "connect", "exchange", "read_answer"]


@dataclass
class Answer:
    status: int | None  # None: the server closed without answering
    head: str
    elapsed: float  # seconds from the last byte sent to the end of the answer's head (or the close)
    closed: bool | None  # the server closed the connection after it (None: not waited for)


def connect(base_url: str, timeout: float = 10.0) -> socket.socket:
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_answer(sock: socket.socket, started: float, *, wait_close: bool = False) -> Answer:
    """Read up to the end of an answer's head (`wait_close`: then whether the server closes
    the connection within ten seconds)."""
    received = b""
    while b"\r\n\r\n" not in received:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            data = b""
        if not data:
            return Answer(_status(received), received.decode("latin-1"), time.monotonic() - started, True)
        received += data
    elapsed = time.monotonic() - started
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return Answer(_status(received), head, elapsed, _closes(sock) if wait_close else None)


def exchange(base_url: str, request: bytes, timeout: float = 10.0, *, wait_close: bool = False) -> Answer:
    """Send `request` (a head, maybe part of a body) and read the answer."""
    with connect(base_url, timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        return read_answer(sock, time.monotonic(), wait_close=wait_close)


def _status(received: bytes) -> int | None:
    line = received.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[0].startswith(b"HTTP/") and line[1].isdigit() else None


def _closes(sock: socket.socket, within: float = 10.0) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True
