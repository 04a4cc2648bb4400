"""Fetch a batch's `source_url` without becoming an SSRF proxy.

How a fetch stays on addresses loadbay may reach:

1. The URL must be `http` or `https`, have a host, and carry no `user:password@`.
2. The host is resolved once with `socket.getaddrinfo`. EVERY address it resolves to must
   be public (globally routable; IPv4 embedded in IPv6 — mapped, 6to4, NAT64 — is judged
   by its IPv4 address) or permitted by LOADBAY_FETCH_ALLOW (`AllowList`). One bad
   address refuses the whole URL.
3. DNS rebinding is defeated by pinning: the request is sent to the checked IP itself
   (`http://203.0.113.7:443/...`), never to the name, so nothing re-resolves it. The
   `Host` header keeps the original host, and for https the TLS SNI name and the
   certificate check use the original host too (httpcore's `sni_hostname` extension
   becomes `server_hostname`, which the default SSL context verifies). Proxies from the
   environment are ignored (`trust_env=False`) and connections are not kept alive, so a
   TLS session verified for one host is never reused for another on the same IP.
4. Redirects are followed by hand, at most `max_redirects`, and each new location goes
   through steps 1-3 again before anything connects to it.
5. The body streams into the sink; more than `max_bytes` raises `PayloadTooLarge` at once
   (or before reading, when Content-Length already says so).

`timeout` bounds each network operation (connect, each read), not the whole download.

`post` sends a webhook through the same steps 1-3; it follows no redirect (a redirect is an
answer like any other) and reads at most the first bytes of the answer. Its `timeout` is a
deadline for the whole attempt: resolving the host (`getaddrinfo`, in a thread it stops
waiting for), connecting, TLS, sending, and reading the status line, headers and excerpt
(`_DeadlineBackend`: each network operation waits at most until the deadline), so a receiver
that drips its answer byte by byte cannot hold a worker past it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import httpcore
import httpx

from loadbay.domain.text import byte_size
from loadbay.errors import FetchError, FetchRefused, PayloadTooLarge

__all__ = ["AllowList", "Answer", "FetchResult", "check_url", "fetch_to", "is_public_address", "post"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = {"http": 80, "https": 443}
_REDIRECTS = {301, 302, 303, 307, 308}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")


@dataclass(frozen=True)
class FetchResult:
    """What `fetch_to` wrote: byte count, the final response's Content-Type, the final URL."""

    size: int
    content_type: str | None
    final_url: str


@dataclass(frozen=True)
class AllowList:
    """Hosts and IP networks that may be fetched even though they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowList:
        """Read LOADBAY_FETCH_ALLOW: host names, IPs and CIDRs separated by commas or spaces."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in re.split(r"[,\s]+", text.strip()):
            if entry:
                _add_entry(entry, hosts, networks)
        return cls(frozenset(hosts), tuple(networks))

    def permits(self, host: str, address: IPAddress) -> bool:
        """True if `host` is listed by name or `address` lies in a listed IP/CIDR."""
        if _normalize_host(host) in self.hosts:
            return True
        return any(a in net for a in _with_embedded(address) for net in self.networks)


def _add_entry(entry: str, hosts: set[str], networks: list[IPNetwork]) -> None:
    try:
        networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        return
    except ValueError:
        pass
    host = _normalize_host(entry)
    if not _HOSTNAME.match(host):
        raise ValueError(f"LOADBAY_FETCH_ALLOW entry {entry!r} is neither a host name nor an IP address/CIDR")
    hosts.add(host)


def _normalize_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _with_embedded(address: IPAddress) -> list[IPAddress]:
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    return [address] if embedded is None else [address, embedded]


def _is_plainly_global(address: IPAddress) -> bool:
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_link_local
        or address.is_loopback
        or address.is_private
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)  # (fec0::/10)
    )


def is_public_address(address: IPAddress) -> bool:
    """True if `address` is globally routable, and so is any IPv4 address embedded in it."""
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if embedded is not None:
        return _is_plainly_global(embedded)
    return _is_plainly_global(address)


def _checked_url(text: str) -> httpx.URL:
    """Parse `text` and refuse anything but a plain http(s) URL with a host."""
    try:
        url = httpx.URL(text)
        host = url.host  # (decodes an xn-- label: idna.IDNAError, a UnicodeError, if malformed)
    except (httpx.InvalidURL, TypeError, UnicodeError) as exc:
        raise FetchRefused(f"{text!r} is not a valid URL: {exc}") from exc
    if url.scheme not in _SCHEMES:
        problem = f"uses scheme {url.scheme!r}" if url.scheme else "has no scheme"
        raise FetchRefused(f"{text!r} {problem}; only http:// and https:// URLs are fetched")
    if not host:
        raise FetchRefused(f"{text!r} has no host name")
    if url.userinfo:
        raise FetchRefused(f"{text!r} contains credentials (user:password@); remove them")
    return url


_AddrInfo = list[tuple[Any, Any, Any, Any, Any]]


