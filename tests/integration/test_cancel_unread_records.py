"""Every record of a cancelled batch ends with one outcome, those its validation had not read
yet too, on each backend: a worker reads the rest of the data after the cancel, and each such
record ends `unprocessed`, in the result file with its values, and a retry sends it again.
Before, a batch cancelled while queued or validating had no outcome for its records never
read: they were in neither its counts nor its result file, and no retry could send them."""

from __future__ import annotations

import csv
import io
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadbay.xmlsafe import parse_xml
from tests.integration.test_crash_safety import customer_csv, submit_file, wait_until
from tests.support.servers import Server, start_server, start_worker, wait_final

ENV = {"LOADBAY_CHUNK_SIZE": "100", "LOADBAY_LEASE_SECONDS": "2"}
NEVER_READ = "not applied: the batch was cancelled before this record was read"


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """An API server without workers: `loadbay worker` processes do the work, when started."""
    server = start_server(database_url, tmp_path / "data", workers=0, env=ENV)
    yield server
    server.stop()


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        started.append(start_worker(database_url, tmp_path / "data", env=ENV))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
        process.wait(15)


def results(client: httpx.Client, batch_id: int) -> list[dict[str, str]]:
    """The batch's result file, once it can be had."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = client.get(f"/v1/batches/{batch_id}/results")
        if answer.status_code == 200:
            return list(csv.DictReader(io.StringIO(answer.text)))
        assert answer.json()["code"] == "RESULTS_NOT_READY", answer.text
        time.sleep(0.1)
    raise AssertionError(f"no result file for batch {batch_id}")


def test_a_batch_cancelled_before_it_was_read_gives_each_record_its_outcome(
    api: Server, workers: Callable[[], subprocess.Popen[bytes]]
) -> None:
    with api.client(api.account("acme")) as client:
        batch_id = client.post("/v1/batches", json={"type": "billing.customer"}).json()["id"]
        for name, first in (("a", 0), ("b", 30)):
            lines = "".join(f"Q{i},Name {i}\n" for i in range(first, first + 30))
            body = "customer_number,name\n" + lines + ("Q-odd,x\n" if name == "b" else "")
            sent = client.put(
                f"/v1/batches/{batch_id}/data",
                params={"name": name},
                content=body,
                headers={"Content-Type": "text/csv"},
            )
            assert sent.status_code == 200, sent.text
        assert client.post(f"/v1/batches/{batch_id}/submit").json()["status"] == "queued"

        cancelled = client.post(f"/v1/batches/{batch_id}/cancel").json()
        assert (cancelled["status"], cancelled["counts"]["total"]) == ("cancelled", 0)
        waiting = client.get(f"/v1/batches/{batch_id}/results")  # no worker has read the data yet
        assert (waiting.status_code, waiting.json()["code"]) == (409, "RESULTS_NOT_READY")
        assert "once the records not read yet have their outcome" in waiting.json()["detail"]
        early = client.post(f"/v1/batches/{batch_id}/retry")  # (it would miss the records not read yet)
        assert (early.status_code, early.json()["code"]) == (409, "RESULTS_NOT_READY")

        workers()
        rows = results(client, batch_id)
        assert [r["customer_number"] for r in rows] == [f"Q{i}" for i in range(60)] + ["Q-odd"]
        assert {(r["loadbay_status"], r["loadbay_error_code"]) for r in rows} == {
            ("unprocessed", "UNPROCESSED")
        }
        assert {r["loadbay_error_message"] for r in rows} == {NEVER_READ}
        batch = client.get(f"/v1/batches/{batch_id}").json()
        assert batch["counts"] | {"valid": None} == {
            "total": 61,
            "valid": None,
            "invalid": 0,
            "succeeded": 0,
            "failed": 0,
            "unprocessed": 61,
        }
        events = client.get(f"/v1/batches/{batch_id}/events").json()["data"]
        assert "61 records never read before the cancel: unprocessed" in [e["detail"] for e in events]

        retry = client.post(f"/v1/batches/{batch_id}/retry")
        assert retry.status_code == 201, retry.text
        done = wait_final(client, retry.json()["id"])
        assert (done["counts"]["total"], done["counts"]["succeeded"]) == (61, 61), done["error"]


ROWS = 60_000


def test_a_batch_cancelled_mid_validation_after_its_worker_was_killed(
    api: Server, workers: Callable[[], subprocess.Popen[bytes]]
) -> None:
    """Its validation stopped mid-file (the worker killed), the cancel came, and a new worker
    reads the rest: each record has exactly one outcome, in order."""
    with api.client(api.account("acme")) as client:
        batch_id = submit_file(client, customer_csv(ROWS), process="manual")
        worker = workers()
        wait_until(client, batch_id, lambda b: b["status"] == "validating" and b["counts"]["total"] >= 2_000)
        worker.kill()
        worker.wait(15)
        cancelled = client.post(f"/v1/batches/{batch_id}/cancel").json()
        read = cancelled["counts"]["total"]
        assert cancelled["status"] == "cancelled" and 0 < read < ROWS, cancelled

        workers()
        rows = results(client, batch_id)
        assert [r["customer_number"] for r in rows] == [f"K{i:06d}" for i in range(ROWS)]
        statuses = [r["loadbay_status"] for r in rows]
        assert set(statuses[read:]) == {"unprocessed"}
        assert {r["loadbay_error_message"] for r in rows[read:]} == {NEVER_READ}
        assert set(statuses[:read]) <= {"unprocessed", "invalid"}
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        counts = batch["counts"]
        assert counts["total"] == ROWS == counts["invalid"] + counts["unprocessed"], counts


def test_a_worker_killed_while_it_reads_the_unread_records_is_taken_over(
    api: Server, workers: Callable[[], subprocess.Popen[bytes]]
) -> None:
    """The next worker goes on after the last chunk the killed one staged: each record once."""
    with api.client(api.account("acme")) as client:
        batch_id = submit_file(client, customer_csv(ROWS), process="manual")
        assert client.post(f"/v1/batches/{batch_id}/cancel").json()["unread_pending"] is True
        worker = workers()
        seen = wait_until(client, batch_id, lambda b: b["counts"]["total"] >= 5_000)
        worker.send_signal(signal.SIGSTOP)  # (then killed: it stages nothing more meanwhile)
        worker.kill()
        worker.wait(15)
        cut = client.get(f"/v1/batches/{batch_id}").json()
        assert cut["unread_pending"] and cut["counts"]["total"] < ROWS, (seen, cut)

        workers()
        rows = results(client, batch_id)
        assert [r["customer_number"] for r in rows] == [f"K{i:06d}" for i in range(ROWS)]
        assert {r["loadbay_status"] for r in rows} == {"unprocessed"}
        counts = client.get(f"/v1/batches/{batch_id}").json()["counts"]
        assert (counts["total"], counts["unprocessed"]) == (ROWS, ROWS)


def test_an_ebill_batch_process_cancelled_before_it_was_read_has_no_download_until_it_is(
    api: Server, workers: Callable[[], subprocess.Popen[bytes]]
) -> None:
    """eBill's downloadUrl stays empty while the records not read are being read (before, the
    GET of the batch process failed: the result file it signs did not exist yet)."""
    ebill = "/compat/ebill/rest/batchProcess"
    request = (
        "<batchProcess><jobId>CANCELLED_1</jobId><inputType>API</inputType><operation>eBill-Import"
        "</operation><subOperation>Customer</subOperation><inputFilename>c.csv</inputFilename></batchProcess>"
    )
    with api.client(api.account("acme")) as client:
        made = parse_xml(
            client.post(ebill, params={"mode": "S3FileUpload"}, content=request.encode()).content
        )
        batch_id, url = made.findtext("id"), made.findtext("uploadUrl")
        assert batch_id and url
        body = "customerNumber,customerName\n" + "".join(f"E{i},Name {i}\n" for i in range(40))
        assert httpx.put(url, content=body.encode()).status_code == 200
        finalize = f"<batchProcess><id>{batch_id}</id><jobId>CANCELLED_1</jobId></batchProcess>"
        assert (
            client.put(ebill, params={"mode": "BatchFinalize"}, content=finalize.encode()).status_code == 200
        )
        assert client.post(f"/v1/batches/{batch_id}/cancel").json()["unread_pending"] is True

        shown = client.get(ebill, params={"id": batch_id})
        assert shown.status_code == 200, shown.text
        assert parse_xml(shown.content).findtext("downloadUrl") == ""
        workers()
        results(client, int(batch_id))
        read = parse_xml(client.get(ebill, params={"id": batch_id}).content)
        assert (read.findtext("downloadUrl") or "").startswith("http")


def test_data_unreadable_part_way_keeps_the_records_read_before_it(
    api: Server, workers: Callable[[], subprocess.Popen[bytes]]
) -> None:
    """250 readable rows, then bytes that are no UTF-8: the 250 end unprocessed (the 50 after
    the last whole chunk of 100 too), and the event says why the rest has no outcome."""
    with api.client(api.account("acme")) as client:
        good = "customer_number,name\n" + "".join(f"U{i},Name {i}\n" for i in range(250))
        batch_id = submit_file(client, good.encode() + b"U250,\xff\xfe broken\n")
        assert client.post(f"/v1/batches/{batch_id}/cancel").json()["unread_pending"] is True
        workers()
        rows = results(client, batch_id)
        assert [r["customer_number"] for r in rows] == [f"U{i}" for i in range(250)]
        events = client.get(f"/v1/batches/{batch_id}/events").json()["data"]
        detail = events[-1]["detail"]
        assert detail.startswith(
            "250 records never read before the cancel: unprocessed; the rest of the data"
        ), detail


def test_a_file_never_fetched_is_said_so(api: Server, workers: Callable[[], subprocess.Popen[bytes]]) -> None:
    with api.client(api.account("acme")) as client:
        body = {"type": "billing.customer", "source_url": "https://example.com/customers.csv", "submit": True}
        made = client.post("/v1/batches", json=body)
        assert made.status_code == 201, made.text
        assert client.post(f"/v1/batches/{made.json()['id']}/cancel").json()["unread_pending"] is True
        workers()
        done = wait_final(client, made.json()["id"])
        assert done["counts"]["total"] == 0
        events = client.get(f"/v1/batches/{done['id']}/events").json()["data"]
        assert events[-1]["detail"] == (
            "0 records never read before the cancel: unprocessed; its file at source_url had not been"
            " fetched: its records are not known"
        )
