"""The fetcher's URL check and webhook `post`: malformed IDNA host names are refused as bad
URLs (not an internal error)."""

from __future__ import annotations

import io

import httpx
import pytest
from pytest_httpserver import HTTPServer

from loadbay.errors import FetchError, FetchRefused
from loadbay.fetcher import AllowList, check_url, fetch_to, post

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
