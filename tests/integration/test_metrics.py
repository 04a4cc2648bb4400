"""Metrics an operator runs on, read after real batches: records by type and outcome, batches
by status and type, queue lag, chunk and batch durations, HTTP requests by route; live
workers from their heartbeats in /healthz, /readyz and the metrics, and a `loadbay worker`
process's own metrics port."""

from __future__ import annotations

import ipaddress
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.servers import Server, _env, free_port, start_server, start_worker, wait_final

CUSTOMERS = "customer_number,name,email\nM1,Ann,ann@example.com\nM2,Bob,not-an-email\nM3,Cy,\n"
FAST_HEARTBEAT = {"LOADBAY_HEARTBEAT_SECONDS": "0.3"}
ROOT = Path(__file__).resolve().parents[2]


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, labels matched exactly (None: absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return None


def import_customers(client: httpx.Client) -> int:
    batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    client.put(f"/v1/batches/{batch['id']}/data", content=CUSTOMERS, headers={"Content-Type": "text/csv"})
    client.post(f"/v1/batches/{batch['id']}/submit").raise_for_status()
    assert wait_final(client, batch["id"])["status"] == "completed"
    return int(batch["id"])


def test_a_batch_shows_in_the_metrics(server: Server, key: str) -> None:
    with server.client(key) as client:
        before = client.get("/metrics").text
        import_customers(client)
        text = client.get("/metrics").text
    customer = {"type": "billing.customer"}
    for outcome, added in (("succeeded", 2), ("invalid", 1)):
        was = sample(before, "loadbay_records_total", **customer, outcome=outcome) or 0
        assert sample(text, "loadbay_records_total", **customer, outcome=outcome) == was + added
    assert (sample(text, "loadbay_batches", status="completed", **customer) or 0) >= 1
    assert (sample(text, "loadbay_chunk_apply_seconds_count", **customer) or 0) >= 1
    assert (sample(text, "loadbay_batch_seconds_count", **customer, status="completed") or 0) >= 1
    assert sample(text, "loadbay_queue_lag_seconds", queue="validation") is not None
    assert sample(text, "loadbay_queue_lag_seconds", queue="chunks") is not None
    assert sample(text, "loadbay_workers_alive", kind="serve") == 1
    assert sample(text, "loadbay_worker_threads_alive") == 2
    created = sample(
        text,
        "loadbay_http_requests_total",
        app_name="loadbay",
        method="POST",
        path="/v1/batches",
        status_code="201",
    )
    assert created is not None and created >= 1
    polled = 'path="/v1/batches/{batch_id}"'
    assert polled in text, "requests are counted by route template, not by URL"


def test_the_grafana_dashboard_uses_only_metrics_the_server_has(server: Server, key: str) -> None:
    """docs/grafana-dashboard.json: every metric its panels query is in /metrics after a batch."""
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bloadbay_\w+", target["expr"])
    }
    with server.client(key) as client:
        import_customers(client)
        text = client.get("/metrics").text
    exposed = {line.split("{")[0].split()[0] for line in text.splitlines() if line.startswith("loadbay_")}
    assert queried and queried <= exposed, queried - exposed


def test_queue_lag_grows_while_no_worker_runs(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path, workers=0, env=FAST_HEARTBEAT)
    try:
        key = server.account("lag")
        with server.client(key) as client:
            batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
            client.put(
                f"/v1/batches/{batch['id']}/data", content=CUSTOMERS, headers={"Content-Type": "text/csv"}
            )
            client.post(f"/v1/batches/{batch['id']}/submit").raise_for_status()
            time.sleep(1.2)
            lag = sample(client.get("/metrics").text, "loadbay_queue_lag_seconds", queue="validation")
        assert lag is not None and lag >= 1.0
    finally:
        server.stop()


