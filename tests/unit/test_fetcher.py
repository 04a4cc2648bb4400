"""fetch_to: SSRF refusals, pinning, redirects, size limits, against a real loopback server.

No test here may send traffic to a non-loopback address: refusals of such addresses are
checked before any connection, and the transports used either go to loopback only
(`LoopbackOnly`) or never touch the network (`httpx.MockTransport`).
"""

from __future__ import annotations

import io
import ipaddress
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from loadbay.errors import FetchError, FetchRefused, PayloadTooLarge
from loadbay.fetcher import AllowList, FetchResult, check_url, fetch_to, is_public_address, post
from tests.support.dripping import dripping

LOOPBACK = AllowList.parse("127.0.0.1")
REAL_GETADDRINFO = socket.getaddrinfo


class LoopbackOnly(httpx.HTTPTransport):
    """A real transport that records every host it is asked to reach and fails on non-loopback."""

    def __init__(self) -> None:
        super().__init__()
        self.hosts: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append(request.url.host)
        assert ipaddress.ip_address(request.url.host).is_loopback, request.url
        return super().handle_request(request)


def never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request may be sent, got {request.url}")


def url(server: HTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def fetch(target: str, **kwargs: Any) -> tuple[FetchResult, bytes]:
    sink = io.BytesIO()
    kwargs.setdefault("allow", LOOPBACK)
    kwargs.setdefault("max_bytes", 1_000_000)
    result = fetch_to(target, sink, **kwargs)
    return result, sink.getvalue()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, list[str]], list[str]]:
    """Make `name` resolve to `addresses`; returns the log of names looked up."""
    names: dict[str, list[str]] = {}
    lookups: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in names:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        lookups.append(host)
        return [_addrinfo(address, port) for address in names[host]]

    def register(name: str, addresses: list[str]) -> list[str]:
        names[name] = addresses
        return lookups

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return register


def _addrinfo(address: str, port: int) -> tuple[Any, ...]:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


# --- addresses and the allow list -------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 wrapping 169.254.169.254
        "fec0::1",  # site-local (deprecated, but private)
    ],
)
def test_non_public_addresses_are_not_public(address: str) -> None:
    parsed = ipaddress.ip_address(address)
    assert not is_public_address(parsed)
    assert not AllowList().permits("example.com", parsed)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


def test_allow_list_parses_hosts_ips_and_cidrs() -> None:
    allow = AllowList.parse("127.0.0.1, ::1  10.0.0.0/8,files.internal,\nfd00::/8 [fe80::5]")
    ip = ipaddress.ip_address
    assert allow.permits("x.test", ip("127.0.0.1"))
    assert allow.permits("x.test", ip("::1"))
    assert allow.permits("x.test", ip("10.200.3.4"))
    assert allow.permits("x.test", ip("::ffff:10.200.3.4"))  # IPv4-mapped matches the v4 CIDR
    assert allow.permits("x.test", ip("fd12::1"))
    assert allow.permits("x.test", ip("fe80::5"))
    assert allow.permits("FILES.Internal.", ip("192.168.7.7"))  # listed by name: any address
    assert not allow.permits("x.test", ip("127.0.0.2"))
    assert not allow.permits("x.test", ip("11.0.0.1"))
    assert not allow.permits("x.test", ip("169.254.169.254"))
    assert not allow.permits("other.internal", ip("192.168.7.7"))


def test_empty_allow_list_permits_nothing() -> None:
    allow = AllowList.parse("  ")
    assert allow == AllowList()
    assert not allow.permits("localhost", ipaddress.ip_address("127.0.0.1"))


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "files.internal:8080", "http://x", "a b/c"])
def test_allow_list_rejects_garbage(entry: str) -> None:
    with pytest.raises(ValueError, match="LOADBAY_FETCH_ALLOW entry"):
        AllowList.parse(entry)


