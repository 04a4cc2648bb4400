"""`make soak`: SIGKILL loadbay's processes at random while batches run, then check that no
record was lost, applied twice or left unprocessed, and how long any batch went without
progress. A soak, not a test: it takes minutes (not in `make test`).

On each database: `loadbay serve --workers 1` and SOAK_WORKERS `loadbay worker
--concurrency 2` processes; every SOAK_KILL_EVERY seconds (on average) one of them, picked
at random, is SIGKILLed and started again at once, SOAK_KILLS times. Meanwhile a client
keeps SOAK_INFLIGHT batches of SOAK_ROWS customers running through the API (retrying
while the server is down); every third batch is two-phase (process=manual, then process).
Then the kills stop, every batch finishes, and the soak checks:

- every record has exactly one outcome (the result file has each record once);
- the domain table holds each valid record once (a record applied twice would have bumped
  its revision);
- no record is `unprocessed` (the settings are the defaults but the lease and chunk size);
- the longest stall: the longest time a batch that was queued, validating or processing
  made no progress (a new count or status), read from the database every 0.2 s.

Environment (all optional):
  SOAK_DATABASES=sqlite,postgres
  SOAK_KILLS=200          SIGKILLs per database
  SOAK_ROWS=10000         records per batch (every 97th has a bad email: invalid)
  SOAK_WORKERS=3          `loadbay worker` processes (the server runs one worker thread too)
  SOAK_INFLIGHT=3         batches running at once
  SOAK_KILL_EVERY=1.5     mean seconds between two kills (a restarted process takes a second or more to start)
  SOAK_MIN_UP=3           a process is killed only once it has been up this long (the server answering
                          /healthz, a worker running its threads): else, on a busy machine, restarted
                          processes could be killed again and again while Python still imports them
  SOAK_LEASE=5            LOADBAY_LEASE_SECONDS
  SOAK_CHUNK=500          LOADBAY_CHUNK_SIZE
  SOAK_STALL_LEASES=4     a stall longer than this many leases fails the soak
  SOAK_SEED               the random kills' seed (default: a new one, printed)
  SOAK_KEEP=1             keep the processes' logs (kept anyway when the soak fails)
  LOADBAY_SOAK_POSTGRES_URL  a PostgreSQL server the soak may CREATE DATABASE on; default:
                          the test suite's throwaway cluster (tests/support/postgres.py)
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text

if __package__ in (None, ""):  # `python bench/soak.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.postgres import create_database, drop_database, postgres_server_url
from tests.support.servers import free_port

BAD_EVERY = 97
FINAL = {"completed", "error", "cancelled", "cleared"}
RUNNING = {"queued", "validating", "processing"}  # states in which a batch must make progress


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class Config:
    kills: int = env_int("SOAK_KILLS", 200)
    rows: int = env_int("SOAK_ROWS", 10000)
    workers: int = env_int("SOAK_WORKERS", 3)
    inflight: int = env_int("SOAK_INFLIGHT", 3)
    kill_every: float = env_float("SOAK_KILL_EVERY", 1.5)
    min_up: float = env_float("SOAK_MIN_UP", 3)
    lease: float = env_float("SOAK_LEASE", 5)
    chunk: int = env_int("SOAK_CHUNK", 500)
    stall_leases: float = env_float("SOAK_STALL_LEASES", 4)
    seed: int = env_int("SOAK_SEED", random.randrange(1 << 30))


@dataclass
class Figures:
    database: str
    kills: int = 0
    records: int = 0
    lost: int = 0
    doubled: int = 0
    unprocessed: int = 0
    longest_stall: float = 0.0
    batches: int = 0
    notes: list[str] = field(default_factory=list)


# the processes --------------------------------------------------------------


class Fleet:
    """The server and the workers, each started again at once when killed."""

    def __init__(self, url: str, work: Path, config: Config) -> None:
        self.work = work
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LOADBAY_")} | {
            "LOADBAY_DATABASE_URL": url,
            "LOADBAY_DATA_DIR": str(work / "data"),
            "LOADBAY_SECRET_KEY": "soak",
            "LOADBAY_POLL_INTERVAL": "0.2",
            "LOADBAY_LEASE_SECONDS": str(config.lease),
            "LOADBAY_CHUNK_SIZE": str(config.chunk),
        }
        self.size = config.workers
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * (config.workers + 1)
        self.offsets = [0] * (config.workers + 1)  # where each one's log stood when it was started
        self.ready_at: list[float | None] = [None] * (config.workers + 1)  # first seen up (monotonic)
        self.min_up = config.min_up
        self.kills: Counter[str] = Counter()
        self.exited = 0  # processes that ended without being killed

    def start(self) -> None:
        self._start(self.size)  # the server first: it migrates the database
        wait_healthy(self.base_url)
        for i in range(self.size):
            self._start(i)

    def kill_one(self, rng: random.Random) -> bool:
        """SIGKILL one process picked at random among those up for SOAK_MIN_UP seconds and
        start it again (none when none is up that long); any that ended by itself is started
        again too. Whether one was killed."""
        for i, process in enumerate(self.processes):
            if process is not None and process.poll() is not None:
                self.exited += 1
                self._start(i)
        now = time.monotonic()
        up = [i for i in range(len(self.processes)) if self._up_for(i, now) >= self.min_up]
        if not up:
            return False
        i = rng.choice(up)
        process = self.processes[i]
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.kills["server" if i == self.size else "worker"] += 1
        self._start(i)
        return True

    def stop(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in self.processes:
            if process is not None:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def account_key(self) -> str:
        args = [sys.executable, "-m", "loadbay", "accounts", "create", "soak", "--json"]
        out = subprocess.run(args, env=self.env, check=True, capture_output=True)
        key: str = json.loads(out.stdout)["api_key"]
        return key

    def _start(self, i: int) -> None:
        if i == self.size:
            args = ["serve", "--port", str(self.port), "--workers", "1"]
        else:
            args = ["worker", "--concurrency", "2"]
        with self._log(i).open("ab") as log:
            self.offsets[i] = log.tell()
            self.processes[i] = subprocess.Popen(
                [sys.executable, "-m", "loadbay", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.ready_at[i] = None

    def _log(self, i: int) -> Path:
        return self.work / ("server.log" if i == self.size else f"worker-{i}.log")

    def _up_for(self, i: int, now: float) -> float:
        """How long process `i` has been up, as far as seen (0 while it starts)."""
        if self.ready_at[i] is None and self._ready(i):
            self.ready_at[i] = now
        ready = self.ready_at[i]
        return 0.0 if ready is None else now - ready

    def _ready(self, i: int) -> bool:
        """The server answers /healthz; a worker has said that its threads run."""
        if i == self.size:
            try:
                return httpx.get(self.base_url + "/healthz", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False
        with self._log(i).open("rb") as log:
            log.seek(self.offsets[i])
            return b"loadbay worker:" in log.read()


def wait_healthy(base_url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server at {base_url} did not answer /healthz")


# the client -----------------------------------------------------------------


class Api:
    """The native API, each call retried until the server answers it (it may be dead)."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.headers = {"X-Api-Key": key}

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + 600
        headers = self.headers | kwargs.pop("headers", {})
        while True:
            try:
                response = httpx.request(
                    method, self.base_url + path, headers=headers, timeout=60.0, **kwargs
                )
                if response.status_code < 500:
                    return response
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path}: no answer for 10 minutes")
            time.sleep(0.2)


