"""The blob store port: what the core asks of the place files live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Protocol

__all__ = ["BlobStore", "BlobWriter", "ObjectInfo"]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What the store knows of one object."""

    size: int
    content_type: str | None = None  # as its uploader sent it (None: not said)
    etag: str | None = None  # its version: `open(key, etag)` refuses another one


class BlobWriter(Protocol):
    """An object being written: it appears whole at `commit`, or not at all."""

    def write(self, data: bytes) -> int: ...
    def commit(self) -> int: ...
    def abort(self) -> None: ...


class BlobStore(Protocol):
    """Where files live: uploads, fetched sources, attachments, result files.

    Missing objects raise NotFound; a store that cannot be reached (or refuses loadbay's
    credentials) raises StoreUnavailable, which the workers treat as an interruption."""

    location: str  # where it is, for operators' messages (never holds a secret)

    def writer(self, key: str, content_type: str | None = None) -> BlobWriter: ...
    def open(self, key: str, etag: str | None = None) -> BinaryIO: ...
    def head(self, key: str) -> ObjectInfo: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def signed_url(self, key: str, method: str, expires_in: int, download_name: str | None = None) -> str: ...
    def verify(self, key: str, method: str, expires: str, signature: str) -> None: ...
