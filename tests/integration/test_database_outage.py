"""PostgreSQL stopped and started again under real `loadbay serve` and `loadbay worker`
processes (a server of this module's own, so that the session's is not touched): what the
operator's endpoints answer meanwhile, and what the workers do and log."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_metrics import import_customers, sample
from tests.support.postgres import OwnCluster, own_cluster
from tests.support.servers import start_server, start_worker


@pytest.fixture(scope="module")
def cluster() -> Iterator[OwnCluster]:
    with own_cluster() as made:
        if made is None:
            pytest.skip("no PostgreSQL server binaries (install Debian's postgresql)")
        yield made


@pytest.fixture
def postgres(cluster: OwnCluster) -> Iterator[OwnCluster]:
    """The module's server, running again after each test (which may stop it)."""
    yield cluster
    with contextlib.suppress(RuntimeError):  # (running already)
        cluster.start()


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_health_and_metrics_answer_while_the_database_is_down(postgres: OwnCluster, tmp_path: Path) -> None:
    """/healthz is liveness: 200 while the database is down (an orchestrator would restart
    every server otherwise); /metrics is 200 with the process's own metrics and
    loadbay_database_up 0 instead of the database's; /readyz is 503."""
    server = start_server(postgres.url, tmp_path, workers=0)
    key = server.account("outage")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            up = client.get("/metrics")
            assert up.status_code == 200
            assert sample(up.text, "loadbay_workers_alive", kind="worker") == 0

            postgres.stop()
            health = client.get("/healthz")
            assert health.status_code == 200, health.text
            assert health.json()["status"] == "ok" and health.json()["workers"] is None
            assert "the database does not answer" in health.json()["problems"][0]
            down = client.get("/metrics")
            assert down.status_code == 200, down.text
            assert sample(down.text, "loadbay_database_up") == 0
            assert sample(down.text, "loadbay_workers_alive", kind="worker") is None
            requests = 'loadbay_http_requests_total{app_name="loadbay",method="GET",path="/metrics"'
            assert requests in down.text, "the process's own metrics are still there"
            assert "process_cpu_seconds_total" in down.text
            assert client.get("/readyz").status_code == 503
            listed = client.get("/v1/batches", headers={"X-Api-Key": key})  # a request that needs it
            assert listed.status_code == 503 and listed.json()["code"] == "BUSY", listed.text
            assert listed.headers["Retry-After"]

            postgres.start()
            wait_until(lambda: sample(client.get("/metrics").text, "loadbay_database_up") == 1)
            assert client.get("/healthz").json() == {"status": "ok", "workers": 0}
            assert sample(client.get("/metrics").text, "loadbay_workers_alive", kind="worker") == 0
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log, log
    assert log.count("the database does not answer") == 1, log  # once per outage, not per scrape


def test_a_worker_waits_for_the_database_and_rides_out_an_outage(
    postgres: OwnCluster, tmp_path: Path
) -> None:
    """A `loadbay worker` started while PostgreSQL is down waits for it (it exited 1), one line
    per attempt; once running, an outage is one line per retry and thread, the waits growing,
    not a traceback every poll (7,000 lines in 15 s); and it works again afterwards."""
    postgres.stop()
    worker = start_worker(postgres.url, tmp_path, concurrency=2)  # (files: the server's data dir)
    server = None
    try:
        log = next(tmp_path.glob("worker-*.log"))
        wait_until(lambda: "(attempt 3)" in log.read_text(), timeout=60)
        assert worker.poll() is None, log.read_text()
        waited = log.read_text()
        assert "the database does not answer (OperationalError: connection failed" in waited, waited
        assert len(waited.splitlines()) == 3, waited  # one line per attempt: 0.5, 1, 2 s apart

        postgres.start()
        server = start_server(postgres.url, tmp_path, workers=0)
        key = server.account("outage")
        with server.client(key) as client:
            import_customers(client)
            postgres.stop()
            time.sleep(8)
            during = log.read_text().split(waited, 1)[1]
            postgres.start()
            import_customers(client)
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(30)
        if server is not None:
            server.stop()
    assert "Traceback" not in log.read_text(), log.read_text()
    lines = [line for line in during.splitlines() if "does not answer" in line]
    assert 4 <= len(lines) <= 20, during  # two threads and a heartbeat, waits of 0.5 s doubling
    assert all(line.count("trying again in") == 1 for line in lines if "worker heartbeat" not in line), lines


def test_a_validation_cut_by_a_crash_of_the_database_is_taken_again_at_once(
    postgres: OwnCluster, tmp_path: Path
) -> None:
    """PostgreSQL crashed and restarted (`pg_ctl -m immediate`) under a running validation: an
    interruption, given back at once, not a failed attempt left to its lease (it was logged
    'validation failed (attempt 1)', its traceback, and the batch waited the lease out, ~60 s:
    the connection that replaced the lost one was refused, which did not count as lost, and
    giving the batch back failed while the server restarted)."""
    env = {"LOADBAY_LEASE_SECONDS": "60", "LOADBAY_CHUNK_SIZE": "500"}
    rows = "".join(f"C{i},Name {i},c{i}@example.com\n" for i in range(200_000))
    server = start_server(postgres.url, tmp_path, workers=0, env=env)
    worker = start_worker(postgres.url, tmp_path, env=env)
    try:
        with server.client(server.account("crash")) as client:
            batch = client.post("/v1/batches", json={"type": "billing.customer", "process": "manual"}).json()
            body = "customer_number,name,email\n" + rows
            sent = client.put(
                f"/v1/batches/{batch['id']}/data", content=body, headers={"Content-Type": "text/csv"}
            )
            assert sent.status_code == 200, sent.text
            client.post(f"/v1/batches/{batch['id']}/submit").raise_for_status()
            wait_until(lambda: client.get(f"/v1/batches/{batch['id']}").json()["status"] == "validating")
            time.sleep(0.5)
            postgres.stop("immediate")
            crashed = time.monotonic()
            postgres.start()
            wait_until(lambda: client.get(f"/v1/batches/{batch['id']}").json()["status"] == "validated", 120)
            took = time.monotonic() - crashed
            done = client.get(f"/v1/batches/{batch['id']}").json()
    finally:
        worker.terminate()
        worker.wait(30)
        server.stop()
    log = next(tmp_path.glob("worker-*.log")).read_text()
    assert "validation interrupted (attempt 1)" in log, log
    assert "validation failed" not in log and "Traceback" not in log, log
    assert done["counts"]["valid"] == 200_000 and done["error"] is None, done
    assert took < 30, f"{took:.0f} s: the lease (60 s) was waited out"


def test_a_worker_given_a_database_that_refuses_it_says_so_and_exits(
    postgres: OwnCluster, tmp_path: Path
) -> None:
    """A server that answers and refuses (an unknown database; so for a wrong password or role)
    is no outage to wait out: before, the worker waited for it for ever, and the API said BUSY."""
    url = postgres.url.rsplit("/", 1)[0] + "/no_such_database"
    worker = start_worker(url, tmp_path)
    try:
        assert worker.wait(60) != 0
    finally:
        if worker.poll() is None:
            worker.kill()
    log = next(tmp_path.glob("worker-*.log")).read_text()
    assert 'database "no_such_database" does not exist' in log, log
    assert "trying again" not in log, log