def customers(batch: int, rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["customer_number", "name", "email", "balance"])
    for i in range(rows):
        email = "not-an-email" if i % BAD_EVERY == 0 else f"s{batch}-{i}@example.com"
        writer.writerow([number(batch, i), f"Customer {i}", email, f"{i % 1000}.{i % 100:02d}"])
    return out.getvalue().encode()


def number(batch: int, i: int) -> str:
    return f"S{batch:04d}-{i:07d}"


class Batches:
    """Runs batches through the API, SOAK_INFLIGHT at a time, each in its own thread."""

    def __init__(self, api: Api, monitor: Monitor, rows: int, inflight: int) -> None:
        self.api = api
        self.monitor = monitor
        self.rows = rows
        self.inflight = inflight
        self.started: list[tuple[int, str, threading.Thread]] = []
        self.ids: dict[int, int] = {}  # batch number -> batch id
        self.errors: list[str] = []

    def top_up(self) -> None:
        while sum(thread.is_alive() for _n, _m, thread in self.started) < self.inflight:
            n = len(self.started)
            mode = "manual" if n % 3 == 2 else "auto"
            thread = threading.Thread(target=self._run, args=(n, mode), daemon=True)
            self.started.append((n, mode, thread))
            thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for _n, _m, thread in self.started:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, n: int, mode: str) -> None:
        try:
            self._drive(n, mode)
        except Exception as exc:  # reported with the figures
            self.errors.append(f"batch {n}: {type(exc).__name__}: {exc}")

    def _drive(self, n: int, mode: str) -> None:
        spec = {"type": "billing.customer", "job_id": f"soak-{n}", "process": mode}
        created = self.api.call("POST", "/v1/batches", json=spec)
        created.raise_for_status()
        batch_id = int(created.json()["id"])
        self.ids[n] = batch_id
        if created.json()["status"] == "open":
            self._send(batch_id, customers(n, self.rows))
        if mode == "manual":
            self.monitor.wait_for(batch_id, lambda status: status not in ("open", "queued", "validating"))
            self.api.call("POST", f"/v1/batches/{batch_id}/process")  # 409 once it is processing
        self.monitor.wait_for(batch_id, lambda status: status in FINAL)

    def _send(self, batch_id: int, body: bytes) -> None:
        """Upload and submit; a retry after an answer that was lost meets 409 (not open)."""
        headers = {"Content-Type": "text/csv"}
        sent = self.api.call("PUT", f"/v1/batches/{batch_id}/data", content=body, headers=headers)
        if sent.status_code != 409:
            sent.raise_for_status()
        submitted = self.api.call("POST", f"/v1/batches/{batch_id}/submit")
        if submitted.status_code != 409:
            submitted.raise_for_status()


