"""FastAPI dependencies: the service and the calling account."""

from __future__ import annotations

from fastapi import Request

from loadbay.core.service import BatchService
from loadbay.domain.models import Account
from loadbay.http.auth import api_key, once_per_request

__all__ = ["current_account", "service_of"]


def service_of(request: Request) -> BatchService:
    service: BatchService = request.app.state.service
    return service


@once_per_request
def current_account(request: Request) -> Account:
    return service_of(request).authenticate(api_key(request))
