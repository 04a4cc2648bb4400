"""The fetcher's URL check and webhook `post`: malformed IDNA host names are refused as bad
URLs (not an internal error), and an attempt has a deadline for the whole of it (resolving,
connecting, sending, the answer's status line, headers and first bytes), whatever a receiver
that drips its answer does, against a raw socket server on loopback."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from loadbay.errors import FetchError, FetchRefused
from loadbay.fetcher import AllowList, check_url, fetch_to, post
from tests.support.dripping import dripping

LOOPBACK = AllowList.parse("127.0.0.1")
BAD_IDNA = ["http://xn--a.com/", "http://xn--/", "https://xn--zz-zzz.com/hook"]


def never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request may be sent, got {request.url}")


# --- malformed IDNA host names ------------------------------------------------------------


@pytest.mark.parametrize("target", BAD_IDNA)
def test_a_malformed_idna_host_is_not_a_valid_url(target: str) -> None:
    with pytest.raises(FetchRefused, match="is not a valid URL"):
        check_url(target, AllowList())
    with pytest.raises(FetchRefused, match="is not a valid URL"):
        post(target, b"{}", {}, allow=AllowList(), timeout=1, transport=httpx.MockTransport(never_called))
    with pytest.raises(FetchRefused, match="is not a valid URL"):
        fetch_to(
            target, io.BytesIO(), allow=AllowList(), max_bytes=10, transport=httpx.MockTransport(never_called)
        )


def test_a_redirect_to_a_malformed_idna_host_is_a_fetch_error(httpserver: HTTPServer) -> None:
    """httpx builds the next request of a redirect even when it is not followed: the bad host
    name is a FetchError of the fetch or the attempt, not an idna.IDNAError."""
    httpserver.expect_request("/go").respond_with_data("", 302, {"Location": "http://xn--a.com/x"})
    with pytest.raises(FetchError, match="Location has a malformed host name"):
        fetch_to(f"http://127.0.0.1:{httpserver.port}/go", io.BytesIO(), allow=LOOPBACK, max_bytes=10)
    with pytest.raises(FetchError, match="Location has a malformed host name"):
        post(f"http://127.0.0.1:{httpserver.port}/go", b"{}", {}, allow=LOOPBACK, timeout=5)


# --- the deadline of an attempt -----------------------------------------------------------

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
BODY = b"x" * 100
DRIP = 0.2  # seconds between two bytes: each read is quick, the whole answer is not


@pytest.fixture
def drip() -> Iterator[Callable[[bytes, bytes], str]]:
    """A loopback server that reads a request's head, sends `at_once`, then `dripped` one byte
    every DRIP seconds; gives its URL."""
    with dripping(pause=DRIP) as server:
        yield server.answer


def timed_post(url: str, **kwargs: Any) -> tuple[pytest.ExceptionInfo[FetchError], float]:
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        post(url, b"{}", {"webhook-id": "msg_1"}, allow=LOOPBACK, timeout=1, **kwargs)
    return caught, time.monotonic() - started


def test_a_dripped_status_line_and_headers_time_out_at_the_deadline(
    drip: Callable[[bytes, bytes], str],
) -> None:
    caught, took = timed_post(drip(b"", HEAD + BODY))  # each byte comes in 0.2 s, under the 1 s
    assert "timed out" in caught.value.message and isinstance(caught.value.__cause__, httpx.TimeoutException)
    assert 0.9 <= took < 1.5, took  # (before: 7.6 s for the head, 20 s more for the body)


def test_a_dripped_body_times_out_at_the_deadline(drip: Callable[[bytes, bytes], str]) -> None:
    caught, took = timed_post(drip(HEAD, BODY))
    assert "timed out" in caught.value.message
    assert 0.9 <= took < 1.5, took  # (before: 20 s)


def test_an_answer_within_the_deadline_is_read(drip: Callable[[bytes, bytes], str]) -> None:
    answer = post(drip(HEAD, BODY[:3]), b"{}", {}, allow=LOOPBACK, timeout=2, max_excerpt=3)
    assert (answer.status_code, answer.excerpt) == (200, b"xxx")


def test_name_resolution_times_out_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        time.sleep(5)
        raise socket.gaierror("too late")

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    caught, took = timed_post("http://hooks.example.com/x", transport=httpx.MockTransport(never_called))
    assert "timed out resolving host 'hooks.example.com'" in caught.value.message
    assert 0.9 <= took < 1.5, took  # (before: 5 s, the resolver's own time)
