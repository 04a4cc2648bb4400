"""Fetch a batch's `source_url`, and send webhooks, without becoming an SSRF proxy.

How a request stays on addresses loadbay may reach:

1. The URL must be `http` or `https`, with a well-formed host (a name or an IP address) and
   port, and no `user:password@` (`pinned.checked_url`).
2. The host is resolved once with `socket.getaddrinfo`. EVERY address it resolves to must
   be public (globally routable; IPv4 embedded in IPv6 — mapped, 6to4, NAT64 — is judged
   by its IPv4 address) or permitted by LOADBAY_FETCH_ALLOW (`AllowList`). One bad
   address refuses the whole URL (`addresses`).
3. DNS rebinding is defeated by pinning: the request is sent to the checked IP itself
   (`http://203.0.113.7:443/...`), never to the name, so nothing re-resolves it. The
   `Host` header keeps the original host, and for https the TLS SNI name and the
   certificate check use the original host too (httpcore's `sni_hostname` extension
   becomes `server_hostname`, which the default SSL context verifies). Proxies from the
   environment are ignored (`trust_env=False`) and connections are not kept alive, so a
   TLS session verified for one host is never reused for another on the same IP (`pinned`).
4. Every network step is held to a deadline (`deadline.DeadlineTransport`), so a server
   that answers a byte at a time cannot hold a worker: resolving the host, connecting, TLS,
   sending, and the answer's status line and headers.

`fetch_to` (`download`) follows redirects by hand, at most `max_redirects`, each new location
going through steps 1-4 again before anything connects to it. Each answer's head must come
within `timeout`; its body streams into the sink and must bring at least
MIN_BYTES_PER_TIMEOUT in every `timeout` seconds; more than `max_bytes` raises
`PayloadTooLarge` at once (or before reading, when Content-Length already says so).

`post` (`webhook`) follows no redirect (a redirect is an answer like any other) and reads at
most the first bytes of the answer; its `timeout` is a deadline for the whole attempt,
the first bytes of the answer included. `check_url` checks a webhook URL when an endpoint is
made or changed, as far as can be told without resolving its host.
"""

from loadbay.fetcher.addresses import AllowList, is_public_address
from loadbay.fetcher.download import FetchResult, fetch_to
from loadbay.fetcher.pinned import checked_url
from loadbay.fetcher.webhook import Answer, check_url, post

__all__ = [
    "AllowList",
    "Answer",
    "FetchResult",
    "check_url",
    "checked_url",
    "fetch_to",
    "is_public_address",
    "post",
]
