"""FastAPI dependencies: the service and the calling account."""

from __future__ import annotations

from fastapi import Request

from loadbay.core.service import BatchService
from loadbay.domain.models import Account
from loadbay.http.auth import once_per_request

__all__ = ["api_key", "current_account", "service_of"]


def service_of(request: Request) -> BatchService:
    service: BatchService = request.app.state.service
    return service


def api_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer KEY`, `Authorization: Basic KEY` or `X-Api-Key`."""
    header = request.headers.get("x-api-key")
    if header:
        return header.strip()
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


@once_per_request
def current_account(request: Request) -> Account:
    return service_of(request).authenticate(api_key(request))
