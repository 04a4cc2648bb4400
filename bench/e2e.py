"""loadbay end to end: a real `loadbay serve` (and `loadbay worker`s), the native API, the whole
result file back."""

from __future__ import annotations

import csv
import os
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import httpx
from tests.support.s3 import MotoS3, S3Store
from tests.support.servers import FINAL, Server, start_server, start_worker

from bench.data import DataFile
from bench.databases import Fresh, count_customers
from bench.peers import BenchError
from bench.pollers import PollerProcess
from bench.report import LOADBAY, Result

__all__ = ["LAYOUTS", "PROCESSES", "SERVE", "THREADS", "E2eSettings", "loadbay_end_to_end"]

SERVE = "serve"  # `serve --workers N`: the worker processes the server starts itself (the default layout)
PROCESSES = "processes"  # `serve --workers 0` + `workers` × `loadbay worker --concurrency 1`
THREADS = "threads"  # `serve --workers 0 --worker-threads N`: the workers are threads of the server
LAYOUTS = (SERVE, PROCESSES, THREADS)
FILE, S3 = "file", "s3"  # the blob store: a local directory, or a bucket of moto's S3 server
STORAGES = (FILE, S3)


@dataclass(frozen=True)
class E2eSettings:
    layout: str = SERVE  # where the workers run (SERVE, PROCESSES or THREADS)
    workers: int = 2  # worker processes (serve's own or `loadbay worker`s), or threads in the server
    pollers: int = 4  # concurrent status pollers while the import runs
    poll_pause: float = 0.25  # seconds each poller waits between two requests
    server_env: dict[str, str] = field(default_factory=dict)
    pyspy: str | None = None  # a py-spy binary: record each loadbay process's stacks during the run
    profile_dir: Path | None = None  # where py-spy's collapsed stacks go