def _resolve(host: str, port: int, deadline: _Deadline | None = None) -> list[IPAddress]:
    """Every address `host` resolves to, in resolver order, without duplicates; FetchError
    once `deadline` has passed."""
    try:
        infos = _getaddrinfo(host, port) if deadline is None else _getaddrinfo_by(host, port, deadline)
    except (OSError, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host!r}: {exc}") from exc
    families = (socket.AF_INET, socket.AF_INET6)
    found = [ipaddress.ip_address(str(info[4][0])) for info in infos if info[0] in families]
    if not found:
        raise FetchError(f"host {host!r} resolves to no IP address")
    return list(dict.fromkeys(found))


def _getaddrinfo(host: str, port: int) -> _AddrInfo:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def _getaddrinfo_by(host: str, port: int, deadline: _Deadline) -> _AddrInfo:
    """`getaddrinfo`, which takes no timeout, in a daemon thread that is no longer waited for
    once `deadline` has passed (it ends when the resolver gives up)."""
    done = threading.Event()
    outcome: list[_AddrInfo] = []
    failure: list[BaseException] = []

    def look_up() -> None:
        try:
            outcome.append(_getaddrinfo(host, port))
        except BaseException as exc:  # (handed to the caller)
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=look_up, name=f"resolve {host}", daemon=True).start()
    if not done.wait(max(deadline.left(), 0.0)):
        raise FetchError(f"timed out resolving host {host!r}")
    if failure:
        raise failure[0]
    return outcome[0]


def _permitted_addresses(
    url: httpx.URL, allow: AllowList, deadline: _Deadline | None = None
) -> list[IPAddress]:
    """Resolve the URL's host and refuse it unless every address may be reached."""
    host = url.raw_host.decode("ascii")
    addresses = _resolve(host, url.port or _SCHEMES[url.scheme], deadline)
    for address in addresses:
        if not (is_public_address(address) or allow.permits(host, address)):
            raise FetchRefused(
                f"{url} resolves to {address}, which is not a public address; "
                "add it to LOADBAY_FETCH_ALLOW to permit it"
            )
    return addresses


@dataclass(frozen=True)
class _Message:
    """What a pinned request sends besides its URL: a GET by default."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None


def _pinned_request(
    client: httpx.Client, url: httpx.URL, address: IPAddress, message: _Message = _Message()
) -> httpx.Request:
    """A request to `address` itself that still names `url`'s host in Host and TLS SNI."""
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    return client.build_request(
        message.method,
        url.copy_with(host=str(address)),
        headers=[("Host", url.netloc.decode("ascii")), ("Accept-Encoding", "identity"), *message.headers],
        content=message.content,
        extensions=extensions,
    )


def _send_pinned(
    client: httpx.Client, url: httpx.URL, addresses: list[IPAddress], message: _Message = _Message()
) -> httpx.Response:
    """Send to the first checked address that accepts a connection."""
    failure: httpx.ConnectError | None = None
    for address in addresses:
        try:
            return client.send(_pinned_request(client, url, address, message), stream=True)
        except httpx.ConnectError as exc:
            failure = exc
        except UnicodeError as exc:
            # httpx builds a redirect's next request even when it is not followed: a Location
            # with a malformed xn-- host name raises idna.IDNAError (and closes the answer)
            raise httpx.RemoteProtocolError(
                f"the answer's Location has a malformed host name: {exc}"
            ) from exc
    assert failure is not None  # _resolve never returns an empty list
    raise failure