# --- URL refusals (nothing is sent) ----------------------------------------------------


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("ftp://127.0.0.1/data.csv", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://127.0.0.1:70/_", "scheme 'gopher'"),
        ("127.0.0.1/data.csv", "no scheme"),
        ("http:///data.csv", "no host"),
        ("http://user:secret@127.0.0.1/data.csv", "credentials"),
        ("http://files.example.com:99999/x", "port 99999 is not 1 to 65535"),
        ("http://files.example.com:0/x", "port 0 is not 1 to 65535"),
        ("http://files.example.com:-1/x", "port -1 is not 1 to 65535"),
        ("http://a b/x", "'a%20b' is not a host name or IP address"),
        ("http://files..example.com/x", "is not a host name or IP address"),
        ("http://-files.example.com/x", "is not a host name or IP address"),
        ("http://%66iles.example.com/x", "is not a host name or IP address"),
    ],
)
def test_bad_urls_are_refused(target: str, problem: str) -> None:
    transport = httpx.MockTransport(never_called)
    with pytest.raises(FetchRefused, match=problem):
        fetch(target, transport=transport)
    with pytest.raises(FetchRefused, match=problem):
        check_url(target, AllowList())


@pytest.mark.parametrize(
    "target",
    [
        "http://files.example.com./x",
        "https://bücher.example/x",
        "http://under_score.example:8080/x",
        "http://[2606:4700::1111]/x",
    ],
)
def test_well_formed_hosts_and_ports_pass_the_form_check(target: str) -> None:
    check_url(target, AllowList())


@pytest.mark.parametrize(
    ("target", "address"),
    [
        ("http://10.0.0.1/x", "10.0.0.1"),
        ("http://192.168.0.1/x", "192.168.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://[::1]/x", "::1"),
        ("http://[::ffff:127.0.0.1]/x", "::ffff:7f00:1"),
        ("http://2130706433/x", "127.0.0.1"),  # decimal IPv4 spelled as a "host name"
    ],
)
def test_non_public_ip_urls_are_refused_before_connecting(target: str, address: str) -> None:
    transport = httpx.MockTransport(never_called)
    with pytest.raises(FetchRefused, match=f"resolves to {address}, which is not a public"):
        fetch(target, allow=AllowList(), transport=transport)


def test_every_resolved_address_must_be_permitted(fake_dns: Any) -> None:
    fake_dns("mixed.example", ["93.184.216.34", "10.0.0.7"])
    transport = httpx.MockTransport(never_called)
    with pytest.raises(FetchRefused, match="resolves to 10.0.0.7"):
        fetch("http://mixed.example/data.csv", allow=AllowList(), transport=transport)


def test_unresolvable_host_is_a_fetch_error() -> None:
    with pytest.raises(FetchError, match="cannot resolve host 'nothing.invalid'"):
        fetch("http://nothing.invalid/x", transport=httpx.MockTransport(never_called))


# --- real fetches from the loopback server ---------------------------------------------


