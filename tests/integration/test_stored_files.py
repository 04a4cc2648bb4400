"""A batch's files in the blob store, on each store: what a client sees of uploads sent
to a signed URL (the store's own on S3), result files written to the store once a batch
is final, retention, and `loadbay doctor`."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.s3 import MotoS3
from tests.support.servers import Server, start_server, start_worker, wait_final

pytestmark = pytest.mark.stores("file", "s3")

LIMIT = 64 * 1024
CSV = "text/csv"


@pytest.fixture(scope="module")
def server(
    module_database_url: str, store: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server that takes files up to 64 KiB."""
    env = {"LOADBAY_MAX_UPLOAD_BYTES": str(LIMIT), "LOADBAY_SECRET_KEY": "a-long-enough-test-secret"}
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), env=env, s3=store)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    """One account for the module (each test makes its own batches)."""
    with server.client(server.account(f"files-{uuid.uuid4().hex[:8]}")) as made:
        yield made


def customers(count: int, bad: int = -1) -> bytes:
    rows = [f"C{i},Name {i},{'not-an-email' if i == bad else f'c{i}@example.com'}" for i in range(count)]
    return ("customer_number,name,email\n" + "\n".join(rows) + "\n").encode()


def new_batch(client: httpx.Client, **body: Any) -> dict[str, Any]:
    made = client.post("/v1/batches", json={"type": "billing.customer"} | body)
    assert made.status_code == 201, made.text
    batch: dict[str, Any] = made.json()
    return batch


def send(client: httpx.Client, batch_id: int, body: bytes, name: str = "data") -> httpx.Response:
    """A file uploaded through the API (not a signed URL)."""
    params = {"name": name}
    return client.put(
        f"/v1/batches/{batch_id}/data", content=body, params=params, headers={"Content-Type": CSV}
    )


