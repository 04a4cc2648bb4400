"""Scale-out with nothing shared but PostgreSQL and an S3 endpoint: two API-only servers
(`loadbay serve --workers 0`) and three `loadbay worker` processes, each with a data dir of
its own. A client creates and uploads through server 1 (one file straight to S3 at its
presigned upload URL, one through the API), follows and downloads through server 2, and a
worker is SIGKILLed while it holds a chunk: every record has exactly one outcome, and the
result file is the one in the bucket."""

from __future__ import annotations

import csv
import io
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from tests.conftest import TEMPLATE
from tests.integration.test_crash_safety import customer_csv, expected_invalid
from tests.support.postgres import create_database, drop_database
from tests.support.s3 import MotoS3, S3Store
from tests.support.servers import Server, start_server, start_worker, wait_final

ROWS = 6000
ENV = {
    "LOADBAY_CHUNK_SIZE": "200",
    "LOADBAY_LEASE_SECONDS": "3",
    "LOADBAY_SECRET_KEY": "shared-by-every-server",
}


@pytest.fixture
def postgres_url(postgres_template: str | None) -> Iterator[str]:
    if postgres_template is None:
        pytest.skip("no PostgreSQL server available (install Debian's postgresql)")
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield create_database(postgres_template, name, template=TEMPLATE)
    drop_database(postgres_template, name)


@pytest.fixture
def bucket(moto_s3: MotoS3) -> S3Store:
    return moto_s3.store("scale")


@pytest.fixture
def servers(postgres_url: str, bucket: S3Store, tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        for n in (1, 2):
            started.append(start_server(postgres_url, tmp_path / f"api{n}", workers=0, env=ENV, s3=bucket))
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def workers(postgres_url: str, bucket: S3Store, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started = []
    for n in (1, 2, 3):
        (tmp_path / f"worker{n}").mkdir()
        started.append(start_worker(postgres_url, tmp_path / f"worker{n}", concurrency=1, env=ENV, s3=bucket))
    yield started
    for worker in started:
        worker.terminate()
    for worker in started:
        worker.wait(15)


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    made = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield made
    made.dispose()


def test_two_servers_three_workers_one_killed(
    servers: list[Server],
    workers: list[subprocess.Popen[bytes]],
    bucket: S3Store,
    engine: Engine,
) -> None:
    one, two = servers
    key = one.account("scale")
    with one.client(key) as first, two.client(key) as second:
        presigned = _create(first, upload_url=True, file_name="customers.csv")
        assert presigned["upload_url"].startswith(bucket.endpoint + "/" + bucket.bucket + "/")
        sent = httpx.put(
            presigned["upload_url"], content=customer_csv(ROWS), headers={"Content-Type": "text/csv"}
        )
        assert sent.status_code == 200, sent.text
        direct = _create(first)
        other_customers = customer_csv(ROWS).replace(b"\nK", b"\nL")  # no key shared with the first
        put = first.put(f"/v1/batches/{direct['id']}/data", content=other_customers, headers=_CSV)
        assert put.status_code == 200, put.text
        for batch in (presigned, direct):
            assert first.post(f"/v1/batches/{batch['id']}/submit").status_code == 200
        _kill_mid_chunk(engine, workers[0])
        for batch, prefix in ((presigned, "K"), (direct, "L")):
            done = wait_final(second, batch["id"], timeout=180)
            _check(second, engine, bucket, done, prefix)
    with engine.connect() as conn:
        held = "SELECT count(*) FROM chunks WHERE attempt > 1"
        assert conn.execute(text(held)).scalar_one() >= 1  # the killed worker's chunk was taken over


_CSV = {"Content-Type": "text/csv"}


def _create(client: httpx.Client, **body: object) -> dict[str, Any]:
    made = client.post("/v1/batches", json={"type": "billing.customer"} | body)
    assert made.status_code == 201, made.text
    batch: dict[str, Any] = made.json()
    return batch


def _kill_mid_chunk(engine: Engine, worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker as soon as it holds a chunk."""
    held = text("SELECT count(*) FROM chunks WHERE status = 'leased' AND lease_owner LIKE :owner")
    owner = {"owner": f"%:{worker.pid}:%"}
    deadline = time.monotonic() + 60
    with engine.connect() as conn:
        while not conn.execute(held, owner).scalar_one():
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never took a chunk"
            conn.rollback()
            time.sleep(0.002)
    worker.kill()
    worker.wait()


def _check(
    client: httpx.Client, engine: Engine, bucket: S3Store, batch: dict[str, object], prefix: str
) -> None:
    valid = ROWS - expected_invalid(ROWS)
    assert batch["status"] == "completed", batch
    counts = {"total": ROWS, "valid": valid, "invalid": ROWS - valid, "succeeded": valid}
    assert batch["counts"] == counts | {"failed": 0, "unprocessed": 0}
    deadline = time.monotonic() + 60
    query = text("SELECT results_at FROM batches WHERE id = :id")
    with engine.connect() as conn:
        while not conn.execute(query, {"id": batch["id"]}).scalar_one():
            assert time.monotonic() < deadline, "no worker wrote the result file"
            conn.rollback()
            time.sleep(0.05)
    downloaded = client.get(f"/v1/batches/{batch['id']}/results")
    assert downloaded.status_code == 200
    assert downloaded.content == bucket.read(f"batches/{batch['id']}/results.csv")  # from the bucket
    rows = list(csv.DictReader(io.StringIO(downloaded.text)))
    assert [r["customer_number"] for r in rows] == [f"{prefix}{i:06d}" for i in range(ROWS)]  # one each
    with engine.connect() as conn:
        applied = "SELECT count(*), max(revision) FROM billing_customers WHERE customer_number LIKE :p"
        assert tuple(conn.execute(text(applied), {"p": prefix + "%"}).one()) == (valid, 1)  # each once
    assert {r["loadbay_status"] for r in rows} == {"succeeded", "invalid"}