# progress, read from the database --------------------------------------------


class Monitor:
    """Reads every batch's status and counts every 0.2 s; keeps the longest stall."""

    QUERY = text("SELECT id, status, total, invalid, succeeded, failed, unprocessed FROM batches")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rows: dict[int, tuple[Any, ...]] = {}
        self.changed: dict[int, float] = {}
        self.longest = (0.0, 0, "", 0.0)  # seconds, batch id, status, since (time.time())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def status(self, batch_id: int) -> str | None:
        row = self.rows.get(batch_id)
        return None if row is None else str(row[0])

    def wait_for(self, batch_id: int, done: Any, timeout: float = 1800) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.status(batch_id) or "open"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"batch {batch_id} stuck in {self.status(batch_id)}")
            time.sleep(0.1)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                with self.engine.connect() as conn:
                    rows = {row[0]: tuple(row[1:]) for row in conn.execute(self.QUERY)}
            except Exception:  # SQLite busy for a moment: read again next time
                continue
            self._see(rows, time.time())

    def _see(self, rows: dict[int, tuple[Any, ...]], now: float) -> None:
        for batch_id, row in rows.items():
            if self.rows.get(batch_id) != row:
                self.changed[batch_id] = now
            elif row[0] in RUNNING:
                stall = now - self.changed[batch_id]
                if stall > self.longest[0]:
                    self.longest = (stall, batch_id, str(row[0]), self.changed[batch_id])
        self.rows = rows


# checks ---------------------------------------------------------------------


def check(api: Api, engine: Engine, batches: Batches, rows: int, figures: Figures) -> None:
    """Every record's outcome (the result file) and the domain table, batch by batch."""
    valid = rows - len(range(0, rows, BAD_EVERY))
    for n, _mode, _thread in batches.started:
        batch_id = batches.ids.get(n)
        if batch_id is None:
            figures.notes.append(f"batch {n} was never created")
            continue
        batch = api.call("GET", f"/v1/batches/{batch_id}").json()
        if batch["status"] != "completed":
            figures.notes.append(f"batch {batch_id}: {batch['status']} {batch.get('error_message')}")
        figures.batches += 1
        figures.records += rows
        figures.unprocessed += batch["counts"]["unprocessed"]
        _check_outcomes(api.call("GET", f"/v1/batches/{batch_id}/results").text, n, rows, figures)
        _check_domain(engine, n, valid, figures)


def _check_outcomes(result_file: str, n: int, rows: int, figures: Figures) -> None:
    seen = Counter(r["customer_number"] for r in csv.DictReader(io.StringIO(result_file)))
    expected = {number(n, i) for i in range(rows)}
    figures.lost += len(expected - set(seen))
    figures.doubled += sum(count - 1 for count in seen.values() if count > 1)


def _check_domain(engine: Engine, n: int, valid: int, figures: Figures) -> None:
    query = text(
        "SELECT count(*), count(*) FILTER (WHERE revision > 1) FROM billing_customers"
        " WHERE customer_number LIKE :prefix"
    )
    with engine.connect() as conn:
        present, twice = conn.execute(query, {"prefix": f"S{n:04d}-%"}).one()
    figures.lost += max(0, valid - present)
    figures.doubled += twice + max(0, present - valid)


def stall_story(engine: Engine, seconds: float, batch_id: int, status: str, since: float) -> str:
    """The longest stall and the batch's events from a second before it to its end."""
    query = text("SELECT at, event, status, detail FROM batch_events WHERE batch_id = :b ORDER BY id")
    with engine.connect() as conn:
        rows = [(_at(at) - since, *rest) for at, *rest in conn.execute(query, {"b": batch_id})]
    during = [
        f"+{t:.1f} s {event} ({state}) {detail or ''}" for t, event, state, detail in rows if -1 < t < seconds
    ]
    story = "; ".join(during) or "none"
    return f"longest stall: batch {batch_id}, {seconds:.1f} s while {status}; its events then: {story}"


