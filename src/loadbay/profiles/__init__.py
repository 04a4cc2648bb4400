"""API profiles: each vendor's wire format over the one core.

A profile parses the vendor's request, calls BatchService, and renders the
vendor's answer and error format. It holds no business rule. Each profile is a
sub-application mounted under its prefix, so its error handlers are its own.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from loadbay.core.service import BatchService

ProfileBuilder = Callable[[BatchService], FastAPI]

__all__ = ["mount_profiles"]


def mount_profiles(app: FastAPI, service: BatchService) -> None:
    """Mount every profile this build ships (none of them imports another); the batches each
    creates record the profile's name as their origin."""
    for name, prefix, build in _profiles():
        app.mount(prefix, build(service.for_origin(name)))


def _profiles() -> list[tuple[str, str, ProfileBuilder]]:
    """(name, prefix, builder) of each profile; a profile module exposes PREFIX and
    build(service)."""
    from loadbay.profiles import alliant, centrapay, click2mail, ebill, fusebill

    return [
        ("centrapay", centrapay.PREFIX, centrapay.build),
        ("fusebill", fusebill.PREFIX, fusebill.build),
        ("click2mail", click2mail.PREFIX, click2mail.build),
        ("alliant", alliant.PREFIX, alliant.build),
        ("ebill", ebill.PREFIX, ebill.build),
    ]
