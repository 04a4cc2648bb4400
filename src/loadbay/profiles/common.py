"""What every API profile needs: the service, the caller's key in the vendor's auth
style, and a sub-application of its own (so its error format stays its own)."""

from __future__ import annotations

import base64

from fastapi import FastAPI, Request

from loadbay.core.service import BatchService
from loadbay.domain.models import Account
from loadbay.errors import Unauthorized
from loadbay.http.auth import Authenticator, once_per_request, use_authenticator
from loadbay.http.bodies import LimitedRoute

__all__ = ["UnknownKey", "account_of", "caller", "profile_app", "profile_key", "service_of", "whole_number"]


def profile_app(title: str, service: BatchService, authenticate: Authenticator | None = None) -> FastAPI:
    """A sub-application mounted under the profile's prefix; its docs live at …/docs.
    Every request that may carry a body passes `authenticate` (default `account_of`) first."""
    app = FastAPI(title=f"loadbay {title} profile")
    app.router.route_class = LimitedRoute  # (before any route is added)
    app.state.service = service
    use_authenticator(app, authenticate or account_of)
    return app


def service_of(request: Request) -> BatchService:
    service: BatchService = request.app.state.service
    return service


def profile_key(request: Request) -> str | None:
    """The loadbay API key, in any of the seeds' styles: `X-Api-Key: KEY`,
    `Authorization: Basic KEY`, `Authorization: Basic base64(user:KEY)` or `Bearer KEY`."""
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
    key = profile_key(request)
    try:
        return service_of(request).authenticate(key)
    except Unauthorized as exc:
        raise (UnknownKey() if key else exc) from None


@once_per_request
def account_of(request: Request) -> Account:
    """The calling account (raises Unauthorized; each profile renders that its own way)."""
    return service_of(request).authenticate(profile_key(request))
