"""Real loadbay processes for tests: `loadbay serve` and `loadbay worker` on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.support.ports import free_port
from tests.support.s3 import S3Store

__all__ = ["Server", "free_port", "start_server", "start_worker", "wait_final"]

FINAL = {"completed", "error", "cancelled", "cleared"}


def _env(database_url: str, data_dir: Path, extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADBAY_")}
    env |= {"LOADBAY_DATABASE_URL": database_url, "LOADBAY_DATA_DIR": str(data_dir)}
    env |= {"LOADBAY_POLL_INTERVAL": "0.05", "LOADBAY_SECRET_KEY": "test-secret"}
    return env | (extra or {})


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path
    keys: dict[str, str] = field(default_factory=dict)
    s3: S3Store | None = None  # the bucket it keeps its files in (None: a local directory)

    def account(self, name: str, *, test: bool = False) -> str:
        """Create an account with the real CLI and return its API key."""
        args = [sys.executable, "-m", "loadbay", "accounts", "create", name, "--json"]
        out = subprocess.run(
            args + (["--test"] if test else []), env=self.env, check=True, capture_output=True
        )
        key: str = json.loads(out.stdout)["api_key"]
        return key

    def query(self, sql: str, **params: Any) -> list[Any]:
        """Rows of a read straight from the server's database (what the domain tables hold)."""
        url = self.env["LOADBAY_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        finally:
            engine.dispose()

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        auth = {"X-Api-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=auth | headers, timeout=30.0)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def start_server(
    database_url: str,
    data_dir: Path,
    *,
    workers: int = 2,
    processes: int = 0,
    env: dict[str, str] | None = None,
    s3: S3Store | None = None,
) -> Server:
    """Start `loadbay serve` as a real process and wait until /healthz answers (`s3`: it
    keeps its files in that bucket).

    `workers`: worker threads inside the server (`--worker-threads`), which start at no cost;
    `processes`: worker processes it starts (`--workers`), about a second of CPU each."""
    port = free_port()
    full_env = _env(database_url, data_dir, (s3.env() if s3 else {}) | (env or {}))
    log = data_dir / f"serve-{port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "loadbay", "serve", "--port", str(port)]
    args += ["--workers", str(processes), "--worker-threads", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, full_env, log, s3=s3)
    _wait_healthy(server)
    return server


def _wait_healthy(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"loadbay serve exited:\n{server.log.read_text()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"loadbay serve did not become healthy:\n{server.log.read_text()}")


def start_worker(
    database_url: str,
    data_dir: Path,
    *,
    concurrency: int = 1,
    env: dict[str, str] | None = None,
    s3: S3Store | None = None,
) -> subprocess.Popen[bytes]:
    """Start a `loadbay worker` process (its output goes to a log in data_dir)."""
    args = [sys.executable, "-m", "loadbay", "worker", "--concurrency", str(concurrency)]
    log = data_dir / f"worker-{time.monotonic_ns()}.log"
    full_env = _env(database_url, data_dir, (s3.env() if s3 else {}) | (env or {}))
    with log.open("wb") as out:
        return subprocess.Popen(args, env=full_env, stdout=out, stderr=subprocess.STDOUT)


def wait_final(client: httpx.Client, batch_id: int, timeout: float = 120.0) -> dict[str, Any]:
    """Poll a batch until it reaches a final status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        waits = batch["status"] == "validated" and batch["process"] == "manual"
        # (a cancelled batch whose records not read yet are being read moves on still)
        if (batch["status"] in FINAL or waits) and not batch.get("unread_pending"):
            return batch
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} not final after {timeout}s: {batch}")
