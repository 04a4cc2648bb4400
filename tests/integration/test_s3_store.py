"""The S3 blob store against moto's S3 server on loopback: single PUTs and multipart
uploads, the reader that resumes a dropped connection, presigned URLs, errors."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from botocore.exceptions import ResponseStreamingError

from loadbay.blobs.s3 import S3BlobStore, parse_s3_url
from loadbay.errors import FileChanged, NotFound, StoreUnavailable
from tests.support.s3 import MotoS3, S3Store

PART = 5 * 1024**2  # the smallest part S3 takes


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoS3) -> S3Store:
    return moto_s3.store("blobs")


@pytest.fixture
def blobs(bucket: S3Store) -> S3BlobStore:
    return S3BlobStore(bucket.client(), bucket.bucket, bucket.prefix + "/", part_size=PART)


def _data(size: int) -> bytes:
    block = hashlib.sha256(str(size).encode()).digest() * 2048  # 64 KiB, not all alike
    return (block * (size // len(block) + 1))[:size]


def _store(blobs: S3BlobStore, key: str, data: bytes, step: int = 300_000) -> int:
    writer = blobs.writer(key, "text/csv")
    for start in range(0, len(data), step):
        writer.write(data[start : start + step])
    return writer.commit()


def _uploads(bucket: S3Store) -> list[Any]:
    return bucket.client().list_multipart_uploads(Bucket=bucket.bucket).get("Uploads", [])


def test_a_small_object_is_one_put(blobs: S3BlobStore, bucket: S3Store) -> None:
    assert _store(blobs, "small/a.csv", b"a,b\r\n1,2\r\n") == 10
    assert bucket.read("small/a.csv") == b"a,b\r\n1,2\r\n"
    info = blobs.head("small/a.csv")
    assert (info.size, info.content_type) == (10, "text/csv")
    with blobs.open("small/a.csv") as stream:
        assert stream.read() == b"a,b\r\n1,2\r\n"


def test_an_object_over_the_part_size_is_a_multipart_upload(blobs: S3BlobStore, bucket: S3Store) -> None:
    data = _data(2 * PART + 12345)
    assert _store(blobs, "big/b.csv", data) == len(data)
    head = bucket.client().head_object(Bucket=bucket.bucket, Key=bucket.key("big/b.csv"))
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert bucket.read("big/b.csv") == data
    with blobs.open("big/b.csv") as stream:
        assert hashlib.sha256(stream.read()).digest() == hashlib.sha256(data).digest()


def test_a_failed_multipart_upload_is_aborted_and_leaves_nothing(blobs: S3BlobStore, bucket: S3Store) -> None:
    writer = blobs.writer("aborted/c.csv")
    writer.write(_data(PART + 1))
    assert _uploads(bucket)
    writer.abort()
    assert not _uploads(bucket)
    with pytest.raises(NotFound):
        blobs.head("aborted/c.csv")


class _Flaky:
    """A client whose first GetObject body breaks off after `after` bytes, as a dropped
    connection does; every call it gets is kept."""

    def __init__(self, client: Any, after: int) -> None:
        self._client = client
        self._after = after
        self.gets: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **params: Any) -> Any:
        self.gets.append(params)
        answer = self._client.get_object(**params)
        if len(self.gets) == 1:
            answer["Body"] = _Breaks(answer["Body"], self._after)
        return answer


class _Breaks:
    def __init__(self, body: Any, after: int) -> None:
        self._body = body
        self._left = after

    def read(self, size: int) -> bytes:
        if self._left <= 0:
            raise ResponseStreamingError(error="Connection broken: IncompleteRead")
        data: bytes = self._body.read(min(size, self._left))
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._body.close()


def test_the_reader_resumes_where_the_connection_dropped(blobs: S3BlobStore, bucket: S3Store) -> None:
    data = _data(3 * 1024**2 + 17)
    _store(blobs, "resume/d.csv", data)
    flaky = _Flaky(bucket.client(), after=1_000_000)
    reading = S3BlobStore(flaky, bucket.bucket, bucket.prefix + "/")  # type: ignore[arg-type]
    with reading.open("resume/d.csv") as stream:
        assert stream.read() == data
    first, second = flaky.gets
    assert "Range" not in first and second["Range"] == "bytes=1000000-"
    assert second["IfMatch"] == blobs.head("resume/d.csv").etag  # the same version, or nothing


def test_a_replaced_object_is_not_read_as_the_one_submitted(blobs: S3BlobStore) -> None:
    _store(blobs, "changed/e.csv", b"first")
    etag = blobs.head("changed/e.csv").etag
    _store(blobs, "changed/e.csv", b"second")
    with pytest.raises(FileChanged):
        blobs.open("changed/e.csv", etag)


def test_missing_objects_and_prefixes(blobs: S3BlobStore) -> None:
    with pytest.raises(NotFound):
        blobs.open("nothing/here.csv")
    with pytest.raises(NotFound):
        blobs.head("nothing/here.csv")
    for name in ("a", "b", "c"):
        _store(blobs, f"batches/7/inputs/{name}", b"x")
    _store(blobs, "batches/70/inputs/a", b"y")  # not under batches/7/
    blobs.delete_prefix("batches/7")
    with pytest.raises(NotFound):
        blobs.head("batches/7/inputs/a")
    assert blobs.head("batches/70/inputs/a").size == 1


def test_a_presigned_put_and_get(blobs: S3BlobStore) -> None:
    put = blobs.signed_url("signed/f.csv", "PUT", 60)
    assert "X-Amz-Signature=" in put and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in put
    assert httpx.put(put, content=b"a,b\n", headers={"Content-Type": "text/plain"}).status_code == 200
    assert blobs.head("signed/f.csv").content_type == "text/plain"
    assert httpx.put(put, content=b"a,b\n").status_code == 200
    assert blobs.head("signed/f.csv").content_type is None  # S3's default: none was sent
    got = httpx.get(blobs.signed_url("signed/f.csv", "GET", 60, download_name="r.csv"))
    assert got.content == b"a,b\n"
    assert got.headers["content-disposition"] == 'attachment; filename="r.csv"'


def test_a_bucket_that_does_not_exist_is_store_unavailable(bucket: S3Store) -> None:
    gone = S3BlobStore(bucket.client(), "no-such-bucket-here", "")
    with pytest.raises(StoreUnavailable, match="NoSuchBucket"):
        _store(gone, "x", b"x")


def test_storage_urls() -> None:
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b/")
    with pytest.raises(ValueError, match="names no bucket"):
        parse_s3_url("s3:///prefix")
