"""The `loadbay` CLI against a real server: accounts, push --wait, status, results."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import Server, start_server

ROWS = 100_000


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default upload limit (the shared fixture's is 5 MB)."""
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"))
    yield running
    running.stop()


def loadbay(server: Server, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = server.env | {"LOADBAY_URL": server.url, "LOADBAY_API_KEY": key}
    return subprocess.run(
        [sys.executable, "-m", "loadbay", *args], env=env, capture_output=True, text=True, timeout=600
    )


def write_customers(path: Path, rows: int) -> set[int]:
    """A customer CSV where every 100th row (offset 7) has a bad email; returns the bad indexes."""
    bad = {i for i in range(rows) if i % 100 == 7}
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["customer_number", "name", "email", "country", "balance"])
        for i in range(rows):
            email = "bad-email" if i in bad else f"c{i}@example.com"
            writer.writerow([f"C{i:07d}", f"Customer {i}", email, "US", f"{i % 5000}.{i % 100:02d}"])
    return bad


def test_accounts_create_json(server: Server) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "loadbay", "accounts", "create", "shop", "--test", "--json"],
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    )
    account = json.loads(out.stdout)
    assert set(account) == {"id", "name", "test", "api_key"}
    assert account["name"] == "shop" and account["test"] is True
    assert account["api_key"].startswith("lb_test_")


def test_push_wait_100k_rows(server: Server, key: str, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    bad = write_customers(source, ROWS)
    pushed = loadbay(server, key, "push", str(source), "--type", "billing.customer", "--wait")
    assert pushed.returncode == 0, pushed.stderr
    batch_id = int(re.search(r"batch (\d+) submitted", pushed.stdout).group(1))  # type: ignore[union-attr]
    progress = [int(m) for m in re.findall(r"^\w+ (\d+)/\d+$", pushed.stderr, re.M)]
    assert len(set(progress)) >= 3, f"the progress never moved: {pushed.stderr}"
    assert progress == sorted(progress) and progress[-1] == ROWS
    assert f"{ROWS} records, {ROWS - len(bad)} succeeded, {len(bad)} invalid, 0 failed" in pushed.stdout

    with server.client(key) as client:
        seen: list[tuple[int, str]] = []
        params = {"limit": "1000"}
        while True:
            page = client.get(f"/v1/batches/{batch_id}/errors", params=params).json()
            seen += [(e["index"], e["code"]) for e in page["data"]]
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
    assert sorted(seen) == [(i, "INVALID_EMAIL") for i in sorted(bad)]

    target = tmp_path / "results.csv"
    fetched = loadbay(server, key, "results", str(batch_id), "-o", str(target))
    assert fetched.returncode == 0, fetched.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == ROWS
    assert [r["customer_number"] for r in rows[:3]] == ["C0000000", "C0000001", "C0000002"]
    assert {i for i, r in enumerate(rows) if r["loadbay_status"] == "invalid"} == bad

    status = loadbay(server, key, "status", str(batch_id))
    assert "completed (partial)" in status.stdout


def test_push_of_unreadable_file_exits_nonzero(server: Server, key: str, tmp_path: Path) -> None:
    source = tmp_path / "broken.csv"
    source.write_text("customer_number\nC1\n")  # no `name` column
    pushed = loadbay(server, key, "push", str(source), "--type", "billing.customer", "--wait")
    assert pushed.returncode == 1
    assert "error MISSING_COLUMN" in pushed.stdout and "name" in pushed.stdout


def test_push_with_unknown_type_says_so(server: Server, key: str, tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("a\n1\n")
    pushed = loadbay(server, key, "push", str(source), "--type", "nope")
    assert pushed.returncode == 2
    assert "UNKNOWN_TYPE" in pushed.stderr
