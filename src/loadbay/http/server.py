"""The HTTP server loadbay ships: uvicorn on h11, with bounded request heads and slow
clients closed.

uvicorn's default parser (httptools) takes a request head of any size and never times a
slow one out. On h11, an unfinished head is kept to at most LOADBAY_MAX_HEAD_BYTES and
answered 400 past it, and `GuardedH11Protocol` adds the timeouts the server lacks:

- a request head must arrive whole within LOADBAY_HEAD_TIMEOUT seconds of its first byte
  (of the connection opening, for the first request), else 408 and the connection closes;
- a body that stops arriving for LOADBAY_BODY_TIMEOUT seconds closes its connection (time
  the server itself holds reading back, while the app catches up, does not count);
- after an early answer (401 or 413 before the body was read) the rest of the body is
  drained, not stored, for at most LINGER_SECONDS, so the client can read the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from loadbay.config import Settings
from loadbay.memory import fewer_collections, return_big_buffers

__all__ = ["GuardedH11Protocol", "run"]

log = logging.getLogger(__name__)

LINGER_SECONDS = 5.0
_HEAD_STEP = 4096
_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on request heads and an idle limit on bodies."""

    head_timeout: float = 10.0
    body_timeout: float = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_for = ""
        self._watch()

    def data_received(self, data: bytes) -> None:
        # h11 measures an unfinished head only: a whole head that came in one read (up to
        # 256 KiB) would pass. Given a head a step at a time, it sees every long one unfinished.
        while len(data) > _HEAD_STEP and self.conn.their_state is h11.IDLE:
            piece, data = data[:_HEAD_STEP], data[_HEAD_STEP:]
            super().data_received(piece)
            if self.transport.is_closing():
                return
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            self._arm("linger", LINGER_SECONDS, self._close)
        else:
            self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Arm the timer that fits what the connection waits for from the client."""
        state = self.conn.their_state
        if self._waiting_for == "linger" and state is h11.SEND_BODY:
            return  # still draining the body of a request already answered
        if state is h11.SEND_BODY:
            self._arm("body", self.body_timeout, self._body_stalled, again=True)
        elif state is h11.IDLE and self.timeout_keep_alive_task is None:
            self._arm("head", self.head_timeout, self._head_too_slow)
        else:
            self._disarm()

    def _arm(self, what: str, seconds: float, then: Callable[[], None], *, again: bool = False) -> None:
        """Start a timer for `what`, unless one runs for it already (`again`: restart it)."""
        if self._waiting_for == what and not again:
            return
        self._disarm()
        self._waiting_for = what
        self._timer = self.loop.call_later(seconds, then)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._waiting_for = None, ""

    def _head_too_slow(self) -> None:
        log.info("%s: closed a connection whose request head took over %ss", self._peer(), self.head_timeout)
        if not self.transport.is_closing():
            self.transport.write(_TIMED_OUT)
        self._close()

    def _body_stalled(self) -> None:
        if self.flow.read_paused:  # the app has not read what arrived yet: not the client's doing
            self._arm("body", self.body_timeout, self._body_stalled, again=True)
            return
        log.info("%s: closed a connection whose body sent nothing for %ss", self._peer(), self.body_timeout)
        self._close()

    def _close(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"


def guarded_protocol(settings: Settings) -> type[GuardedH11Protocol]:
    """The protocol class with the timeouts of `settings`."""
    attributes = {"head_timeout": settings.head_timeout, "body_timeout": settings.body_timeout}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attributes)


def run(app: Any, host: str, port: int, settings: Settings) -> None:
    """Serve `app` until stopped, with the request limits of `settings`."""
    return_big_buffers()
    fewer_collections()
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=guarded_protocol(settings),
        h11_max_incomplete_event_size=settings.max_head_bytes,
        log_level=settings.log_level,
    )
