"""Downloading a batch's `source_url` into a sink, through the guard (see `loadbay.fetcher`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import BinaryIO

import httpx

from loadbay.domain.text import byte_size
from loadbay.errors import FetchError, FetchRefused, PayloadTooLarge
from loadbay.fetcher.addresses import AllowList
from loadbay.fetcher.deadline import Deadline, DeadlineTransport
from loadbay.fetcher.pinned import checked_url, client, network_errors, permitted_addresses, send_pinned

__all__ = ["MIN_BYTES_PER_TIMEOUT", "FetchResult", "fetch_to"]

_REDIRECTS = {301, 302, 303, 307, 308}
# a body must bring at least this much in every `timeout` seconds (2 KiB/s over 30 s)
MIN_BYTES_PER_TIMEOUT = 64 * 1024


@dataclass(frozen=True)
class FetchResult:
    """What `fetch_to` wrote: byte count, the final response's Content-Type, the final URL."""

    size: int
    content_type: str | None
    final_url: str


def fetch_to(
    url: str,
    sink: BinaryIO,
    *,
    allow: AllowList,
    max_bytes: int,
    timeout: float = 30.0,
    max_redirects: int = 5,
    transport: httpx.BaseTransport | None = None,
) -> FetchResult:
    """GET `url` into `sink`, refusing non-public addresses unless `allow` permits them.

    Each answer's status line and headers must come within `timeout` of asking (resolving
    the host and connecting included); its body then must bring at least
    MIN_BYTES_PER_TIMEOUT in every `timeout` seconds, and no read may wait longer than that.
    Raises FetchRefused (bad URL or address), PayloadTooLarge (over `max_bytes`) or
    FetchError (unreachable, timeout, too slow, non-2xx answer, too many redirects).
    `transport` replaces the network transport (a test seam; held to the deadline only while
    a host is resolved); it is closed with the client.
    """
    current = checked_url(url)
    deadline = Deadline(timeout)
    with client(timeout, transport or DeadlineTransport(deadline)) as http:
        for _ in range(max_redirects + 1):
            deadline.restart(timeout)
            response = _open(http, current, allow, deadline)
            deadline.lift()
            try:
                target = _redirect_target(response, current)
                if target is None:
                    return _save(response, current, sink, max_bytes, timeout)
            finally:
                response.close()
            current = target
    raise FetchError(f"GET {url} redirected more than {max_redirects} times")


def _open(http: httpx.Client, url: httpx.URL, allow: AllowList, deadline: Deadline) -> httpx.Response:
    """Check `url`'s addresses, then send the GET to a checked one."""
    addresses = permitted_addresses(url, allow, deadline)
    with network_errors(url):
        return send_pinned(http, url, addresses)


def _redirect_target(response: httpx.Response, url: httpx.URL) -> httpx.URL | None:
    """The checked next URL if `response` is a redirect, else None."""
    location = response.headers.get("location")
    if response.status_code not in _REDIRECTS or location is None:
        return None
    try:
        target = str(url.join(location))
    except httpx.InvalidURL as exc:
        raise FetchRefused(f"{url} redirected to an invalid URL {location!r}") from exc
    return checked_url(target)


def _save(
    response: httpx.Response, url: httpx.URL, sink: BinaryIO, max_bytes: int, timeout: float
) -> FetchResult:
    """Check the final response and stream its body into `sink`."""
    if not response.is_success:
        raise FetchError(f"GET {url} answered HTTP {response.status_code}")
    _refuse_declared_size(response, url, max_bytes)
    with network_errors(url):
        size = _copy_body(response, url, sink, max_bytes, _Pace(url, timeout))
    content_type = response.headers.get("content-type")
    return FetchResult(size=size, content_type=content_type, final_url=str(url))


def _refuse_declared_size(response: httpx.Response, url: httpx.URL, max_bytes: int) -> None:
    declared = response.headers.get("content-length", "")
    encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
    if declared.isdigit() and int(declared) > max_bytes and not encoded:
        raise PayloadTooLarge(
            f"{url} is {byte_size(int(declared))}, over the limit of {byte_size(max_bytes)}"
        )


def _copy_body(response: httpx.Response, url: httpx.URL, sink: BinaryIO, max_bytes: int, pace: _Pace) -> int:
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"{url} is over the limit of {byte_size(max_bytes)}")
        pace.came(len(chunk))
        sink.write(chunk)
    return size


class _Pace:
    """FetchError once a body brings less than MIN_BYTES_PER_TIMEOUT in `window` seconds,
    judged each time bytes come (a read that waits longer than `window` times out)."""

    def __init__(self, url: httpx.URL, window: float) -> None:
        self._url = url
        self._window = window
        self._since = time.monotonic()
        self._bytes = 0

    def came(self, count: int) -> None:
        self._bytes += count
        now = time.monotonic()
        if now - self._since < self._window:
            return
        if self._bytes < MIN_BYTES_PER_TIMEOUT:
            raise FetchError(
                f"GET {self._url} is too slow: {byte_size(self._bytes)} came in {now - self._since:.0f} s, "
                f"less than the {byte_size(MIN_BYTES_PER_TIMEOUT)} a download must bring "
                f"every {self._window:g} s"
            )
        self._since, self._bytes = now, 0
