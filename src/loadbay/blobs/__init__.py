"""The blob store: the port the core uses, and its adapters (a local directory, or S3).

    port.py      BlobStore, BlobWriter, ObjectInfo: what the core asks of a store
    local.py     LocalBlobStore: files under one directory; its signed URLs are loadbay's own
    signing.py   UrlSigner: HMAC-signed URLs that loadbay serves itself (the local store's)
    s3.py        S3BlobStore: S3 or a store that speaks its API; presigned URLs (boto3)

`open_store` picks the adapter from LOADBAY_STORAGE_URL; the core never asks which.
"""

from __future__ import annotations

from loadbay.blobs.local import LocalBlobStore
from loadbay.blobs.port import BlobStore, BlobWriter, ObjectInfo
from loadbay.blobs.signing import UrlSigner
from loadbay.config import Settings

__all__ = ["BlobStore", "BlobWriter", "LocalBlobStore", "ObjectInfo", "UrlSigner", "open_store"]


def open_store(settings: Settings, signer: UrlSigner) -> BlobStore:
    """The store LOADBAY_STORAGE_URL names: `s3://bucket/prefix`, else a local directory."""
    if settings.storage_url and settings.storage_url.startswith("s3://"):
        from loadbay.blobs.s3 import S3BlobStore  # boto3 is imported only by those who use S3

        return S3BlobStore.from_url(settings.storage_url)
    return LocalBlobStore(settings.resolved_storage_dir(), signer)