def test_a_child_waiting_for_its_parent_is_no_queue_lag(database_url: str, tmp_path: Path) -> None:
    """A child batch submitted while its parent is open waits for the parent, not for a worker:
    no worker could take it, so it is no validation lag. Once its parent is final it waits
    for a worker, and its lag counts from then, not from its own submit."""
    server = start_server(database_url, tmp_path, workers=0, env=FAST_HEARTBEAT)
    try:
        key = server.account("child-lag")
        with server.client(key) as client:
            parent = client.post("/v1/batches", json={"type": "billing.customer"}).json()
            child = client.post(
                "/v1/batches", json={"type": "billing.customer", "parent_id": parent["id"]}
            ).json()
            client.put(
                f"/v1/batches/{child['id']}/data", content=CUSTOMERS, headers={"Content-Type": "text/csv"}
            )
            client.post(f"/v1/batches/{child['id']}/submit").raise_for_status()
            assert client.get(f"/v1/batches/{child['id']}").json()["status"] == "queued"
            time.sleep(2.0)
            lag = sample(client.get("/metrics").text, "loadbay_queue_lag_seconds", queue="validation")
            assert lag == 0.0, "the child waits for its open parent, which no worker can hurry"

            # its parent ends (cleared: a cancel would cancel the child too)
            client.post(f"/v1/batches/{parent['id']}/clear").raise_for_status()
            assert client.get(f"/v1/batches/{child['id']}").json()["status"] == "queued"
            lag = sample(client.get("/metrics").text, "loadbay_queue_lag_seconds", queue="validation")
            assert lag is not None and lag < 1.5, "waiting counts from the parent's end, not the submit"
            time.sleep(1.2)
            lag = sample(client.get("/metrics").text, "loadbay_queue_lag_seconds", queue="validation")
            assert lag is not None and lag >= 1.0
    finally:
        server.stop()


def test_readiness_follows_the_worker_processes(database_url: str, tmp_path: Path) -> None:
    """An API-only server is not ready until a worker process beats; a worker killed -9 stops
    counting after three missed heartbeats, one stopped cleanly at once."""
    server = start_server(database_url, tmp_path, workers=0, env=FAST_HEARTBEAT)
    port = free_port()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            alone = client.get("/readyz")
            assert alone.status_code == 503, alone.text
            assert alone.json()["problems"] == [
                "no worker is alive: batches wait until a `loadbay worker` (or serve) runs"
            ]
            assert client.get("/healthz").json() == {"status": "ok", "workers": 0}

            env = FAST_HEARTBEAT | {"LOADBAY_WORKER_METRICS_PORT": str(port)}
            workers.append(start_worker(database_url, tmp_path, env=env))
            wait_until(lambda: client.get("/readyz").status_code == 200)
            assert client.get("/readyz").json() == {"status": "ready", "workers": 1}
            key = server.account("ready")
            with server.client(key) as api:
                import_customers(api)
            own = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            assert (sample(own, "loadbay_chunk_apply_seconds_count", type="billing.customer") or 0) >= 1

            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(10)
            wait_until(lambda: client.get("/readyz").status_code == 503)
            text = client.get("/metrics").text
            assert sample(text, "loadbay_workers_alive", kind="worker") == 0

            workers.append(start_worker(database_url, tmp_path, env=FAST_HEARTBEAT))
            wait_until(lambda: client.get("/healthz").json()["workers"] == 1)
            workers[1].send_signal(signal.SIGTERM)
            workers[1].wait(30)
            assert client.get("/healthz").json()["workers"] == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        server.stop()


def test_worker_metrics_listen_on_loopback_unless_told(database_url: str, tmp_path: Path) -> None:
    """A worker process's own /metrics listens on loopback, not on every interface: a worker
    process of `loadbay serve` and a `loadbay worker` alike; LOADBAY_WORKER_METRICS_HOST names
    another address (127.0.0.2 here: loopback too, so nothing is opened to the network)."""
    ports = [free_port() for _ in range(2)]
    env = FAST_HEARTBEAT | {"LOADBAY_WORKER_METRICS_PORT": str(ports[0])}
    server = start_server(database_url, tmp_path, workers=0, processes=1, env=env)
    worker = start_worker(database_url, tmp_path, env={"LOADBAY_WORKER_METRICS_PORT": str(ports[1])})
    try:
        wait_until(lambda: all(listening(port) for port in ports))
        assert [listening(port) for port in ports] == [{"127.0.0.1"}, {"127.0.0.1"}]
    finally:
        worker.kill()
        worker.wait()
        server.stop()

    env |= {"LOADBAY_WORKER_METRICS_HOST": "127.0.0.2"}
    server = start_server(database_url, tmp_path, workers=0, processes=1, env=env)
    try:
        wait_until(lambda: listening(ports[0]))
        assert listening(ports[0]) == {"127.0.0.2"}
        own = httpx.get(f"http://127.0.0.2:{ports[0]}/metrics", timeout=10).text
        assert "loadbay_chunk_apply_seconds" in own
    finally:
        server.stop()


