"""Signed URLs served by loadbay itself (the local store's upload and download URLs)."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

from loadbay.errors import BadSignature

__all__ = ["UrlSigner"]


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
        expected = self.sign(method, key, expiry).encode()
        # (bytes: compare_digest refuses a str that is not ASCII with a TypeError, a 500)
        if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
            raise BadSignature("signature does not match this method and object")
        if (now if now is not None else time.time()) > expiry:
            raise BadSignature("signed URL has expired; ask for a new one")
