"""Each validation attempt fetches source_url into its own copy: a later attempt replaces
(and deletes) an earlier one's, and an attempt that lost its lease deletes its own copy and
leaves the batch pointing at the newer one. Run through the core on SQLite, the file served
by a real HTTP server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from loadbay.config import Settings
from loadbay.core import processing
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.domain.models import Batch, NewBatch
from loadbay.errors import NotFound
from loadbay.types import default_registry

CSV = b"customer_number,name\nC1,Ann\n"
LEASE = timedelta(seconds=30)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[BatchService]:
    settings = Settings(data_dir=tmp_path, secret_key="test", fetch_allow="127.0.0.1")
    rt = Runtime.build(settings, default_registry(), base_url="http://loadbay.test")
    yield BatchService(rt)
    rt.close()


def claim(service: BatchService, after: timedelta = timedelta(0)) -> queue.ValidationClaim:
    """Claim the batch for validation, `after` from now (past the lease: a takeover)."""
    with service.rt.db.write() as conn:
        got = queue.claim_validation(conn, "test", repo.now() + after, LEASE)
    assert got is not None
    return got


def source_key(service: BatchService, batch: Batch) -> str:
    with service.rt.db.read() as conn:
        [item] = [i for i in repo.list_inputs(conn, batch.id) if i["name"] == "source"]
    return str(item["blob_key"])


def exists(service: BatchService, key: str) -> bool:
    try:
        service.rt.blobs.open(key).close()
    except NotFound:
        return False
    return True


def test_each_attempt_keeps_its_own_copy_and_a_stale_one_deletes_its_own(
    service: BatchService, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/customers.csv").respond_with_data(CSV, content_type="text/csv")
    account, _ = service.create_account("acme")
    url = f"http://127.0.0.1:{httpserver.port}/customers.csv"
    batch, _ = service.create(account, NewBatch("billing.customer", source_url=url))

    first = claim(service)
    processing._fetch_source(service.rt, first, batch)
    first_key = source_key(service, batch)
    assert first_key.endswith("/fetched-1/source") and exists(service, first_key)

    second = claim(service, after=LEASE * 2)  # the first attempt's lease expired
    assert second.takeover and second.attempt == 2
    processing._fetch_source(service.rt, second, batch)
    second_key = source_key(service, batch)
    assert second_key.endswith("/fetched-2/source") and exists(service, second_key)
    assert not exists(service, first_key)

    with pytest.raises(processing.LeaseLost):  # the first attempt, late, fetches again
        processing._fetch_source(service.rt, first, batch)
    assert source_key(service, batch) == second_key and exists(service, second_key)
    assert not exists(service, first_key)
    with service.rt.blobs.open(second_key) as stream:
        assert stream.read() == CSV