def test_worker_metrics_listen_on_the_address_serve_and_the_setting_name(
    database_url: str, tmp_path: Path
) -> None:
    """The worker processes of `loadbay serve --host H` serve their own /metrics on H; a
    `loadbay worker` on LOADBAY_WORKER_METRICS_HOST (127.0.0.2: loopback, nothing opened)."""
    ports = [free_port() for _ in range(3)]
    env = _env(database_url, tmp_path, FAST_HEARTBEAT | {"LOADBAY_WORKER_METRICS_PORT": str(ports[0])})
    args = [sys.executable, "-m", "loadbay", "serve", "--host", "127.0.0.2", "--port", str(ports[2])]
    with (tmp_path / "serve.log").open("wb") as log:
        serve = subprocess.Popen([*args, "--workers", "1"], env=env, stdout=log, stderr=subprocess.STDOUT)
    chosen = {"LOADBAY_WORKER_METRICS_PORT": str(ports[1]), "LOADBAY_WORKER_METRICS_HOST": "127.0.0.2"}
    worker = start_worker(database_url, tmp_path, env=chosen)
    try:
        wait_until(lambda: all(listening(port) for port in ports))
        assert [listening(port) for port in ports] == [{"127.0.0.2"}] * 3
    finally:
        for process in (worker, serve):
            process.terminate()
            process.wait(30)


def test_a_metrics_port_taken_is_one_line_naming_it(database_url: str, tmp_path: Path) -> None:
    """A second `loadbay worker` with the same LOADBAY_WORKER_METRICS_PORT on one machine (the
    docs give every process the same settings) exits 1 with one line naming the address and
    the setting, no traceback (it was a Rich traceback ending in `OSError: [Errno 98] Address
    already in use`); a worker process of `loadbay serve` whose port is taken says so too."""
    port = free_port()
    env = FAST_HEARTBEAT | {"LOADBAY_WORKER_METRICS_PORT": str(port)}
    first = start_worker(database_url, tmp_path, env=env)
    server = None
    try:
        wait_until(lambda: listening(port))
        second = start_worker(database_url, tmp_path, env=env)
        assert second.wait(60) == 1
        said = sorted(tmp_path.glob("worker-*.log"))[-1].read_text()  # (the second's: the newest)
        assert said.count("\n") == 1 and "Traceback" not in said, said
        assert f"127.0.0.1:{port} (LOADBAY_WORKER_METRICS_PORT={port})" in said, said
        assert "Address already in use" in said and "a port of its own" in said, said
        assert first.poll() is None, "the first worker goes on"

        server = start_server(database_url, tmp_path / "serve", workers=0, processes=1, env=env)
        taken = f"127.0.0.1:{port} (LOADBAY_WORKER_METRICS_PORT={port} plus worker process 0)"
        wait_until(lambda: taken in server.log.read_text())
    finally:
        first.terminate()
        first.wait(30)
        if server is not None:
            server.stop()
    assert server is not None and "Traceback" not in server.log.read_text(), server.log.read_text()


def listening(port: int) -> set[str]:
    """The addresses sockets listen on at `port` (TCP, IPv4 and IPv6), read from /proc/net."""
    found = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        rows = path.read_text().splitlines()[1:] if path.exists() else []
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # (0A: LISTEN)
                # each 32-bit word of the address is in the host's (little-endian) order
                raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8))
                found.add(str(ipaddress.ip_address(raw)))
    return found


def wait_until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")