def _at(value: Any) -> float:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def logged(work: Path) -> str:
    """How many errors and warnings the processes logged (interrupted attempts are warnings)."""
    levels: Counter[str] = Counter()
    for log in work.glob("*.log"):
        with log.open(errors="replace") as lines:
            levels.update(level for line in lines for level in ("ERROR", "WARNING") if f" {level} " in line)
    return f"logged: {levels['ERROR']} errors, {levels['WARNING']} warnings (in {work})"


def attempts(engine: Engine) -> str:
    query = text("SELECT max(attempt), sum(attempt - 1), sum(failed_attempts) FROM chunks")
    with engine.connect() as conn:
        highest, interrupted, failed = conn.execute(query).one()
    return f"chunk attempts: highest {highest}, interrupted {interrupted}, failed {failed}"


# one database -----------------------------------------------------------------


def soak(database: str, url: str, work: Path, config: Config) -> Figures:
    figures = Figures(database)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    fleet = Fleet(url, work, config)
    monitor = Monitor(engine)
    try:
        fleet.start()
        api = Api(fleet.base_url, fleet.account_key())
        monitor.start()
        batches = Batches(api, monitor, config.rows, config.inflight)
        rng = random.Random(config.seed)
        started = time.monotonic()
        while sum(fleet.kills.values()) < config.kills:
            batches.top_up()
            time.sleep(rng.uniform(0.5, 1.5) * config.kill_every)
            if fleet.kill_one(rng):
                _progress(database, fleet, batches, started, config)
        batches.join(timeout=1800)
        figures.kills = sum(fleet.kills.values())
        figures.longest_stall = monitor.longest[0]
        check(api, engine, batches, config.rows, figures)
        figures.notes += batches.errors
        exited = f", {fleet.exited} exited by themselves" if fleet.exited else ""
        figures.notes.append(f"kills: {dict(fleet.kills)}{exited}; {attempts(engine)}")
        figures.notes.append(stall_story(engine, *monitor.longest))
        figures.notes.append(logged(work))
    finally:
        monitor.stop()
        fleet.stop()
        engine.dispose()
    return figures


def _progress(database: str, fleet: Fleet, batches: Batches, started: float, config: Config) -> None:
    kills = sum(fleet.kills.values())
    if kills % 25 == 0:
        done = sum(not thread.is_alive() for _n, _m, thread in batches.started)
        elapsed = time.monotonic() - started
        print(f"  {database}: {kills}/{config.kills} kills, {done} batches done, {elapsed:.0f} s", flush=True)


def _postgres_server() -> str:
    url = os.environ.get("LOADBAY_SOAK_POSTGRES_URL", "").strip() or postgres_server_url()
    if not url:
        raise SystemExit("no PostgreSQL (install Debian's postgresql, or SOAK_DATABASES=sqlite)")
    return url


def run_database(database: str, scratch: Path, config: Config) -> Figures:
    work = scratch / database
    work.mkdir()
    if database == "sqlite":
        return soak(database, f"sqlite:///{work / 'loadbay.db'}", work, config)
    server = _postgres_server()
    name = f"soak_{uuid.uuid4().hex[:8]}"
    url = create_database(server, name)
    try:
        return soak(database, url, work, config)
    finally:
        if os.environ.get("SOAK_KEEP"):
            print(f"postgres: kept {url}")
        else:
            drop_database(server, name)


def table(rows: list[Figures], lease: float) -> str:
    head = ("database", "kills", "records", "lost", "doubled", "unprocessed", "longest stall")
    body = [
        (f.database, f.kills, f.records, f.lost, f.doubled, f.unprocessed, f"{f.longest_stall:.1f} s")
        for f in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(head, *body, strict=True)]
    lines = [
        "  ".join(str(cell).rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in [head, *body]
    ]
    return "\n".join(lines) + f"\n(lease {lease:g} s)"


def failed(figures: Figures, config: Config) -> bool:
    broken = figures.lost or figures.doubled or figures.unprocessed
    return (
        bool(broken)
        or figures.longest_stall > config.stall_leases * config.lease
        or any(n.startswith("batch ") for n in figures.notes)
    )


def main() -> int:
    config = Config()
    databases = os.environ.get("SOAK_DATABASES", "sqlite,postgres").split(",")
    scratch = Path(tempfile.mkdtemp(prefix="loadbay-soak-"))
    print(f"soak: {config}; logs in {scratch}", flush=True)
    results = [run_database(database.strip(), scratch, config) for database in databases]
    print(table(results, config.lease))
    for figures in results:
        for note in figures.notes:
            print(f"{figures.database}: {note}")
    bad = [f.database for f in results if failed(f, config)]
    if bad:
        print(f"FAILED on {', '.join(bad)} (logs kept in {scratch})")
    elif not os.environ.get("SOAK_KEEP"):
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
