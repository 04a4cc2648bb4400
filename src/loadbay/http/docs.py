"""The API documentation pages, and the API key schemes the OpenAPI document names.

`/docs` (Swagger UI) and `/redoc` (ReDoc) load their scripts, styles and icon from this
server: fastapi-offline ships those files inside its Python package, so the pages work on a
machine with no network at all (FastAPI's own pages fetch them from a CDN). Their
Content-Security-Policy lets them load nothing from anywhere else either (ReDoc's sidebar
would fetch Redocly's logo from Redocly's CDN). The native API and every profile build their
app with `documented_app`; a mounted app's pages are under its prefix (`/compat/ebill/docs`).

`keyed` makes an authenticator a dependency that the OpenAPI document shows as two
security schemes, `Authorization: Bearer KEY` and `X-Api-Key: KEY` (either one), so Swagger
UI's Authorize button sends the key with "Try it out".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Request, Security
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from loadbay.domain.models import Account
from loadbay.http.auth import Authenticator, authenticated

__all__ = ["API_KEY", "BEARER", "DOCS_ASSETS", "PAGE_POLICY", "documented_app", "keyed"]

DOCS_ASSETS = "/docs-assets"  # where the pages' scripts, styles and icon are served (under each app)
_FILES = resources.files("fastapi_offline") / "static"  # Swagger UI, ReDoc and an icon

# The pages run their own inline start-up script and styles, fetch the document, and ReDoc
# runs its search in a worker made from a blob: nothing else, and nothing from elsewhere.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)

# Swagger UI's settings: "Try it out" open on every operation (the key is what the reader
# brings), request durations shown, and no online validator (its badge is an external image).
_SWAGGER_UI = {"tryItOutEnabled": True, "displayRequestDuration": True, "validatorUrl": None}

BEARER = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="API key",
    description="Your loadbay API key as `Authorization: Bearer KEY`.",
    auto_error=False,
)
API_KEY = APIKeyHeader(
    name="X-Api-Key",
    scheme_name="apiKey",
    description="Your loadbay API key as `X-Api-Key: KEY`.",
    auto_error=False,
)


def documented_app(title: str, **settings: Any) -> FastAPI:
    """A FastAPI app whose /docs and /redoc pages take everything they load from this
    server. `settings` go to FastAPI as they are."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, **settings)
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(_FILES)), name="docs-assets")
    app.add_api_route("/docs", _swagger_ui, include_in_schema=False)
    app.add_api_route("/redoc", _redoc, include_in_schema=False)
    return app


async def _swagger_ui(request: Request) -> HTMLResponse:
    app, root = request.app, request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=root + app.openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        oauth2_redirect_url=None,
        swagger_ui_parameters=_SWAGGER_UI,
    )
    return _confined(page)


async def _redoc(request: Request) -> HTMLResponse:
    app, root = request.app, request.scope.get("root_path", "")
    page = get_redoc_html(
        openapi_url=root + app.openapi_url,
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        with_google_fonts=False,
    )
    return _confined(page)


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = PAGE_POLICY
    return page


def keyed(authenticate: Authenticator) -> Callable[..., Awaitable[Account]]:
    """`authenticate` as a route dependency whose operations the OpenAPI document marks as
    taking the API key (Bearer or X-Api-Key). The key is still read, and refused, by
    `authenticate` alone: the schemes only describe it."""

    async def caller(
        request: Request,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
        _api_key: Annotated[str | None, Security(API_KEY)],
    ) -> Account:
        return await authenticated(request, authenticate)

    return caller
