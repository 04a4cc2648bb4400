"""What every API profile needs: the service, the caller's key in the vendor's auth
style, and a sub-application of its own (so its error format stays its own)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastapi import FastAPI, Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from loadbay.core.service import BatchService
from loadbay.domain.models import Account
from loadbay.errors import Unauthorized
from loadbay.http.auth import Authenticator, api_key, once_per_request, use_authenticator
from loadbay.http.bodies import LimitedRoute
from loadbay.http.deps import service_of, the_service
from loadbay.http.docs import documented_app

__all__ = [
    "UnknownKey",
    "account_of",
    "allowed_methods",
    "any_case_paths",
    "caller",
    "profile_app",
    "service_of",
    "the_service",
    "whole_number",
]


def profile_app(
    title: str, service: BatchService, *, key_style: str, authenticate: Authenticator | None = None
) -> FastAPI:
    """A sub-application mounted under the profile's prefix; its docs live at …/docs.
    Every request that may carry a body passes `authenticate` (default `account_of`) first.
    `key_style`: how the vendor's document sends the key, named when a request has none."""
    app = documented_app(f"loadbay {title} profile")  # its /docs and /redoc work offline
    app.router.route_class = LimitedRoute  # (before any route is added)
    app.state.service = service
    app.state.key_style = key_style
    use_authenticator(app, authenticate or account_of)
    return app


def any_case_paths(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """The profile's `routes` match their paths in any letter case, as ASP.NET's do
    (`/v1/bulkapi/process` is `/v1/BulkApi/Process`): each request's path is respelt as the
    first of `routes` that matches it in any case spells it, path parameters as sent. Only
    the profile's paths: the prefix it is mounted under, and the native API, stay as they are.
    `routes` are also what `allowed_methods` reads. (Pass the routes themselves, e.g. an
    APIRouter's: the app's own list holds an included router as one opaque entry.)"""
    app.state.vendor_routes = list(routes)
    app.add_middleware(_AnyCasePaths)


class _AnyCasePaths:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            root, path = _split(scope)
            spelt = _respelt(scope["app"].state.vendor_routes, path)
            if spelt != path:
                scope = dict(scope, path=root + spelt)
        await self.app(scope, receive, send)


def _split(scope: Scope) -> tuple[str, str]:
    """(the mount's prefix, the path under it) of a request's path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return root, path[len(root) :]
    return "", path


def _respelt(routes: Sequence[BaseRoute], path: str) -> str:
    """`path` spelt as the first route matching it in any letter case spells its literal parts.
    Routes listed first win, so a profile lists literal segments before parameters, as ASP.NET
    ranks them: `/v1/BulkApi/process` is Process, not the job `process`. A trailing slash is
    dropped when only the path without it matches: ASP.NET's routing ignores it."""
    tries = [path] + ([path[:-1]] if len(path) > 1 and path.endswith("/") else [])
    for stem in tries:
        for route in routes:
            regex, spelling = getattr(route, "path_regex", None), getattr(route, "path_format", None)
            if regex is None or spelling is None:
                continue
            found = re.match(regex.pattern, stem, re.IGNORECASE | re.ASCII)
            if found:
                return str(spelling.format(**found.groupdict()))
    return path


def allowed_methods(request: Request) -> str:
    """The `Allow` header of a 405: the methods of every route given to `any_case_paths` that
    matches the path (Starlette names only the first such route's)."""
    _root, path = _split(request.scope)
    methods: set[str] = set()
    for route in request.app.state.vendor_routes:
        if (regex := getattr(route, "path_regex", None)) and regex.match(path):
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


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
    return _account(request, UnknownKey())


@once_per_request
def account_of(request: Request) -> Account:
    """The calling account; Unauthorized without a key or with an unknown one (each profile
    renders that its own way)."""
    return _account(request, Unauthorized(f"Unknown API key. {_how(request)}"))


def _account(request: Request, unknown: Unauthorized) -> Account:
    """The account of the request's key: Unauthorized naming the profile's key style when
    it has none, `unknown` when the key is not one of this server's."""
    key = api_key(request)
    if not key:
        raise Unauthorized(f"No API key. {_how(request)}")
    try:
        return service_of(request).authenticate(key)
    except Unauthorized:
        raise unknown from None


def _how(request: Request) -> str:
    return f"Send your loadbay API key as {request.app.state.key_style}."
