"""Requests pinned to checked addresses: a URL is checked for its form, its host resolved and
every address checked, and the request sent to a checked address itself while it names the
URL's host in Host and TLS SNI, so nothing resolves the name again (DNS rebinding)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from loadbay.errors import FetchError, FetchRefused
from loadbay.fetcher.addresses import (
    HOSTNAME,
    AllowList,
    IPAddress,
    is_public_address,
    literal_address,
    resolve,
)
from loadbay.fetcher.deadline import Deadline

__all__ = ["Message", "checked_url", "client", "network_errors", "permitted_addresses", "send_pinned"]

SCHEMES = {"http": 80, "https": 443}


def checked_url(text: str) -> httpx.URL:
    """Parse `text` and refuse anything but a plain http(s) URL with a well-formed host and
    port and no credentials (FetchRefused, saying what is wrong)."""
    try:
        url = httpx.URL(text)
        host = url.host  # (decodes an xn-- label: idna.IDNAError, a UnicodeError, if malformed)
    except (httpx.InvalidURL, TypeError, UnicodeError) as exc:
        raise FetchRefused(f"{text!r} is not a valid URL: {exc}") from exc
    if url.scheme not in SCHEMES:
        problem = f"uses scheme {url.scheme!r}" if url.scheme else "has no scheme"
        raise FetchRefused(f"{text!r} {problem}; only http:// and https:// URLs are fetched")
    if not host:
        raise FetchRefused(f"{text!r} has no host name")
    if url.userinfo:
        raise FetchRefused(f"{text!r} contains credentials (user:password@); remove them")
    if not _well_formed_host(url.raw_host.decode("ascii")):
        raise FetchRefused(f"{text!r} is not a valid URL: {host!r} is not a host name or IP address")
    if url.port is not None and not 0 < url.port < 65536:
        raise FetchRefused(f"{text!r} is not a valid URL: port {url.port} is not 1 to 65535")
    return url


def _well_formed_host(host: str) -> bool:
    """An IP address, or a DNS name: letters, digits, `-` and `_` in labels of 1 to 63
    characters, 253 in all."""
    if literal_address(host) is not None:
        return True
    name = host.lower().removesuffix(".")
    return (
        bool(HOSTNAME.match(name)) and len(name) <= 253 and all(len(label) <= 63 for label in name.split("."))
    )


def permitted_addresses(
    url: httpx.URL, allow: AllowList, deadline: Deadline | None = None
) -> list[IPAddress]:
    """Resolve the URL's host and refuse it unless every address may be reached."""
    host = url.raw_host.decode("ascii")
    addresses = resolve(host, url.port or SCHEMES[url.scheme], deadline)
    for address in addresses:
        if not (is_public_address(address) or allow.permits(host, address)):
            raise FetchRefused(
                f"{url} resolves to {address}, which is not a public address; "
                "add it to LOADBAY_FETCH_ALLOW to permit it"
            )
    return addresses


@dataclass(frozen=True)
class Message:
    """What a pinned request sends besides its URL: a GET by default."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None


def client(timeout: float, transport: httpx.BaseTransport) -> httpx.Client:
    """A client that follows no redirect and ignores proxies from the environment."""
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)


def _pinned_request(
    client: httpx.Client, url: httpx.URL, address: IPAddress, message: Message
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


def send_pinned(
    client: httpx.Client, url: httpx.URL, addresses: list[IPAddress], message: Message = Message()
) -> httpx.Response:
    """Send to the first checked address that accepts a connection; the answer is streamed."""
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
    assert failure is not None  # resolve never returns an empty list
    raise failure


@contextmanager
def network_errors(url: httpx.URL, method: str = "GET") -> Iterator[None]:
    """Turn httpx's transport errors into FetchError naming the URL and the reason."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise FetchError(f"{method} {url} timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"{method} {url} failed: {exc or type(exc).__name__}") from exc
