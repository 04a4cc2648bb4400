"""`loadbay push --wait` while the server goes away: killed (SIGKILL) and started again on the
same port and database, or not started yet. The push carries on with the same batch and exits
with the batch's outcome, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from loadbay.cli import ExitCode
from tests.support.servers import Server, _wait_healthy, free_port, start_server

CUSTOMERS = "customer_number,name,email\nC1,Ada,ada@example.com\nC2,Bob,bad\nC3,Cy,cy@example.com\n"


def serve(url: str, env: dict[str, str], log: Path, workers: int = 2) -> Server:
    """`loadbay serve` on the URL's port with this environment (database, data dir)."""
    port = url.rsplit(":", 1)[1]
    args = [sys.executable, "-m", "loadbay", "serve", "--port", port, "--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(url, process, env, log)
    _wait_healthy(server)
    return server


def server_env(database_url: str, data_dir: Path) -> dict[str, str]:
    """What tests.support.servers gives a server: this database and data dir, quick polls."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADBAY_")}
    env |= {"LOADBAY_DATABASE_URL": database_url, "LOADBAY_DATA_DIR": str(data_dir)}
    return env | {"LOADBAY_POLL_INTERVAL": "0.05", "LOADBAY_SECRET_KEY": "test-secret"}


def push_wait(env: dict[str, str], source: Path, stderr: Path) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "loadbay", "push", str(source), "--type", "billing.customer", "--wait"]
    with stderr.open("w") as err:
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=err, text=True)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def test_push_wait_carries_on_after_the_server_is_killed_and_restarted(
    database_url: str, tmp_path: Path
) -> None:
    first = start_server(database_url, tmp_path / "data", workers=0)  # takes batches, applies none
    key = first.account("restarts")
    source, stderr = tmp_path / "customers.csv", tmp_path / "push.err"
    source.write_text(CUSTOMERS)
    env = first.env | {"LOADBAY_URL": first.url, "LOADBAY_API_KEY": key, "LOADBAY_RETRY_FOR": "60"}
    cli = push_wait(env, source, stderr)
    second = None
    try:
        with first.client(key) as client:
            wait_for(
                lambda: [b["status"] for b in client.get("/v1/batches").json()["data"]] == ["queued"], "batch"
            )
        first.kill()
        wait_for(lambda: "no answer" in stderr.read_text(), "retry by the CLI")
        second = serve(first.url, first.env, tmp_path / "serve-again.log")
        stdout, _ = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
        for server in (first, second):
            if server is not None:
                server.stop()
    errors = stderr.read_text()
    assert cli.returncode == ExitCode.RECORDS_REFUSED, stdout + errors
    assert "Traceback" not in errors
    assert "completed (partial): 3 records, 2 succeeded, 1 invalid, 0 failed, 0 unprocessed" in stdout
    assert stdout.count("submitted") == 1
    assert len(first.query("SELECT id FROM batches")) == 1, "the push made one batch"


def test_push_waits_for_a_server_that_is_starting(database_url: str, tmp_path: Path) -> None:
    """A push made before the server listens is sent once it does (within --retry-for)."""
    env = server_env(database_url, tmp_path / "data")
    made = subprocess.run(
        [sys.executable, "-m", "loadbay", "accounts", "create", "early"],
        env=env,
        capture_output=True,
        text=True,
    )
    key = made.stdout.split("API key: ")[1].strip()
    url = f"http://127.0.0.1:{free_port()}"
    source, stderr = tmp_path / "customers.csv", tmp_path / "push.err"
    source.write_text(CUSTOMERS.replace("bad", "bob@example.com"))
    cli = push_wait(
        env | {"LOADBAY_URL": url, "LOADBAY_API_KEY": key, "LOADBAY_RETRY_FOR": "60"}, source, stderr
    )
    server = None
    try:
        wait_for(lambda: "no answer" in stderr.read_text(), "retry by the CLI")
        server = serve(url, env, tmp_path / "serve.log")
        stdout, _ = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
        if server is not None:
            server.stop()
    assert cli.returncode == ExitCode.OK, stdout + stderr.read_text()
    assert "completed (succeeded): 3 records, 3 succeeded" in stdout


def test_no_server_at_all_is_exit_6_within_the_retry_time(tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text(CUSTOMERS)
    env = {"PATH": "/usr/bin:/bin", "LOADBAY_API_KEY": "lb_live_x", "LOADBAY_RETRY_FOR": "2"}
    env["LOADBAY_URL"] = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    pushed = subprocess.run(
        [sys.executable, "-m", "loadbay", "push", str(source), "--type", "billing.customer", "--wait"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert pushed.returncode == ExitCode.UNREACHABLE
    assert "Traceback" not in pushed.stderr
    assert pushed.stderr.splitlines()[-1].startswith("unreachable no answer from http://127.0.0.1:")
    assert 2 <= took < 10, f"retried for {took:.1f} s with LOADBAY_RETRY_FOR=2"
    shown = subprocess.run(
        [sys.executable, "-m", "loadbay", "show", "1", "--retry-for", "0"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == ExitCode.UNREACHABLE and "Traceback" not in shown.stderr
