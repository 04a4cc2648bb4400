"""The blob store on S3, or an S3-compatible store (MinIO, Ceph, R2), through one kept
boto3 client configured the standard AWS way: the credential chain (environment, shared
files, an instance or task role), AWS_REGION, and AWS_ENDPOINT_URL for a store that is
not AWS.

Writes are a single PUT up to one part (8 MiB) and a multipart upload beyond, one part
in memory at a time, aborted on failure. Reads stream GetObject; when the connection
drops mid-read the reader goes on with a ranged GET from where it was, of the same
version of the object (If-Match its ETag). Signed URLs are presigned S3 URLs.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import HTTPError as Urllib3Error

from loadbay.blobs.port import BlobWriter, ObjectInfo
from loadbay.errors import BadSignature, FileChanged, NotFound, StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        CompletedMultipartUploadTypeDef,
        CompletedPartTypeDef,
        ObjectIdentifierTypeDef,
    )

__all__ = ["PART_SIZE", "S3BlobStore", "parse_s3_url", "s3_client"]

PART_SIZE = 8 * 1024**2  # a multipart upload's parts (S3 takes 5 MiB at least, but for the last)
_READ_BUFFER = 1024**2
_RESUMES = 5  # reconnections in a row that bring no byte before a read gives up
_DROPPED = (
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
    ConnectionClosedError,
    EndpointConnectionError,
    Urllib3Error,
    OSError,
)
_MISSING = {"404", "NoSuchKey", "NotFound"}
_S3_DEFAULT_TYPE = "binary/octet-stream"  # what S3 stores when the uploader sent no Content-Type


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix) of `s3://bucket/prefix`; the prefix is "" or ends with "/"."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"LOADBAY_STORAGE_URL={url!r} names no bucket: use s3://bucket/prefix")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def s3_client(max_connections: int = 32) -> S3Client:
    """A client from the standard AWS configuration (credentials, region, endpoint)."""
    config = Config(
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=max_connections,
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client("s3", config=config)


@contextmanager
def _translated(key: str) -> Iterator[None]:
    """S3's errors as loadbay's: a missing object is NotFound, a replaced one FileChanged,
    anything else (no such bucket, access denied, no answer) StoreUnavailable."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _MISSING:
            raise NotFound(f"no such object: {key}") from exc
        if code in ("412", "PreconditionFailed"):
            raise FileChanged(f"{key} was replaced while it was read or after it was submitted") from exc
        raise StoreUnavailable(
            f"the object store answered {code}: {error.get('Message', '')}".rstrip(": ")
        ) from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"the object store cannot be used: {exc}") from exc


class S3BlobStore:
    """Objects under `prefix` in `bucket`."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "", part_size: int = PART_SIZE) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        endpoint = client.meta.endpoint_url
        self.location = f"s3://{bucket}/{prefix} at {endpoint}"

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        bucket, prefix = parse_s3_url(url)
        return cls(s3_client(), bucket, prefix)

    def object_key(self, key: str) -> str:
        """The key of `key` in the bucket."""
        return self.prefix + key

    def writer(self, key: str, content_type: str | None = None) -> BlobWriter:
        return _S3Writer(self, key, content_type)

    def open(self, key: str, etag: str | None = None) -> BinaryIO:
        return io.BufferedReader(_S3Reader(self, key, etag), buffer_size=_READ_BUFFER)

    def head(self, key: str) -> ObjectInfo:
        with _translated(key):
            found = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        content_type = found.get("ContentType")
        return ObjectInfo(
            size=found["ContentLength"],
            content_type=None if content_type == _S3_DEFAULT_TYPE else content_type,
            etag=found.get("ETag"),
        )

    def delete(self, key: str) -> None:
        with _translated(key):
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under the folder `prefix` (a page of 1,000 at a time)."""
        folder = self.object_key(prefix.rstrip("/") + "/")
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder)
        with _translated(prefix):
            for page in pages:
                keys: list[ObjectIdentifierTypeDef] = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    def signed_url(self, key: str, method: str, expires_in: int, download_name: str | None = None) -> str:
        """A presigned URL: PUT takes the object with any Content-Type (S3 keeps the one sent),
        GET answers it as an attachment named `download_name`."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.object_key(key)}
        if method == "GET" and download_name:
            params["ResponseContentDisposition"] = f'attachment; filename="{download_name}"'
        operation = {"PUT": "put_object", "GET": "get_object"}[method.upper()]
        with _translated(key):
            return self.client.generate_presigned_url(operation, Params=params, ExpiresIn=expires_in)

    def verify(self, key: str, method: str, expires: str, signature: str) -> None:
        raise BadSignature("this server keeps files on S3: use the presigned URL it handed out")

    def get(self, key: str, start: int, etag: str | None) -> Any:
        """GetObject from byte `start` (of version `etag`, when given)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.object_key(key)}
        if start:
            params["Range"] = f"bytes={start}-"
        if etag:
            params["IfMatch"] = etag
        with _translated(key):
            return self.client.get_object(**params)


