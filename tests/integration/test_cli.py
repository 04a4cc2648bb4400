"""The `loadbay` CLI against a real server, run as a user runs it (`python -m loadbay …` in a
subprocess): each command, each format, and the exit status of each way a command ends."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from loadbay.cli import EXIT_MEANINGS, ExitCode
from loadbay.db.engine import alembic_config
from tests.support.accounts import make_keys
from tests.support.servers import Server, _wait_healthy, free_port, start_server

ROWS = 20_000
HEADER = "customer_number,name,email\n"


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default upload limit (the shared fixture's is 5 MB) and small chunks,
    so that a batch's progress moves in steps."""
    env = {"LOADBAY_CHUNK_SIZE": "1000"}
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), env=env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def keys(server: Server) -> Iterator[str]:
    """API keys of fresh accounts, made in one process (an account per test)."""
    return iter(make_keys(server, "cli", 40))


@pytest.fixture
def key(keys: Iterator[str]) -> str:
    return next(keys)


def run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "loadbay", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def loadbay(server: Server, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = server.env | {"LOADBAY_URL": server.url, "LOADBAY_API_KEY": key, "COLUMNS": "200"}
    return run(env, *args)


def batch_id(pushed: subprocess.CompletedProcess[str]) -> int:
    found = re.search(r"^batch (\d+) ", pushed.stdout, re.M)
    assert found, pushed.stdout + pushed.stderr
    return int(found[1])


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


def batches_of(server: Server, key: str) -> list[dict[str, object]]:
    with server.client(key) as client:
        data: list[dict[str, object]] = client.get("/v1/batches").json()["data"]
        return data


# no server needed ------------------------------------------------------------------------------


def test_version_and_the_exit_codes_in_the_help(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    version = run(env, "--version")
    assert version.returncode == 0 and re.fullmatch(r"loadbay \d+\.\d+\.\d+\n", version.stdout)
    helped = run(env, "--help")
    for code, meaning in EXIT_MEANINGS.items():
        assert re.search(rf"^\W*{int(code)}\s+{re.escape(meaning)}", helped.stdout, re.M), meaning
    for command in ("push", "list", "show", "errors", "results", "watch", "process", "cancel", "types"):
        assert re.search(rf"^\W*{command}\s", helped.stdout, re.M), command
    assert "Exit status" in run(env, "push", "--help").stdout
    assert len(set(ExitCode)) == len(ExitCode) == len(EXIT_MEANINGS)


def serve_demo(
    data_dir: Path,
    until: str = "worker process 0 started",
    while_up: Callable[[Server, list[str]], None] | None = None,
    **settings: str,
) -> list[str]:
    """What `loadbay serve --demo` (`make run`) prints until it answers and its worker process
    has started (and migrated too: it prints `until`), in its lines; the server is stopped
    then (after `while_up`, given the server and those lines). `settings`: LOADBAY_ variables
    by their names (LOG_LEVEL="debug")."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADBAY_")}
    env |= {f"LOADBAY_{name}": value for name, value in settings.items()}
    log = data_dir.parent / f"serve-{port}.log"
    args = ["serve", "--port", str(port), "--demo", "--workers", "1", "--data-dir", str(data_dir)]
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "loadbay", *args], env=env, stdout=out, stderr=out)
    server = Server(f"http://127.0.0.1:{port}", process, env, log)
    try:
        _wait_healthy(server)
        deadline = time.monotonic() + 60
        while until not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        if while_up is not None:
            while_up(server, log.read_text().splitlines())
    finally:
        server.stop()
    return log.read_text().splitlines()


def test_serve_demo_shows_its_address_and_key_first(tmp_path: Path) -> None:
    """A newcomer's `make run` shows the server's address and the demo key at the top: the
    migrations of a new database are one line (Alembic's were 13 before them, and 2 more per
    worker process), and none once it is migrated."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    count, head = len(list(scripts.walk_revisions())), scripts.get_current_head()
    migrated = f"INFO loadbay.db.engine: database migrated to revision {head} ({count} migrations applied)"
    for start, said in (("new database", [migrated]), ("migrated database", [])):
        lines = serve_demo(tmp_path / "data")
        key_at = next(i for i, line in enumerate(lines) if line.startswith("demo account API key: lb_"))
        before = [line for line in lines[:key_at] if line.strip()]
        assert [line.split(" ", 2)[-1] for line in before[:-1]] == said, (start, lines)
        assert before[-1].startswith("loadbay at http://127.0.0.1:"), (start, lines)
        assert any("worker process 0 started" in line for line in lines), (start, lines)
        assert not [line for line in lines if "alembic" in line], (start, lines)


def test_serve_demo_makes_the_demo_account_again_in_a_new_database(tmp_path: Path) -> None:
    """A database made anew beside the demo key of an old one (data/loadbay.db removed,
    data/demo-api-key kept): the key printed was the old one, which no account had, and every
    request with it was a 401. The demo account is made again, and its key printed and kept."""
    data = tmp_path / "data"

    def answers(server: Server, lines: list[str]) -> None:
        key = next(line for line in lines if line.startswith("demo account API key: lb_")).split(": ")[1]
        assert (data / "demo-api-key").read_text().strip() == key
        with server.client(key) as client:
            account = client.get("/v1/account")
        assert account.status_code == 200 and account.json()["name"] == "demo", account.text

    first = serve_demo(data, while_up=answers)
    (data / "loadbay.db").unlink()
    again = serve_demo(data, while_up=answers)
    kept = serve_demo(data, while_up=answers)  # the same database: the same key
    keys = [
        [line for line in lines if line.startswith("demo account API key:")] for lines in (first, again, kept)
    ]
    assert keys[0] != keys[1] == keys[2], keys


def test_the_log_level_is_a_setting(tmp_path: Path) -> None:
    """LOADBAY_LOG_LEVEL=debug shows what loadbay logs at DEBUG, each migration applied
    among them, in the server and in its worker process; in any letter case."""
    lines = serve_demo(tmp_path / "data", until="chunks of 4000 records", LOG_LEVEL="DEBUG")
    assert any("DEBUG loadbay.db.engine: applied migration 0001" in line for line in lines), lines
    assert any(" DEBUG loadbay.supervisor [worker " in line for line in lines), lines
    quiet = serve_demo(tmp_path / "data", until="", LOG_LEVEL="warning")
    assert not [line for line in quiet if " INFO " in line or " DEBUG " in line], quiet
    assert any(line.startswith("demo account API key: lb_") for line in quiet), quiet


# accounts and push -----------------------------------------------------------------------------


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


def test_push_wait_shows_progress_then_points_to_the_refused_records(
    server: Server, key: str, tmp_path: Path
) -> None:
    source = tmp_path / "customers.csv"
    bad = write_customers(source, ROWS)
    pushed = loadbay(server, key, "push", str(source), "--type", "billing.customer", "--wait")
    assert pushed.returncode == ExitCode.RECORDS_REFUSED, pushed.stderr
    number = batch_id(pushed)
    assert f"batch {number} submitted" in pushed.stdout
    assert f"{ROWS} records, {ROWS - len(bad)} succeeded, {len(bad)} invalid, 0 failed" in pushed.stdout

    lines = re.findall(r"^(\w+) (\d+)/(\d+|\?)(.*)$", pushed.stderr, re.M)
    done = [int(d) for _, d, _, _ in lines]
    assert len(set(done)) >= 3, f"the progress never moved: {pushed.stderr}"
    assert done == sorted(done) and done[-1] == ROWS
    assert {t for _, _, t, _ in lines} <= {"?", str(ROWS)}, "a total is unknown or the true one"
    assert lines[0][2] == "?", "the total is not known while the batch is queued"
    assert any("records/s" in rest for *_, rest in lines), "a rate is shown while it works"

    assert f"{len(bad)} of {ROWS} records refused ({len(bad)} invalid" in pushed.stderr
    assert f"loadbay errors {number}\n" in pushed.stderr
    assert f"{server.url}/v1/batches/{number}/results?outcome=invalid,failed,unprocessed" in pushed.stderr

    fetched = loadbay(server, key, "results", str(number))
    assert fetched.returncode == 0, fetched.stderr
    rows = list(csv.DictReader(io.StringIO(fetched.stdout)))
    assert len(rows) == ROWS
    assert [r["customer_number"] for r in rows[:3]] == ["C0000000", "C0000001", "C0000002"]
    assert {i for i, r in enumerate(rows) if r["loadbay_status"] == "invalid"} == bad


ADA, BOB = '{"customer_number": "C1", "name": "Ada"}', '{"customer_number": "C2", "name": "Bob"}'
CUSTOMERS = {
    "customers.csv": HEADER + "C1,Ada,ada@example.com\nC2,Bob,bob@example.com\n",
    "customers.tsv": "customer_number\tname\temail\nC1\tAda\tada@example.com\nC2\tBob\tbob@example.com\n",
    "customers.jsonl": f"{ADA}\n{BOB}\n",
    "customers.ndjson": f"{ADA}\n{BOB}\n",
    "customers.json": f"[{ADA}, {BOB}]",
}


@pytest.mark.parametrize("name", CUSTOMERS)
def test_push_reads_the_format_from_the_extension(
    server: Server, key: str, tmp_path: Path, name: str
) -> None:
    source = tmp_path / name
    source.write_text(CUSTOMERS[name])
    pushed = loadbay(server, key, "push", str(source), "--type", "billing.customer", "--wait")
    assert pushed.returncode == ExitCode.OK, pushed.stdout + pushed.stderr
    assert "completed (succeeded): 2 records, 2 succeeded" in pushed.stdout


@pytest.mark.parametrize("name", ["customers.xlsx", "customers.txt", "customers.csv.gz"])
def test_push_refuses_other_files_before_sending_anything(
    server: Server, key: str, tmp_path: Path, name: str
) -> None:
    source = tmp_path / name
    source.write_bytes(b"PK\x03\x04 not really")
    pushed = loadbay(server, key, "push", str(source), "--type", "billing.customer")
    assert pushed.returncode == ExitCode.USAGE
    assert "loadbay reads .csv, .tsv, .jsonl, .ndjson, .json files" in pushed.stderr
    if name.endswith(".xlsx"):
        assert "save the sheet as CSV" in pushed.stderr
    assert batches_of(server, key) == []


def test_a_push_again_with_the_same_job_id_reports_the_batch(
    server: Server, key: str, tmp_path: Path
) -> None:
    source = tmp_path / "c.csv"
    source.write_text(HEADER + "C1,Ada,ada@example.com\nC2,Bob,not-an-email\n")
    args = ("push", str(source), "--type", "billing.customer", "--job-id", "nightly-1", "--wait")
    first = loadbay(server, key, *args)
    assert first.returncode == ExitCode.RECORDS_REFUSED, first.stderr
    again = loadbay(server, key, *args)
    assert again.returncode == ExitCode.RECORDS_REFUSED, again.stderr
    number = batch_id(first)
    assert f"batch {number} already exists for job id 'nightly-1': completed" in again.stdout
    assert "submitted" not in again.stdout
    assert [b["id"] for b in batches_of(server, key)] == [number]

    other = loadbay(server, key, *args, "--manual")
    assert other.returncode == ExitCode.REQUEST_REFUSED
    assert (
        f"refused HTTP 409 JOB_ID_CONFLICT: job_id 'nightly-1' already names batch {number}" in other.stderr
    )
    assert "choose another --job-id" in other.stderr


def test_pushes_without_a_job_id_are_separate_batches(server: Server, key: str, tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text(HEADER + "C1,Ada,ada@example.com\n")
    first = loadbay(server, key, "push", str(source), "--type", "billing.customer")
    second = loadbay(server, key, "push", str(source), "--type", "billing.customer")
    assert first.returncode == second.returncode == ExitCode.OK
    assert batch_id(first) != batch_id(second)
    assert all(str(b["job_id"]).startswith("cli-") for b in batches_of(server, key))


def test_a_file_that_cannot_be_read_is_a_failed_batch(server: Server, key: str, tmp_path: Path) -> None:
    source = tmp_path / "broken.csv"
    source.write_text("customer_number\nC1\n")  # no `name` column
    pushed = loadbay(server, key, "push", str(source), "--type", "billing.customer", "--wait")
    assert pushed.returncode == ExitCode.BATCH_FAILED
    assert "error MISSING_COLUMN" in pushed.stdout and "name" in pushed.stdout


def test_unknown_columns_are_warned_of(server: Server, key: str, tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("customer_number,name,colour\nC1,Ada,red\n")
    pushed = loadbay(server, key, "push", str(source), "--type", "billing.customer", "--wait")
    assert pushed.returncode == ExitCode.OK
    assert pushed.stderr.count("warning") == 1 and "colour" in pushed.stderr


def test_a_refused_request_is_one_line_with_the_servers_code(
    server: Server, key: str, tmp_path: Path
) -> None:
    source = tmp_path / "c.csv"
    source.write_text("a\n1\n")
    pushed = loadbay(server, key, "push", str(source), "--type", "nope")
    assert pushed.returncode == ExitCode.REQUEST_REFUSED
    assert re.fullmatch(r"refused HTTP 400 UNKNOWN_TYPE: unknown batch type 'nope'[^\n]*\n", pushed.stderr)
    assert loadbay(server, "lb_live_wrong", "show", "1").returncode == ExitCode.REQUEST_REFUSED
    missing = loadbay(server, key, "show", "999999")
    assert missing.returncode == ExitCode.REQUEST_REFUSED and "NOT_FOUND" in missing.stderr
    assert loadbay(server, "", "show", "1").returncode == ExitCode.USAGE


# reading batches ---------------------------------------------------------------------------------


def test_list_show_and_their_filters(server: Server, key: str, tmp_path: Path) -> None:
    good, broken = tmp_path / "good.csv", tmp_path / "broken.csv"
    good.write_text(HEADER + "C1,Ada,ada@example.com\n")
    broken.write_text("customer_number\nC1\n")
    push = ("push", "--type", "billing.customer", "--wait", "--job-id")
    first = batch_id(loadbay(server, key, *push, "june-good", str(good), "--description", "June"))
    second = batch_id(loadbay(server, key, *push, "june-broken", str(broken)))

    listed = loadbay(server, key, "list", "--json")
    assert [b["id"] for b in json.loads(listed.stdout)] == [second, first], "newest first"
    for args, expected in [
        (("--status", "error"), [second]),
        (("--type", "billing.customer", "--search", "GOOD"), [first]),
        (("--search", "june"), [second, first]),
        (("--type", "billing.payment"), []),
        (("--limit", "1"), [second]),
    ]:
        found = json.loads(loadbay(server, key, "list", "--json", *args).stdout)
        assert [b["id"] for b in found] == expected, args
    table = loadbay(server, key, "list").stdout
    assert re.search(rf"{second}\s.*billing\.customer.*error.*june-broken", table)

    shown = loadbay(server, key, "show", str(first))
    assert shown.returncode == 0
    assert f"batch {first} completed (succeeded): 1 record," in shown.stdout
    assert "June" in shown.stdout and "june-good" in shown.stdout
    as_json = json.loads(loadbay(server, key, "show", str(second), "--json").stdout)
    assert as_json["status"] == "error" and as_json["error"]["code"] == "MISSING_COLUMN"
    assert "completed (succeeded)" in loadbay(server, key, "status", str(first)).stdout


def test_errors_grouped_and_listed(server: Server, key: str, tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text(HEADER + "C1,Ada,bad-1\nC2,Bob,bob@example.com\nC3,,bad-3\nC4,Dan,bad-4\n")
    number = batch_id(loadbay(server, key, "push", str(source), "--type", "billing.customer", "--wait"))

    grouped = loadbay(server, key, "errors", str(number))
    assert grouped.returncode == 0
    assert re.search(r"INVALID_EMAIL\s.*email\s.*3\s.*#0 C1", grouped.stdout)
    summary = json.loads(loadbay(server, key, "errors", str(number), "--json").stdout)
    assert summary["total"] == 4
    assert {(g["code"], g["field"], g["count"]) for g in summary["groups"]} >= {("INVALID_EMAIL", "email", 3)}

    every = json.loads(loadbay(server, key, "errors", str(number), "--list", "--json").stdout)
    assert sorted((e["index"], e["field"]) for e in every) == [
        (0, "email"),
        (2, "email"),
        (2, "name"),
        (3, "email"),
    ]
    names = json.loads(loadbay(server, key, "errors", str(number), "--field", "name", "--json").stdout)
    assert [(e["index"], e["field"]) for e in names] == [(2, "name")]
    listed = loadbay(server, key, "errors", str(number), "--list", "--limit", "2").stdout
    assert re.findall(r"^\W*(\d+)\s+[│|]\s+C\d", listed, re.M) == ["0", "2"]

    invalid = loadbay(server, key, "results", str(number), "--outcome", "invalid")
    assert [r["customer_number"] for r in csv.DictReader(io.StringIO(invalid.stdout))] == ["C1", "C3", "C4"]
    target = tmp_path / "ok.csv"
    written = loadbay(server, key, "results", str(number), "--outcome", "succeeded", "-o", str(target))
    assert written.returncode == 0 and written.stdout == ""
    assert [r["customer_number"] for r in csv.DictReader(io.StringIO(target.read_text()))] == ["C2"]
    assert not list(tmp_path.glob("*.part"))


def test_errors_of_groups_past_those_listed_are_counted(server: Server, key: str, tmp_path: Path) -> None:
    """52 groups (an unknown field each): the table lists 50 and says so of the 2 others (it
    titled "52 record errors" over rows summing to 50, without a word)."""
    source = tmp_path / "items.jsonl"
    source.write_text("".join(json.dumps({"id": f"G{i}", f"bogus_{i:02}": 1}) + "\n" for i in range(52)))
    number = batch_id(loadbay(server, key, "push", str(source), "--type", "catalog.user1", "--wait"))
    grouped = loadbay(server, key, "errors", str(number))
    assert grouped.returncode == 0, grouped.stderr
    assert "2 more errors in groups not listed here" in grouped.stderr
    assert len(re.findall(r"UNKNOWN_FIELD", grouped.stdout)) == 50


def test_two_phase_process_cancel_and_watch(server: Server, key: str, tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text(HEADER + "C1,Ada,ada@example.com\nC2,Bob,bad\n")
    push = ("push", str(source), "--type", "billing.customer", "--manual", "--wait")
    validated = loadbay(server, key, *push)
    assert validated.returncode == ExitCode.RECORDS_REFUSED, validated.stderr
    number = batch_id(validated)
    assert f"batch {number} validated" in validated.stdout
    assert f"loadbay process {number}" in validated.stderr
    assert f"loadbay results {number} --outcome invalid\n" in validated.stderr  # what it can list yet
    early = loadbay(server, key, "results", str(number), "--outcome", "invalid")
    assert early.returncode == 0, early.stderr
    assert [r["customer_number"] for r in csv.DictReader(io.StringIO(early.stdout))] == ["C2"]
    whole = loadbay(server, key, "results", str(number))
    assert whole.returncode == ExitCode.REQUEST_REFUSED
    assert "409 RESULTS_NOT_READY" in whole.stderr and "outcome=invalid" in whole.stderr

    processed = loadbay(server, key, "process", str(number), "--wait")
    assert processed.returncode == ExitCode.RECORDS_REFUSED, processed.stderr
    assert f"batch {number} completed (partial): 2 records, 1 succeeded, 1 invalid" in processed.stdout
    again = loadbay(server, key, "process", str(number))
    assert again.returncode == ExitCode.REQUEST_REFUSED and "409" in again.stderr

    other = batch_id(loadbay(server, key, *push))
    cancelled = loadbay(server, key, "cancel", str(other))
    assert cancelled.returncode == 0 and f"batch {other} cancelled" in cancelled.stdout
    watched = loadbay(server, key, "watch", str(other))
    assert watched.returncode == ExitCode.BATCH_FAILED
    assert f"batch {other} cancelled" in watched.stdout


def test_watch_follows_a_pushed_batch_to_its_end(server: Server, key: str, tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    write_customers(source, 3000)
    pushed = loadbay(server, key, "push", str(source), "--type", "billing.customer")
    assert pushed.returncode == ExitCode.OK
    watched = loadbay(server, key, "watch", str(batch_id(pushed)), "--json")
    assert watched.returncode == ExitCode.RECORDS_REFUSED
    assert json.loads(watched.stdout)["counts"]["succeeded"] == 2970


def test_types_their_columns_and_template(server: Server, key: str, tmp_path: Path) -> None:
    listed = loadbay(server, key, "types")
    assert listed.returncode == 0 and re.search(r"billing\.customer\s.*customer_number", listed.stdout)
    columns = loadbay(server, key, "types", "billing.customer")
    assert re.search(r"customer_number\s.*yes", columns.stdout)
    assert re.search(r"\bemail\s+[│|]\s+[│|]", columns.stdout), "email is not required"
    described = json.loads(loadbay(server, key, "types", "billing.customer", "--json").stdout)
    assert described["required"] == ["customer_number", "name"]
    template = loadbay(server, key, "types", "billing.customer", "--template")
    assert template.stdout.splitlines()[0].startswith("customer_number,name,email")
    target = tmp_path / "template.csv"
    assert loadbay(server, key, "types", "billing.customer", "-o", str(target)).returncode == 0
    assert target.read_text() == template.stdout
    unknown = loadbay(server, key, "types", "nope")
    assert unknown.returncode == ExitCode.REQUEST_REFUSED and "UNKNOWN_TYPE" in unknown.stderr