def problem(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.json()
    detail: str = response.json()["detail"]
    return detail


def stored(server: Server, key: str) -> bytes | None:
    """loadbay's object `key`, read straight from the store (None: not there)."""
    if server.s3 is not None:
        return server.s3.read(key) if key in server.s3.listed() else None
    path = Path(server.env["LOADBAY_DATA_DIR"]) / "blobs" / key
    return path.read_bytes() if path.exists() else None


def results_written(server: Server, batch_id: int, timeout: float = 30.0) -> None:
    """Wait until a worker has written the batch's result files to the store."""
    deadline = time.monotonic() + timeout
    while not server.query("SELECT results_at FROM batches WHERE id = :id", id=batch_id)[0][0]:
        assert time.monotonic() < deadline, f"batch {batch_id}: no result file after {timeout}s"
        time.sleep(0.05)


def test_result_files_whose_writing_failed_are_written_again_soon(
    server: Server, client: httpx.Client
) -> None:
    """A store that fails a moment as a batch ends (here: a directory where the file goes)
    kept the batch's claim on its writing for 10 minutes: its result files came that late."""
    if server.s3 is not None:
        pytest.skip("the local store's directory is obstructed")
    items = [{"customer_number": f"W{n}", "name": "Wyn"} for n in range(3)]
    batch = new_batch(client, items=items)
    where = Path(server.env["LOADBAY_DATA_DIR"]) / "blobs" / "batches" / str(batch["id"]) / "results.csv"
    where.mkdir(parents=True)
    try:
        assert client.post(f"/v1/batches/{batch['id']}/submit").status_code == 200
        assert wait_final(client, batch["id"])["status"] == "completed"
        time.sleep(1)  # (a worker tries to write them, and fails)
        query = "SELECT results_at, results_claimed_until FROM batches WHERE id = :id"
        written, claimed = server.query(query, id=batch["id"])[0]
        assert written is None and claimed is not None
    finally:
        where.rmdir()
    results_written(server, batch["id"], timeout=30)
    assert (stored(server, f"batches/{batch['id']}/results.csv") or b"").count(b"\n") == 4


# uploads to a signed URL ---------------------------------------------------------------------


def test_an_upload_url_takes_the_file_and_submit_finds_it(server: Server, client: httpx.Client) -> None:
    batch = new_batch(client, upload_url=True, file_name="customers.csv")
    put = httpx.put(batch["upload_url"], content=customers(3), headers={"Content-Type": CSV})
    assert put.status_code == 200, put.text
    assert client.post(f"/v1/batches/{batch['id']}/submit").status_code == 200
    done = wait_final(client, batch["id"])
    assert (done["status"], done["counts"]["succeeded"]) == ("completed", 3)
    received = [e["detail"] for e in client.get(f"/v1/batches/{batch['id']}/events").json()["data"]]
    assert any(d and d.startswith("customers.csv (") for d in received), received


def test_an_upload_over_the_limit_is_refused_with_the_same_error(
    server: Server, client: httpx.Client
) -> None:
    """Local store: as the bytes arrive (413 to the PUT). S3: the store takes it, and the
    submit that looks for it is refused (413) and deletes it, so a smaller one can be sent."""
    batch = new_batch(client, upload_url=True, file_name="big.csv")
    big = customers(3) + b"#" * LIMIT
    put = httpx.put(batch["upload_url"], content=big, headers={"Content-Type": CSV})
    if server.s3 is None:
        problem(put, 413, "PAYLOAD_TOO_LARGE")
    else:
        assert put.status_code == 200, put.text
        detail = problem(client.post(f"/v1/batches/{batch['id']}/submit"), 413, "PAYLOAD_TOO_LARGE")
        assert "'big.csv'" in detail and str(LIMIT) in detail
        assert stored(server, f"batches/{batch['id']}/inputs/big.csv") is None
        assert client.get(f"/v1/batches/{batch['id']}").json()["status"] == "open"
    smaller = httpx.put(batch["upload_url"], content=customers(2), headers={"Content-Type": CSV})
    assert smaller.status_code == 200, smaller.text
    assert client.post(f"/v1/batches/{batch['id']}/submit").status_code == 200
    assert wait_final(client, batch["id"])["counts"]["succeeded"] == 2


def test_nothing_at_the_upload_url_is_a_clear_conflict(client: httpx.Client) -> None:
    only = new_batch(client, upload_url=True, file_name="never.csv")
    detail = problem(client.post(f"/v1/batches/{only['id']}/submit"), 409, "NO_DATA")
    assert "'never.csv'" in detail
    other = new_batch(client, upload_url=True, file_name="missing.csv")
    put = send(client, other["id"], customers(1), "sent.csv")
    assert put.status_code == 200, put.text
    detail = problem(client.post(f"/v1/batches/{other['id']}/submit"), 409, "FILE_NOT_UPLOADED")
    assert "'missing.csv'" in detail


def test_a_file_replaced_at_an_upload_url_asked_for_again_lists_its_own_size(
    server: Server, client: httpx.Client
) -> None:
    """A file sent through the API, then replaced by a PUT to an upload URL asked for again
    under its name: the batch lists the size of the file it reads (on S3 it listed the first
    file's: loadbay never sees that PUT and looked only for files still expected)."""
    batch = new_batch(client)
    first, second = customers(2), customers(5)
    assert send(client, batch["id"], first, "customers.csv").status_code == 200
    again = client.post(f"/v1/batches/{batch['id']}/upload-url", json={"name": "customers.csv"})
    assert again.status_code == 200, again.text
    put = httpx.put(again.json()["url"], content=second, headers={"Content-Type": CSV})
    assert put.status_code == 200, put.text
    assert client.post(f"/v1/batches/{batch['id']}/submit").status_code == 200
    assert wait_final(client, batch["id"])["counts"]["succeeded"] == 5
    [read] = client.get(f"/v1/batches/{batch['id']}/inputs").json()["data"]
    assert (read["size"], read["item_count"]) == (len(second), 5)


def test_a_file_replaced_at_an_upload_url_is_read_in_the_format_its_content_type_says(
    server: Server, client: httpx.Client
) -> None:
    """The replacement of a CSV file sent through the API is JSON Lines, said by its PUT's
    Content-Type: the batch reads it as JSON Lines, as the local store's PUT does (on S3 the
    first file's format stayed, and every line was refused as CSV)."""
    batch = new_batch(client)
    assert send(client, batch["id"], customers(2), "customers").status_code == 200
    again = client.post(f"/v1/batches/{batch['id']}/upload-url", json={"name": "customers"})
    assert again.status_code == 200, again.text
    lines = [f'{{"customer_number": "J{i}", "name": "J {i}", "email": "j{i}@example.com"}}' for i in range(3)]
    body = ("\n".join(lines) + "\n").encode()
    put = httpx.put(again.json()["url"], content=body, headers={"Content-Type": "application/x-ndjson"})
    assert put.status_code == 200, put.text
    assert client.post(f"/v1/batches/{batch['id']}/submit").status_code == 200
    assert wait_final(client, batch["id"])["counts"]["succeeded"] == 3
    [read] = client.get(f"/v1/batches/{batch['id']}/inputs").json()["data"]
    assert (read["format"], read["size"], read["item_count"]) == ("jsonl", len(body), 3)


def test_a_content_type_loadbay_does_not_read_is_refused(server: Server, client: httpx.Client) -> None:
    batch = new_batch(client, upload_url=True)  # named `data`: the Content-Type says the format
    put = httpx.put(batch["upload_url"], content=customers(1), headers={"Content-Type": "image/png"})
    if server.s3 is None:
        problem(put, 415, "UNSUPPORTED_MEDIA_TYPE")
    else:
        assert put.status_code == 200
        problem(client.post(f"/v1/batches/{batch['id']}/submit"), 415, "UNSUPPORTED_MEDIA_TYPE")


# result files ----------------------------------------------------------------------------------


def test_result_files_are_written_to_the_store_once_final(server: Server, client: httpx.Client) -> None:
    batch = new_batch(client)
    assert send(client, batch["id"], customers(5, bad=2)).status_code == 200
    assert client.post(f"/v1/batches/{batch['id']}/submit").status_code == 200
    wait_final(client, batch["id"])
    results_written(server, batch["id"])
    whole = client.get(f"/v1/batches/{batch['id']}/results")
    assert whole.status_code == 200 and whole.content == stored(server, f"batches/{batch['id']}/results.csv")
    assert whole.content.count(b"\r\n") == 6
    refused = client.get(
        f"/v1/batches/{batch['id']}/results", params={"outcome": "invalid,failed,unprocessed"}
    )
    assert refused.content == stored(server, f"batches/{batch['id']}/refused.csv")
    assert refused.content.count(b"\r\n") == 2 and b"INVALID_EMAIL" in refused.content
    succeeded = client.get(f"/v1/batches/{batch['id']}/results", params={"outcome": "succeeded"})
    assert succeeded.content.count(b"\r\n") == 5  # (other filters: made from the chunks' rows)


# retention ---------------------------------------------------------------------------------------


def test_retention_removes_the_files_of_old_batches(
    server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    """A batch made old (its finished_at 10 days back) loses its files to the sweep of a worker
    started with LOADBAY_RETENTION_DAYS=7; its results are then 410 Gone, saying why."""
    old, recent = new_batch(client), new_batch(client)
    for batch in (old, recent):
        assert send(client, batch["id"], customers(2)).status_code == 200
        assert client.post(f"/v1/batches/{batch['id']}/submit").status_code == 200
        wait_final(client, batch["id"])
        results_written(server, batch["id"])
    _age(server, old["id"], days=10)
    worker = start_worker(server.env["LOADBAY_DATABASE_URL"], tmp_path, env=_retention(server), s3=server.s3)
    try:
        deadline = time.monotonic() + 30
        while not server.query("SELECT files_removed_at FROM batches WHERE id = :id", id=old["id"])[0][0]:
            assert time.monotonic() < deadline, "the sweep did not remove the old batch's files"
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(15)
    for name in ("inputs/data", "results.csv", "refused.csv"):
        assert stored(server, f"batches/{old['id']}/{name}") is None, name
        assert stored(server, f"batches/{recent['id']}/{name}") is not None, name
    detail = problem(client.get(f"/v1/batches/{old['id']}/results"), 410, "FILES_REMOVED")
    assert "removed 10 days after it finished" in detail
    assert client.get(f"/v1/batches/{recent['id']}/results").status_code == 200


def _age(server: Server, batch_id: int, days: int) -> None:
    from sqlalchemy import create_engine, text

    url = server.env["LOADBAY_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    then = (datetime.now(UTC) - timedelta(days=days)).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE batches SET finished_at = :at WHERE id = :id"), {"at": then, "id": batch_id}
        )
    engine.dispose()


def _retention(server: Server) -> dict[str, str]:
    keep = ("LOADBAY_DATA_DIR", "LOADBAY_SECRET_KEY")
    return {k: server.env[k] for k in keep} | {"LOADBAY_RETENTION_DAYS": "7"}


def test_cancelling_removes_the_uploaded_file(server: Server, client: httpx.Client) -> None:
    batch = new_batch(client)
    assert send(client, batch["id"], customers(2)).status_code == 200
    assert stored(server, f"batches/{batch['id']}/inputs/data") is not None
    assert client.post(f"/v1/batches/{batch['id']}/cancel").status_code == 200
    assert stored(server, f"batches/{batch['id']}/inputs/data") is None


# loadbay doctor -------------------------------------------------------------------------------


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "loadbay", "doctor"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


def test_doctor_says_all_is_well(server: Server) -> None:
    done = doctor(server.env)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("database", "store", "signing key", "workers"):
        assert f"ok   {name}: " in done.stdout, done.stdout
    assert "written, read back and deleted" in done.stdout


def test_doctor_and_readyz_name_a_bucket_that_does_not_exist(
    server: Server, moto_s3: MotoS3, tmp_path: Path
) -> None:
    if server.s3 is None:
        pytest.skip("a bucket is an S3 store's")
    env = server.env | {"LOADBAY_STORAGE_URL": "s3://no-such-bucket-here/x"}
    done = doctor(env)
    assert done.returncode == 1, done.stdout
    assert "FAIL store: s3://no-such-bucket-here/x/ at" in done.stdout
    assert "NoSuchBucket" in done.stdout
    overrides = {"LOADBAY_STORAGE_URL": "s3://no-such-bucket-here/x"}
    other = start_server(server.env["LOADBAY_DATABASE_URL"], tmp_path, env=overrides, s3=server.s3)
    try:
        ready = httpx.get(other.url + "/readyz", timeout=30)
    finally:
        other.stop()
    assert ready.status_code == 503
    assert any("NoSuchBucket" in p for p in ready.json()["problems"]), ready.json()