def _percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def _proc_status_kb(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used so far (/proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, IndexError):
        return None


def _peak_rss_mb(pid: int) -> float | None:
    hwm = _proc_status_kb(pid, "VmHWM")
    return round(hwm / 1024, 1) if hwm is not None else None


def _stream(file: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    while block := file.read(size):
        yield block


@dataclass
class _Worker:
    """A `loadbay worker` process and its log (in the data dir, deleted with the measurement)."""

    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


_MOTO: list[MotoS3] = []


def _bucket() -> S3Store:
    """A new bucket of moto's S3 server, which runs in this process from the first one on
    (a thread: its CPU is the benchmark process's, beside loadbay's)."""
    if not _MOTO:
        _MOTO.append(MotoS3())
    return _MOTO[0].store("bench")


def loadbay_end_to_end(
    database: str, db: Fresh, data: DataFile, settings: E2eSettings, storage: str = FILE
) -> Result:
    """Time from the upload's first byte to the last byte of the result file."""
    env = {"LOADBAY_POLL_INTERVAL": "0.5"} | settings.server_env  # the shipped default, not the tests' 0.05
    if storage == S3:
        env |= _bucket().env()
    data_dir = db.work_dir / "data"
    threads = settings.workers if settings.layout == THREADS else 0
    own = settings.workers if settings.layout == SERVE else 0
    server = start_server(db.url, data_dir, workers=threads, processes=own, env=env)
    workers: list[_Worker] = []
    profilers: list[subprocess.Popen[bytes]] = []
    try:
        if settings.layout == PROCESSES:
            for _ in range(settings.workers):  # the same database, data dir and environment as the server
                workers.append(_start_worker(db.url, data_dir, env))
            _wait_workers_ready(workers)
        children = _serve_workers(server, own) if own else []
        key = server.account("bench")
        second_key = server.account("bench-second")
        # the server first
        processes: list[_Process] = [server.process, *(w.process for w in workers), *children]
        profiles = _start_pyspy(settings, processes, database, data, profilers)
        cpu_before = [_cpu_seconds(p.pid) for p in processes]
        result = _run(server, workers, key, database, db, data, settings, second_key)
        if storage == S3:
            result.method += ", S3 store (moto)"
        result.extra["storage"] = storage
        cpu_after = [_cpu_seconds(p.pid) for p in processes]
        peaks = [_peak_rss_mb(p.pid) for p in processes]  # each process's peak RSS, read before it stops
        _record_processes(result, peaks, cpu_before, cpu_after)
        if profilers:
            _stop_pyspy(profilers)
            result.extra["pyspy_profiles"] = [str(p) for p in profiles]
    finally:
        for profiler in profilers:
            if profiler.poll() is None:
                profiler.kill()
                profiler.wait()
        _stop([*(w.process for w in workers), server.process])
    _check_counts_in_db(db, data, result.extra.get("second_account_succeeded") or 0)
    return result


def _start_worker(database_url: str, data_dir: Path, env: dict[str, str]) -> _Worker:
    before = set(data_dir.glob("worker-*.log"))
    process = start_worker(database_url, data_dir, concurrency=1, env=env)
    new = sorted(set(data_dir.glob("worker-*.log")) - before)  # start_worker names its log itself
    return _Worker(process, new[-1] if new else data_dir / "worker-?.log")


class _Process(Protocol):
    """What measuring a process needs: its pid (a Popen, or a `_Child`)."""

    @property
    def pid(self) -> int: ...


@dataclass(frozen=True)
class _Child:
    """A worker process `loadbay serve` started (its pid: what measuring a process needs)."""

    pid: int


def _serve_workers(server: Server, count: int, timeout: float = 60.0) -> list[_Child]:
    """The server's worker processes, once /healthz counts `count` live workers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = httpx.get(server.url + "/healthz", timeout=5.0).json()
        if health.get("workers", 0) >= count:
            pid = server.process.pid
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            return [_Child(int(child)) for child in children]
        time.sleep(0.2)
    raise BenchError(f"loadbay serve: {count} worker processes not alive after {timeout}s")


def _wait_workers_ready(workers: list[_Worker], timeout: float = 60.0) -> None:
    """Until each worker has logged that its threads run (after imports and connecting)."""
    deadline = time.monotonic() + timeout
    waiting = list(workers)
    while waiting and time.monotonic() < deadline:
        for worker in list(waiting):
            if worker.process.poll() is not None:
                raise BenchError(f"loadbay worker exited with {worker.process.returncode}:\n{worker.tail()}")
            try:
                if "loadbay worker:" in worker.log.read_text(errors="replace"):
                    waiting.remove(worker)
            except OSError:
                pass
        time.sleep(0.1)
    if waiting:
        raise BenchError(f"loadbay worker not ready after {timeout}s:\n{waiting[0].tail()}")


def _stop(processes: list[subprocess.Popen[bytes]], timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
    """`sig` to all at once, wait for all, then SIGKILL what is left (and reap it)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(sig)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _record_processes(
    result: Result, peaks: list[float | None], before: list[float | None], after: list[float | None]
) -> None:
    """Peak RSS and the run's CPU seconds (start-up left out) of the server, then of each worker."""
    pairs = zip(after, before, strict=True)
    cpu = [round(a - b, 2) if a is not None and b is not None else None for a, b in pairs]
    result.server_peak_rss_mb = peaks[0]
    result.extra["server_cpu_s"] = cpu[0]
    if len(peaks) > 1:
        result.worker_peak_rss_mb = peaks[1:]
        result.extra["worker_cpu_s"] = cpu[1:]
    known = [p for p in peaks if p is not None]
    result.peak_rss_mb = round(sum(known), 1) if len(known) == len(peaks) else None
    if all(c is not None for c in cpu):
        result.extra["cpu_s_total"] = round(sum(c for c in cpu if c is not None), 2)


def _start_pyspy(
    settings: E2eSettings,
    processes: list[_Process],
    database: str,
    data: DataFile,
    profilers: list[subprocess.Popen[bytes]],
) -> list[Path]:
    """One `py-spy record` per process (all threads, idle ones left out), as collapsed stacks:
    loadbay-<db>-<rows>-server.txt, then -worker1.txt, -worker2.txt, … Each py-spy goes into
    `profilers` as soon as it runs, so the caller can stop it whatever happens next."""
    if settings.pyspy is None or settings.profile_dir is None:
        return []
    settings.profile_dir.mkdir(parents=True, exist_ok=True)
    profiles: list[Path] = []
    for i, process in enumerate(processes):
        role = "server" if i == 0 else f"worker{i}"
        profile = settings.profile_dir / f"loadbay-{database}-{data.rows}-{role}.txt"
        args = [settings.pyspy, "record", "--pid", str(process.pid), "--threads", "--format", "raw"]
        args += ["--rate", "50", "--output", str(profile)]
        profilers.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        profiles.append(profile)
    time.sleep(1.0)  # let them attach before the clock starts
    return profiles


def _stop_pyspy(processes: list[subprocess.Popen[bytes]]) -> None:
    _stop(processes, timeout=60, sig=signal.SIGINT)  # py-spy writes its output on SIGINT


class _SecondAccount(threading.Thread):
    """Fair share: once the big batch is being applied, a second account submits the file's
    first 100 records; how long they take from submit to completed (None: the big batch
    finished first)."""

    def __init__(
        self, server: Server, key: str | None, big: httpx.Client, big_id: int, data: DataFile
    ) -> None:
        super().__init__(name="bench-second-account", daemon=True)
        self.server, self.key, self.big, self.big_id, self.data = server, key, big, big_id, data
        self.seconds: float | None = None
        self.succeeded = 0
        self.start()

    def run(self) -> None:
        if self.key is None:
            return
        with self.data.path.open("rb") as file:
            head = b"".join(line for _, line in zip(range(101), file, strict=False))
        with httpx.Client(base_url=self.server.url, headers={"X-Api-Key": self.key}, timeout=60.0) as client:
            while True:
                big = self.big.get(f"/v1/batches/{self.big_id}").json()
                if big["status"] in FINAL:
                    return
                if big["counts"]["succeeded"] >= 50_000 or big["status"] == "processing":
                    break
                time.sleep(0.2)
            batch_id = int(_ok(client.post("/v1/batches", json={"type": "billing.customer"}))["id"])
            _ok(
                client.put(f"/v1/batches/{batch_id}/data", content=head, headers={"Content-Type": "text/csv"})
            )
            started = time.perf_counter()
            _ok(client.post(f"/v1/batches/{batch_id}/submit"))
            while (done := client.get(f"/v1/batches/{batch_id}").json())["status"] not in FINAL:
                time.sleep(0.05)
            self.seconds = round(time.perf_counter() - started, 3)
            self.succeeded = int(done["counts"]["succeeded"])


def _run(
    server: Server,
    workers: list[_Worker],
    key: str,
    database: str,
    db: Fresh,
    data: DataFile,
    settings: E2eSettings,
    second_key: str | None = None,
) -> Result:
    results_path = db.work_dir / "results.csv"
    headers = {"X-Api-Key": key}
    with httpx.Client(base_url=server.url, headers=headers, timeout=httpx.Timeout(600.0)) as client:
        batch = _ok(client.post("/v1/batches", json={"type": "billing.customer"}))
        batch_id = int(batch["id"])
        pollers = PollerProcess(server.url, key, batch_id, settings.pollers, settings.poll_pause)
        pollers.start()
        try:
            started = time.perf_counter()
            with data.path.open("rb") as file:
                _ok(
                    client.put(
                        f"/v1/batches/{batch_id}/data",
                        params={"name": data.path.name},
                        content=_stream(file),
                        headers={"Content-Type": "text/csv"},
                    )
                )
            uploaded = time.perf_counter()
            _ok(client.post(f"/v1/batches/{batch_id}/submit"))
            second = _SecondAccount(server, second_key, client, batch_id, data)
            batch = _wait_final(server, workers, client, batch_id, pollers)
            completed = time.perf_counter()
            second.join()
        finally:
            polled = pollers.stop()
        with client.stream("GET", f"/v1/batches/{batch_id}/results") as response:
            if response.status_code != 200:
                raise BenchError(f"results: HTTP {response.status_code} {response.read()[:500]!r}")
            with results_path.open("wb") as out:
                for block in response.iter_bytes(1 << 20):
                    out.write(block)
        finished = time.perf_counter()
        events = _ok(client.get(f"/v1/batches/{batch_id}/events"))["data"]
    _check_batch(batch, data)
    _check_result_file(results_path, data)
    latencies = sorted(s * 1000 for s in polled.latencies)
    extra: dict[str, Any] = {
        "upload_s": round(uploaded - started, 3),
        "submit_to_completed_s": round(completed - uploaded, 3),
        "download_s": round(finished - completed, 3),
        "server_events_s": _events(events),
        "server_phases_s": _phases(_events(events)),
        "result_file_bytes": results_path.stat().st_size,
        "status_requests": len(latencies),
        "status_errors": polled.errors,
        "status_mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
        "status_max_ms": round(latencies[-1], 2) if latencies else None,
        "apply_rate_by_tenth": _rate_by_tenth(polled.progress, data.rows - data.bad),
        "counts": batch["counts"],
        "second_account_100_records_s": second.seconds,
        "second_account_succeeded": second.succeeded,
        "layout": settings.layout,
        "workers": settings.workers,
        "pollers": settings.pollers,
        "poll_pause_s": settings.poll_pause,
    }
    if settings.layout == SERVE:
        method = f"loadbay serve (--workers {settings.workers}: processes)"
    elif settings.layout == PROCESSES:
        method = f"loadbay serve + {settings.workers} worker processes"
    else:
        method = f"loadbay serve (--worker-threads {settings.workers})"
    return Result(
        database,
        data.rows,
        method,
        data.rows,
        finished - started,
        kind=LOADBAY,
        status_p50_ms=_percentile(latencies, 50),
        status_p99_ms=_percentile(latencies, 99),
        extra=extra,
    )


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.is_error:
        raise BenchError(f"{response.request.method} {response.request.url.path}: {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


def _wait_final(
    server: Server,
    workers: list[_Worker],
    client: httpx.Client,
    batch_id: int,
    pollers: PollerProcess,
    timeout: float = 3 * 3600,
) -> dict[str, Any]:
    """The pollers notice completion (no extra requests of our own); without pollers, poll here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"loadbay serve exited with {server.process.returncode}; see {server.log}")
        for worker in workers:
            if worker.process.poll() is not None:
                raise BenchError(f"loadbay worker exited with {worker.process.returncode}:\n{worker.tail()}")
        if pollers.count:
            if pollers.done.wait(1.0) and pollers.final is not None:
                return pollers.final
            if not pollers.alive():
                raise BenchError("the status pollers' process ended before the batch was final")
            continue
        batch = _ok(client.get(f"/v1/batches/{batch_id}"))
        if batch["status"] in FINAL:
            return batch
        time.sleep(0.1)
    raise BenchError(f"batch {batch_id} not final after {timeout}s")


def _check_batch(batch: dict[str, Any], data: DataFile) -> None:
    counts = batch["counts"]
    expected = {
        "total": data.rows,
        "valid": data.rows - data.bad,
        "invalid": data.bad,
        "succeeded": data.rows - data.bad,
        "failed": 0,
        "unprocessed": 0,
    }
    if batch["status"] != "completed" or any(counts.get(k) != v for k, v in expected.items()):
        raise BenchError(f"batch {batch['id']}: {batch['status']} {counts}, expected {expected}")


def _check_result_file(path: Path, data: DataFile) -> None:
    """The result file has every record once, in order, with the outcome the data calls for."""
    statuses: Counter[str] = Counter()
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        for number, row in enumerate(reader):
            if row["customer_number"] != f"C{number:09d}":
                raise BenchError(f"result row {number} is {row['customer_number']!r}")
            statuses[row["loadbay_status"]] += 1
    expected = Counter({"succeeded": data.rows - data.bad, "invalid": data.bad})
    if statuses != expected:
        raise BenchError(f"result file: {dict(statuses)}, expected {dict(expected)}")


def _check_counts_in_db(db: Fresh, data: DataFile, second: int) -> None:
    """Every valid record once (and the second account's, when it imported some)."""
    got, expected = count_customers(db.url), data.rows - data.bad + second
    if got != expected:
        raise BenchError(f"loadbay: billing_customers holds {got} rows, expected {expected}")


def _rate_by_tenth(progress: list[tuple[float, int]], valid: int) -> list[int | None]:
    """Records applied per second in each tenth of the valid records (does loadbay slow down?),
    from the pollers' samples: a tenth runs from the last sample before it to the first after.
    Records are applied a chunk (2,000) at a time, so small batches get no such breakdown."""
    samples = sorted(progress)
    rates: list[int | None] = []
    if valid < 90_000:
        return rates
    for tenth in range(10):
        low, high = valid * tenth // 10, valid * (tenth + 1) // 10
        start = next((s for s in reversed(samples) if s[1] <= low), None)
        end = next((s for s in samples if s[1] >= high), None)
        if start is None or end is None or end[0] <= start[0] or end[1] <= start[1]:
            rates.append(None)
        else:
            rates.append(round((end[1] - start[1]) / (end[0] - start[0])))
    return rates


def _events(events: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds from the batch's creation to the first occurrence of each lifecycle event."""
    at: dict[str, datetime] = {}
    for item in events:
        at.setdefault(item["event"], datetime.fromisoformat(item["at"]))
    if not at:
        return {}
    origin = min(at.values())
    return {name: round((when - origin).total_seconds(), 3) for name, when in at.items()}


def _phases(at: dict[str, float]) -> dict[str, float | None]:
    """From the batch's events: reading the file through (`start` → `read`: a batch that
    applies early checks the whole file is readable first), validating and staging every
    record (→ `chunked`; chunks are applied meanwhile), and the apply left after that
    (`chunked` → `complete`)."""

    def between(a: str, b: str) -> float | None:
        return round(at[b] - at[a], 3) if a in at and b in at else None

    staged_from = "read" if "read" in at else "start"
    return {
        "read_s": between("start", "read"),
        "validate_s": between(staged_from, "chunked"),
        "apply_after_s": between("chunked", "complete"),
    }
