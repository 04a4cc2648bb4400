"""What every API profile needs: the service, the caller's key in the vendor's auth
style, and a sub-application of its own (so its error format stays its own)."""

from __future__ import annotations

from fastapi import FastAPI, Request

from loadbay.core.service import BatchService
from loadbay.domain.models import Account
from loadbay.errors import Unauthorized
from loadbay.http.auth import Authenticator, api_key, once_per_request, use_authenticator
from loadbay.http.bodies import LimitedRoute
from loadbay.http.deps import service_of

__all__ = ["UnknownKey", "account_of", "caller", "profile_app", "service_of", "whole_number"]


def profile_app(
    title: str, service: BatchService, *, key_style: str, authenticate: Authenticator | None = None
) -> FastAPI:
    """A sub-application mounted under the profile's prefix; its docs live at …/docs.
    Every request that may carry a body passes `authenticate` (default `account_of`) first.
    `key_style`: how the vendor's document sends the key, named when a request has none."""
    app = FastAPI(title=f"loadbay {title} profile")
    app.router.route_class = LimitedRoute  # (before any route is added)
    app.state.service = service
    app.state.key_style = key_style
    use_authenticator(app, authenticate or account_of)
    return app


def whole_number(text: str, below: int = 2**63) -> int | None:
    """`text` as a whole number from 0 up to `below` (excluded), or None: ASCII digits only
    (not `²`, `١`, `+1` or `1_0`), and no int() of thousands of digits."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(below)):
        return None
    number = int(digits)
    return number if number < below else None


class UnknownKey(Unauthorized):
    """This API key is not known here. Check the key you send."""

    code = "FORBIDDEN"


@once_per_request
def caller(request: Request) -> Account:
    """The calling account. No key is Unauthorized (401); a key this server does not know
    is UnknownKey (the profiles that tell the two apart answer 403)."""
    key = api_key(request)
    if not key:
        raise _missing(request)
    try:
        return service_of(request).authenticate(key)
    except Unauthorized:
        raise UnknownKey() from None


@once_per_request
def account_of(request: Request) -> Account:
    """The calling account; Unauthorized without a key or with an unknown one (each profile
    renders that its own way)."""
    key = api_key(request)
    if not key:
        raise _missing(request)
    try:
        return service_of(request).authenticate(key)
    except Unauthorized:
        raise Unauthorized(
            f"Unknown API key. Send your loadbay API key as {request.app.state.key_style}."
        ) from None


def _missing(request: Request) -> Unauthorized:
    return Unauthorized(f"No API key. Send your loadbay API key as {request.app.state.key_style}.")
