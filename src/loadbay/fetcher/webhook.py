"""Sending a webhook through the guard (see `loadbay.fetcher`), and checking its URL when an
endpoint is made or changed."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from loadbay.errors import FetchRefused
from loadbay.fetcher.addresses import AllowList, is_public_address, literal_address
from loadbay.fetcher.deadline import Deadline, DeadlineTransport
from loadbay.fetcher.pinned import (
    Message,
    checked_url,
    client,
    network_errors,
    permitted_addresses,
    send_pinned,
)

__all__ = ["Answer", "check_url", "post"]


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
    checked = checked_url(url)
    host = checked.raw_host.decode("ascii")
    address = literal_address(host)
    if address is None:
        return
    if not (is_public_address(address) or allow.permits(host, address)):
        raise FetchRefused(
            f"{url} is at {address}, which is not a public address; "
            "add it to LOADBAY_FETCH_ALLOW to permit it"
        )


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
    deadline = Deadline(timeout)
    current = checked_url(url)
    message = Message("POST", tuple(headers.items()), body)
    with client(timeout, transport or DeadlineTransport(deadline)) as http:
        addresses = permitted_addresses(current, allow, deadline)
        with network_errors(current, "POST"):
            response = send_pinned(http, current, addresses, message)
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
