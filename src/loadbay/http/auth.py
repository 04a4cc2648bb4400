"""Who is calling, decided before a request's body is read.

Each app (the native API, each profile) names its authenticator with `use_authenticator`;
`LimitedRoute` runs it on every request that may carry a body, before reading a byte of
it, so a request without a valid key is answered 401 (or the profile's equivalent) after
its head alone. Routes whose signature is their credential (signed upload URLs) are marked
`@signed` and skip it. The account found is kept for the request, so the route's own
dependency or call finds it again without another lookup.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from loadbay.domain.models import Account

__all__ = [
    "Authenticator",
    "api_key",
    "authenticate_first",
    "authenticated",
    "is_signed",
    "once_per_request",
    "signed",
    "use_authenticator",
]

Authenticator = Callable[[Request], Account]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

_ACCOUNT = "loadbay.account"
_SIGNED = "__loadbay_signed__"


def once_per_request(authenticate: Authenticator) -> Authenticator:
    """`authenticate`, looked up once per request: later calls answer the same account."""

    @functools.wraps(authenticate)
    def cached(request: Request) -> Account:
        found: Account | None = request.scope.get(_ACCOUNT)
        if found is None:
            found = request.scope[_ACCOUNT] = authenticate(request)
        return found

    return cached


async def authenticated(request: Request, authenticate: Authenticator) -> Account:
    """`authenticate` of the request, from an async route dependency: the account already
    found for the request at once (the body-carrying ones were authenticated first), else
    looked up in the thread pool. FastAPI runs a sync dependency in the pool, a thread
    switch each; under load, each waits for the GIL."""
    found: Account | None = request.scope.get(_ACCOUNT)
    if found is not None:
        return found
    return await run_in_threadpool(authenticate, request)


def use_authenticator(app: FastAPI, authenticate: Authenticator) -> None:
    """Make `authenticate` the check every body-carrying request of `app` passes first."""
    app.state.authenticate = authenticate


def signed(endpoint: Endpoint) -> Endpoint:
    """Mark a route whose URL signature is the credential (it takes no API key)."""
    setattr(endpoint, _SIGNED, True)
    return endpoint


def is_signed(endpoint: Callable[..., Any]) -> bool:
    return bool(getattr(endpoint, _SIGNED, False))


async def authenticate_first(request: Request) -> None:
    """Run the app's authenticator (raising its error) unless the app has none."""
    authenticate: Authenticator | None = getattr(request.app.state, "authenticate", None)
    if authenticate is not None:
        await run_in_threadpool(authenticate, request)


def api_key(request: Request) -> str | None:
    """The caller's API key, in any style a client of loadbay or of a seed sends it:
    `X-Api-Key: KEY`, `Authorization: Bearer KEY`, `Authorization: Basic KEY` (Fusebill)
    or standard Basic, `base64(user:KEY)` (Click2Mail). None when there is none."""
    header = request.headers.get("x-api-key")
    if header and header.strip():
        return header.strip()
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        return _basic_password(value) or value
    return None


def _basic_password(value: str) -> str | None:
    """The password of a standard Basic credential, or None if `value` is not one."""
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except ValueError:  # binascii.Error, UnicodeDecodeError, or a value not in ASCII
        return None
    user, colon, password = decoded.partition(":")
    if not colon:
        return None
    return password or user
