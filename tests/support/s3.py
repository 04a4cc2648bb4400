"""An S3 endpoint on loopback for tests: moto's server mode (a real HTTP S3 API)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["MotoS3", "S3Store"]

REGION = "us-east-1"
KEY_ID, SECRET = "testing", "testing"


@dataclass(frozen=True)
class S3Store:
    """One bucket (and prefix) of the endpoint, as loadbay's processes are pointed at it."""

    endpoint: str
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def env(self) -> dict[str, str]:
        """The environment of a loadbay process that keeps its files here (and reads no AWS
        configuration of the machine's)."""
        return {
            "LOADBAY_STORAGE_URL": self.url,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> S3Client:
        return client(self.endpoint)

    def key(self, key: str) -> str:
        """The object key in the bucket of loadbay's `key`."""
        return f"{self.prefix}/{key}"

    def read(self, key: str) -> bytes:
        """loadbay's object `key`, straight from the bucket."""
        return self.client().get_object(Bucket=self.bucket, Key=self.key(key))["Body"].read()

    def listed(self) -> list[str]:
        """loadbay's object keys in the bucket (without the prefix)."""
        listing = self.client().get_paginator("list_objects_v2")
        pages = listing.paginate(Bucket=self.bucket, Prefix=self.prefix)
        return [o["Key"].removeprefix(self.prefix + "/") for page in pages for o in page.get("Contents", [])]


def client(endpoint: str) -> S3Client:
    config = Config(signature_version="s3v4")
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name=REGION,
        config=config,
    )


class MotoS3:
    """moto's S3 server in a thread on a free loopback port."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def store(self, name: str = "loadbay") -> S3Store:
        """A new bucket and a prefix in it."""
        bucket = f"{name}-{uuid.uuid4().hex[:10]}"
        client(self.endpoint).create_bucket(Bucket=bucket)
        return S3Store(self.endpoint, bucket, "files")

    def stop(self) -> None:
        self._server.stop()
