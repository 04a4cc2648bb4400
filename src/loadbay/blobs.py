"""The blob store port, its local-filesystem adapter, and signed URLs.

A signed URL carries an HMAC over (method, object key, expiry). On the local
store loadbay serves those URLs itself; an S3 adapter would answer
`signed_url` with a presigned S3 URL instead, which is why the port has it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote, urlencode

from loadbay.errors import BadSignature, NotFound

__all__ = ["BlobStore", "BlobWriter", "LocalBlobStore", "UrlSigner"]


class BlobWriter(Protocol):
    def write(self, data: bytes) -> int: ...
    def commit(self) -> int: ...
    def abort(self) -> None: ...


class BlobStore(Protocol):
    """Where files live: uploads, fetched sources, results."""

    def writer(self, key: str) -> BlobWriter: ...
    def open(self, key: str) -> BinaryIO: ...
    def size(self, key: str) -> int: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def signed_url(self, key: str, method: str, expires_in: int) -> str: ...
    def verify(self, key: str, method: str, expires: str, signature: str) -> None: ...


class UrlSigner:
    """HMAC-SHA256 signatures bound to one method, one object and an expiry."""

    def __init__(self, secret: bytes, base_url: str) -> None:
        self._secret = secret
        self.base_url = base_url.rstrip("/")

    def url(self, key: str, method: str, expires_in: int) -> str:
        expires = int(time.time()) + expires_in
        query = urlencode(
            {"method": method, "expires": expires, "signature": self.sign(method, key, expires)}
        )
        return f"{self.base_url}/v1/blobs/{quote(key)}?{query}"

    def sign(self, method: str, key: str, expires: int) -> str:
        message = f"{method.upper()}\n{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, method: str, key: str, expires: str, signature: str, now: float | None = None) -> None:
        """Raise BadSignature unless the signature is valid for this method, key and time."""
        try:
            expiry = int(expires)
        except ValueError:
            raise BadSignature("signed URL has no valid expiry") from None
        expected = self.sign(method, key, expiry)
        if not hmac.compare_digest(expected, signature):
            raise BadSignature("signature does not match this method and object")
        if (now if now is not None else time.time()) > expiry:
            raise BadSignature("signed URL has expired; ask for a new one")


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
    """Blobs as files under one directory; writes land whole or not at all."""

    def __init__(self, root: Path, signer: UrlSigner) -> None:
        self.root = root
        self.signer = signer

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise NotFound("no such object")
        return path

    def writer(self, key: str) -> BlobWriter:
        return _LocalWriter(self._path(key))

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise NotFound(f"no such object: {key}") from None

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def signed_url(self, key: str, method: str, expires_in: int) -> str:
        return self.signer.url(key, method, expires_in)

    def verify(self, key: str, method: str, expires: str, signature: str) -> None:
        self.signer.verify(method, key, expires, signature)