@contextmanager
def _network_errors(url: httpx.URL, method: str = "GET") -> Iterator[None]:
    """Turn httpx's transport errors into FetchError naming the URL and the reason."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise FetchError(f"{method} {url} timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"{method} {url} failed: {exc or type(exc).__name__}") from exc


def _redirect_target(response: httpx.Response, url: httpx.URL) -> httpx.URL | None:
    """The checked next URL if `response` is a redirect, else None."""
    location = response.headers.get("location")
    if response.status_code not in _REDIRECTS or location is None:
        return None
    try:
        target = str(url.join(location))
    except httpx.InvalidURL as exc:
        raise FetchRefused(f"{url} redirected to an invalid URL {location!r}") from exc
    return _checked_url(target)


def _refuse_declared_size(response: httpx.Response, url: httpx.URL, max_bytes: int) -> None:
    declared = response.headers.get("content-length", "")
    encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
    if declared.isdigit() and int(declared) > max_bytes and not encoded:
        raise PayloadTooLarge(
            f"{url} is {byte_size(int(declared))}, over the limit of {byte_size(max_bytes)}"
        )


def _copy_body(response: httpx.Response, url: httpx.URL, sink: BinaryIO, max_bytes: int) -> int:
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"{url} is over the limit of {byte_size(max_bytes)}")
        sink.write(chunk)
    return size


def _save(response: httpx.Response, url: httpx.URL, sink: BinaryIO, max_bytes: int) -> FetchResult:
    """Check the final response and stream its body into `sink`."""
    if not response.is_success:
        raise FetchError(f"GET {url} answered HTTP {response.status_code}")
    _refuse_declared_size(response, url, max_bytes)
    with _network_errors(url):
        size = _copy_body(response, url, sink, max_bytes)
    content_type = response.headers.get("content-type")
    return FetchResult(size=size, content_type=content_type, final_url=str(url))


def _client(timeout: float, transport: httpx.BaseTransport | None) -> httpx.Client:
    if transport is None:
        transport = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)


def _open(client: httpx.Client, url: httpx.URL, allow: AllowList) -> httpx.Response:
    """Check `url`'s addresses, then send the GET to a checked one."""
    addresses = _permitted_addresses(url, allow)
    with _network_errors(url):
        return _send_pinned(client, url, addresses)


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

    Raises FetchRefused (bad URL or address), PayloadTooLarge (over `max_bytes`) or
    FetchError (unreachable, timeout, non-2xx answer, too many redirects). `transport`
    replaces httpx's network transport (a test seam); it is closed with the client.
    """
    current = _checked_url(url)
    with _client(timeout, transport) as client:
        for _ in range(max_redirects + 1):
            response = _open(client, current, allow)
            try:
                target = _redirect_target(response, current)
                if target is None:
                    return _save(response, current, sink, max_bytes)
            finally:
                response.close()
            current = target
    raise FetchError(f"GET {url} redirected more than {max_redirects} times")


# webhooks --------------------------------------------------------------------


class _Deadline:
    """A moment on the monotonic clock that a whole attempt must end by."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def bound(self, timeout: float | None, expired: type[Exception]) -> float:
        """`timeout`, cut to the time left; `expired` raised once there is none."""
        left = self.left()
        if left <= 0:
            raise expired("the attempt's deadline has passed")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every read and write waits at most until the deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = self._deadline.bound(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own (sync) network backend, with connects and streams held to the deadline."""

    def __init__(self, deadline: _Deadline) -> None:
        self._backend = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = self._deadline.bound(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, bounded, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("webhooks are sent over TCP only")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


# httpcore's errors as httpx's, the most specific first (what httpx.HTTPTransport does)
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, mapped in _HTTPX_ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise


class _AnswerStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _DeadlineTransport(httpx.BaseTransport):
    """What httpx.HTTPTransport does (as `_client` makes it: no keep-alive), over
    `_DeadlineBackend`: HTTPTransport cannot be given a network backend (httpx 0.29)."""

    def __init__(self, deadline: _Deadline) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_keepalive_connections=0,
            network_backend=_DeadlineBackend(deadline),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        url = httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        )
        sent = httpcore.Request(
            method=request.method,
            url=url,
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            answer = self._pool.handle_request(sent)
        assert isinstance(answer.stream, Iterable)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_AnswerStream(answer.stream),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        with _httpx_errors():
            self._pool.close()


@dataclass(frozen=True)
class Answer:
    """What a POST was answered: the status, the Location of a redirect, the body's first bytes."""

    status_code: int
    location: str | None
    excerpt: bytes


def check_url(url: str, allow: AllowList) -> None:
    """FetchRefused unless `url` is a plain http(s) URL that `post` could be allowed to reach,
    as far as can be told without resolving its host: a host that is an IP address must be
    public or permitted by `allow` (a name is checked when something is sent to it)."""
    checked = _checked_url(url)
    host = checked.raw_host.decode("ascii")
    address = _literal_address(host)
    if address is None:
        return
    if not (is_public_address(address) or allow.permits(host, address)):
        raise FetchRefused(
            f"{url} is at {address}, which is not a public address; "
            "add it to LOADBAY_FETCH_ALLOW to permit it"
        )


def _literal_address(host: str) -> IPAddress | None:
    """The IP address `host` is itself, in any form the resolver reads as one: IPv6 (in
    brackets), IPv4 dotted, or as `inet_aton` reads it (`127.1`, `2130706433`, `0x7f000001`);
    None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow: AllowList,
    timeout: float,
    max_excerpt: int = 1024,
    transport: httpx.BaseTransport | None = None,
) -> Answer:
    """POST `body` to `url`, refusing non-public addresses unless `allow` permits them (checked
    now, as `fetch_to` checks them). Whatever the answer (a redirect too: it is not followed),
    it is returned with its body's first `max_excerpt` bytes. Raises FetchRefused (bad URL or
    address) or FetchError (unreachable, timeout). `timeout` is a deadline for the whole
    attempt, from resolving the host to the excerpt's last byte; a `transport` given (a test
    seam) is held to it only while the host is resolved."""
    deadline = _Deadline(timeout)
    current = _checked_url(url)
    message = _Message("POST", tuple(headers.items()), body)
    with _client(timeout, transport or _DeadlineTransport(deadline)) as client:
        addresses = _permitted_addresses(current, allow, deadline)
        with _network_errors(current, "POST"):
            response = _send_pinned(client, current, addresses, message)
            try:
                excerpt = _first_bytes(response, max_excerpt)
            finally:
                response.close()
    return Answer(response.status_code, response.headers.get("location"), excerpt)


def _first_bytes(response: httpx.Response, limit: int) -> bytes:
    kept = b""
    for chunk in response.iter_raw():
        kept += chunk[: limit - len(kept)]
        if len(kept) >= limit:
            break
    return kept