class _S3Writer:
    """A single PUT for an object of one part or less, a multipart upload beyond."""

    def __init__(self, store: S3BlobStore, key: str, content_type: str | None) -> None:
        self._store = store
        self._key = key
        self._type = content_type or _S3_DEFAULT_TYPE
        self._buffer = bytearray()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []

    def write(self, data: bytes) -> int:
        self._buffer += data
        self._size += len(data)
        part = self._store.part_size
        while len(self._buffer) >= part:
            self._send_part(bytes(self._buffer[:part]))
            del self._buffer[:part]
        return len(data)

    def _send_part(self, body: bytes) -> None:
        store, key = self._store, self._store.object_key(self._key)
        try:
            with _translated(self._key):
                if self._upload_id is None:
                    started = store.client.create_multipart_upload(
                        Bucket=store.bucket, Key=key, ContentType=self._type
                    )
                    self._upload_id = started["UploadId"]
                number = len(self._parts) + 1
                sent = store.client.upload_part(
                    Bucket=store.bucket, Key=key, UploadId=self._upload_id, PartNumber=number, Body=body
                )
        except Exception:
            self.abort()
            raise
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def commit(self) -> int:
        store, key = self._store, self._store.object_key(self._key)
        if self._upload_id is None:
            with _translated(self._key):
                body = bytes(self._buffer)
                store.client.put_object(Bucket=store.bucket, Key=key, Body=body, ContentType=self._type)
            self._buffer.clear()
            return self._size
        if self._buffer:
            self._send_part(bytes(self._buffer))
            self._buffer.clear()
        try:
            with _translated(self._key):
                parts: CompletedMultipartUploadTypeDef = {"Parts": self._parts}
                store.client.complete_multipart_upload(
                    Bucket=store.bucket, Key=key, UploadId=self._upload_id, MultipartUpload=parts
                )
        except Exception:
            self.abort()
            raise
        return self._size

    def abort(self) -> None:
        self._buffer.clear()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        store = self._store
        with suppress(ClientError, BotoCoreError):  # else the bucket's lifecycle rule cleans up
            store.client.abort_multipart_upload(
                Bucket=store.bucket, Key=store.object_key(self._key), UploadId=upload_id
            )


class _S3Reader(io.RawIOBase):
    """An object as a stream; a connection dropped mid-read is opened again where it was."""

    def __init__(self, store: S3BlobStore, key: str, etag: str | None) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._etag = etag
        self._position = 0
        self._size: int | None = None
        self._body: Any = None
        self._open()  # NotFound now, as opening a missing local file does

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        answer = self._store.get(self._key, self._position, self._etag)
        self._etag = self._etag or answer.get("ETag")
        if self._size is None:
            self._size = self._position + int(answer["ContentLength"])
        self._body = answer["Body"]

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        failures = 0
        while True:
            if self._size is not None and self._position >= self._size:
                return 0
            try:
                if self._body is None:
                    self._open()
                data = self._body.read(len(view))
            except _DROPPED:
                failures += 1
                self._drop()
                if failures > _RESUMES:
                    raise StoreUnavailable(f"reading {self._key} failed {failures} times in a row") from None
                time.sleep(min(0.1 * 2**failures, 2.0))
                continue
            if not data:  # the body ended early without saying so: ask again from here
                failures += 1
                self._drop()
                if failures > _RESUMES:
                    raise StoreUnavailable(f"{self._key} ended at byte {self._position} of {self._size}")
                continue
            view[: len(data)] = data
            self._position += len(data)
            return len(data)

    def _drop(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            with suppress(Exception):  # the connection is gone already
                body.close()

    def close(self) -> None:
        self._drop()
        super().close()
