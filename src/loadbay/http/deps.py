"""FastAPI dependencies: the service and the calling account."""

from __future__ import annotations

from fastapi import Request

from loadbay.core.service import BatchService
from loadbay.domain.models import Account
from loadbay.http.auth import api_key, once_per_request

__all__ = ["current_account", "service_of", "the_service"]


def service_of(request: Request) -> BatchService:
    service: BatchService = request.app.state.service
    return service


async def the_service(request: Request) -> BatchService:
    """`service_of` as a route dependency (async: FastAPI runs a sync one in the thread pool)."""
    return service_of(request)


@once_per_request
def current_account(request: Request) -> Account:
    return service_of(request).authenticate(api_key(request))