def test_loopback_is_refused_without_allow_list(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/data.csv").respond_with_data("id\n1\n")
    with pytest.raises(FetchRefused) as caught:
        fetch(url(httpserver, "/data.csv"), allow=AllowList())
    assert "resolves to 127.0.0.1, which is not a public address" in str(caught.value)
    assert "LOADBAY_FETCH_ALLOW" in str(caught.value)
    assert httpserver.log == []


def test_good_fetch_writes_exact_bytes(httpserver: HTTPServer) -> None:
    body = b"id,name\n1,\xc3\xa9t\xc3\xa9\n" * 1000
    httpserver.expect_request("/data.csv").respond_with_data(body, content_type="text/csv")
    result, written = fetch(url(httpserver, "/data.csv"), allow=AllowList.parse("127.0.0.1"))
    assert written == body
    assert result == FetchResult(len(body), "text/csv", url(httpserver, "/data.csv"))
    request = httpserver.log[0][0]
    assert request.headers["Host"] == f"127.0.0.1:{httpserver.port}"


def test_cidr_allow_entry(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_data("ok")
    result, written = fetch(url(httpserver, "/x"), allow=AllowList.parse("10.0.0.0/8 127.0.0.0/8"))
    assert (written, result.size) == (b"ok", 2)


def test_hostname_allow_entry_pins_the_checked_address(httpserver: HTTPServer, fake_dns: Any) -> None:
    lookups = fake_dns("files.internal", ["127.0.0.1"])
    httpserver.expect_request("/data.csv").respond_with_data("id\n1\n")
    target = f"http://files.internal:{httpserver.port}/data.csv"
    with pytest.raises(FetchRefused, match="resolves to 127.0.0.1"):
        fetch(target, allow=AllowList())
    transport = LoopbackOnly()
    result, written = fetch(target, allow=AllowList.parse("files.internal"), transport=transport)
    assert written == b"id\n1\n"
    assert result.final_url == target
    # Resolved once per attempt, and the connection went to the checked IP, not the name.
    assert lookups == ["files.internal", "files.internal"]
    assert transport.hosts == ["127.0.0.1"]
    assert httpserver.log[0][0].headers["Host"] == f"files.internal:{httpserver.port}"


def test_falls_back_to_the_next_checked_address(httpserver: HTTPServer, fake_dns: Any) -> None:
    fake_dns("two.internal", ["127.0.0.2", "127.0.0.1"])  # nothing listens on 127.0.0.2
    httpserver.expect_request("/x").respond_with_data("ok")
    target = f"http://two.internal:{httpserver.port}/x"
    _, written = fetch(target, allow=AllowList.parse("127.0.0.0/8"), transport=LoopbackOnly())
    assert written == b"ok"


def test_https_keeps_host_and_sni_for_the_original_name(fake_dns: Any) -> None:
    fake_dns("files.example", ["93.184.216.34"])
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"ok", headers={"Content-Type": "text/plain"})

    result, written = fetch(
        "https://files.example/d.csv", allow=AllowList(), transport=httpx.MockTransport(answer)
    )
    assert written == b"ok"
    assert result.final_url == "https://files.example/d.csv"
    (request,) = seen
    assert str(request.url) == "https://93.184.216.34/d.csv"
    assert request.headers["Host"] == "files.example"
    assert request.extensions["sni_hostname"] == "files.example"


def test_not_found_is_a_fetch_error_naming_the_status(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/missing").respond_with_data("nope", status=404)
    with pytest.raises(FetchError, match="answered HTTP 404") as caught:
        fetch(url(httpserver, "/missing"))
    assert not isinstance(caught.value, FetchRefused)


def test_connection_refused_is_a_fetch_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match=f"GET http://127.0.0.1:{port}/x failed") as caught:
        fetch(f"http://127.0.0.1:{port}/x")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_timeout_is_a_fetch_error(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    with pytest.raises(FetchError, match="timed out") as caught:
        fetch(url(httpserver, "/slow"), timeout=0.2)
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


# --- redirects -------------------------------------------------------------------------


def test_relative_redirect_is_followed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/old").respond_with_data("", 302, {"Location": "/new"})
    httpserver.expect_request("/new").respond_with_data("moved", content_type="text/plain")
    result, written = fetch(url(httpserver, "/old"))
    assert written == b"moved"
    assert result.final_url == url(httpserver, "/new")


def test_redirect_to_metadata_address_is_refused_before_connecting(
    httpserver: HTTPServer,
) -> None:
    location = "http://169.254.169.254/latest/meta-data/"
    httpserver.expect_request("/go").respond_with_data("", 302, {"Location": location})
    transport = LoopbackOnly()
    with pytest.raises(FetchRefused, match="resolves to 169.254.169.254"):
        fetch(url(httpserver, "/go"), transport=transport)
    assert transport.hosts == ["127.0.0.1"]


def test_redirect_to_other_scheme_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/go").respond_with_data("", 301, {"Location": "file:///etc/passwd"})
    with pytest.raises(FetchRefused, match="scheme 'file'"):
        fetch(url(httpserver, "/go"), transport=LoopbackOnly())


def test_redirect_loop_is_a_fetch_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/loop").respond_with_data("", 307, {"Location": "/loop"})
    transport = LoopbackOnly()
    with pytest.raises(FetchError, match="redirected more than 3 times"):
        fetch(url(httpserver, "/loop"), max_redirects=3, transport=transport)
    assert len(transport.hosts) == 4


# --- how long a download may take ------------------------------------------------------

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\n"


def timed_fetch(target: str, timeout: float) -> tuple[pytest.ExceptionInfo[FetchError], float]:
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch(target, timeout=timeout)
    return caught, time.monotonic() - started


def test_a_dripped_head_times_out_at_the_timeout() -> None:
    """Each byte comes in 0.2 s, under the 1 s timeout; the head must come whole within it
    (it took ~34 s: each read alone was bounded)."""
    with dripping(pause=0.2) as server:
        caught, took = timed_fetch(server.answer(b"", HEAD + b"x" * 100), timeout=1)
    assert "timed out" in caught.value.message and isinstance(caught.value.__cause__, httpx.TimeoutException)
    assert 0.9 <= took < 1.6, took


def test_a_dripped_body_is_cut_off_as_too_slow() -> None:
    """After the head, a body must bring 64 KiB in every `timeout` seconds (it took ~20 s)."""
    with dripping(pause=0.2) as server:
        caught, took = timed_fetch(server.answer(HEAD, b"x" * 100), timeout=1)
    assert re.search(
        r"is too slow: [4-6] bytes came in 1 s, less than the 64 KiB \(65536 bytes\) a download must bring "
        r"every 1 s$",
        caught.value.message,
    )
    assert 0.9 <= took < 1.6, took


def test_a_body_that_keeps_its_pace_may_take_longer_than_the_timeout(httpserver: HTTPServer) -> None:
    def steady(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(6):
                time.sleep(0.1)
                yield b"z" * 70_000

        return Response(chunks(), content_type="text/plain")

    httpserver.expect_request("/steady").respond_with_handler(steady)
    result, body = fetch(url(httpserver, "/steady"), timeout=0.25)
    assert result.size == 420_000 and body == b"z" * 420_000


# --- size limit ------------------------------------------------------------------------


def test_body_exactly_at_the_limit_is_accepted(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_data(b"a" * 1000)
    result, _ = fetch(url(httpserver, "/x"), max_bytes=1000)
    assert result.size == 1000


def test_declared_content_length_over_limit_is_refused_early(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data(b"a" * 5000)
    sink = io.BytesIO()
    with pytest.raises(PayloadTooLarge, match=r"4\.9 KiB \(5000 bytes\), over the limit of 1000 bytes"):
        fetch_to(url(httpserver, "/big"), sink, allow=LOOPBACK, max_bytes=1000)
    assert sink.getvalue() == b""


def test_streamed_body_over_limit_is_refused(httpserver: HTTPServer) -> None:
    def stream(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(200):
                yield b"b" * 1000

        return Response(chunks(), content_type="text/plain")

    httpserver.expect_request("/stream").respond_with_handler(stream)
    sink = io.BytesIO()
    with pytest.raises(PayloadTooLarge, match=r"over the limit of 4\.9 KiB \(5000 bytes\)"):
        fetch_to(url(httpserver, "/stream"), sink, allow=LOOPBACK, max_bytes=5000)
    assert len(sink.getvalue()) <= 5000  # nothing past the limit is kept
    assert "Content-Length" not in httpserver.log[0][1].headers


# post (webhooks) ------------------------------------------------------------------------------


def test_post_sends_through_the_guard_and_follows_no_redirect(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data(
        "moved", status=302, headers={"Location": "/elsewhere"}
    )
    transport = LoopbackOnly()
    answer = post(
        httpserver.url_for("/hook"),
        b"{}",
        {"webhook-id": "msg_1"},
        allow=LOOPBACK,
        timeout=5,
        transport=transport,
    )
    assert (answer.status_code, answer.location, answer.excerpt) == (302, "/elsewhere", b"moved")
    assert transport.hosts == ["127.0.0.1"]  # one request: the redirect was not followed
    request, _ = httpserver.log[0]
    assert request.headers["webhook-id"] == "msg_1" and request.get_data() == b"{}"


def test_post_refuses_addresses_that_are_not_public() -> None:
    for url in (
        "http://10.0.0.1/hook",
        "http://127.0.0.1:9/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/",
    ):
        with pytest.raises(FetchRefused):
            post(
                url,
                b"{}",
                {},
                allow=AllowList(),
                timeout=1,
                transport=httpx.MockTransport(lambda r: httpx.Response(200)),
            )
        with pytest.raises(FetchRefused):
            check_url(url, AllowList())
    for url in (
        "http://2130706433/",
        "http://127.1:9000/",
        "http://0x7f000001/",
        "http://0/",
        "http://10.1/",
    ):
        with pytest.raises(FetchRefused, match="not a public address"):  # (as the resolver reads them)
            check_url(url, AllowList())
    check_url("https://hooks.example.com/x", AllowList())  # a name is checked when sent to
    check_url("http://127.0.0.1:9/hook", LOOPBACK)
    for url in ("ftp://example.com/x", "http://user:pw@example.com/", "https:///x"):
        with pytest.raises(FetchRefused):
            check_url(url, AllowList())


def test_post_keeps_only_the_first_bytes_of_the_answer(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("x" * 100_000)
    answer = post(httpserver.url_for("/hook"), b"{}", {}, allow=LOOPBACK, timeout=5, max_excerpt=10)
    assert (answer.status_code, answer.excerpt) == (200, b"x" * 10)
