"""The local-filesystem blob store: one directory (shared by every process that uses it)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

from loadbay.blobs.port import BlobWriter, ObjectInfo
from loadbay.blobs.signing import UrlSigner
from loadbay.errors import NotFound

__all__ = ["LocalBlobStore"]


class _LocalWriter:
    def __init__(self, final: Path) -> None:
        self._final = final
        self._tmp = final.with_name(f".{uuid.uuid4().hex}.part")  # short: the final name may be long
        final.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._tmp.open("wb")
        self._size = 0

    def write(self, data: bytes) -> int:
        self._size += len(data)
        return self._file.write(data)

    def commit(self) -> int:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self._final)
        return self._size

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class LocalBlobStore:
    """Blobs as files under one directory; writes land whole or not at all. Its signed URLs
    point at loadbay's own /v1/blobs routes, which check them with `verify`."""

    def __init__(self, root: Path, signer: UrlSigner) -> None:
        self.root = root
        self.signer = signer
        self.location = f"file://{root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise NotFound("no such object")
        return path

    def writer(self, key: str, content_type: str | None = None) -> BlobWriter:
        return _LocalWriter(self._path(key))

    def open(self, key: str, etag: str | None = None) -> BinaryIO:
        """The file (`etag` is not checked: a local upload URL takes no file once its batch
        has left `open`, so a file read is the one that was submitted)."""
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"no such object: {key}") from None

    def head(self, key: str) -> ObjectInfo:
        try:
            return ObjectInfo(size=self._path(key).stat().st_size)
        except FileNotFoundError:
            raise NotFound(f"no such object: {key}") from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def signed_url(self, key: str, method: str, expires_in: int, download_name: str | None = None) -> str:
        return self.signer.url(key, method, expires_in)

    def verify(self, key: str, method: str, expires: str, signature: str) -> None:
        self.signer.verify(method, key, expires, signature)
