"""loadbay end to end: a real `loadbay serve`, the native API, the whole result file back."""

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
from typing import Any, BinaryIO

import httpx
from tests.support.servers import FINAL, Server, start_server

from bench.data import DataFile
from bench.databases import Fresh, count_customers
from bench.peers import BenchError
from bench.report import LOADBAY, Result

__all__ = ["E2eSettings", "loadbay_end_to_end"]


@dataclass(frozen=True)
class E2eSettings:
    workers: int = 2  # `loadbay serve --workers`
    pollers: int = 4  # concurrent status pollers while the import runs
    poll_pause: float = 0.25  # seconds each poller waits between two requests
    server_env: dict[str, str] = field(default_factory=dict)
    pyspy: str | None = None  # a py-spy binary: record the server's stacks during the run
    profile_dir: Path | None = None  # where py-spy's collapsed stacks go


class _Pollers:
    """Threads that GET /v1/batches/{id} in a loop and keep each request's latency."""

    def __init__(self, server: Server, key: str, batch_id: int, count: int, pause: float) -> None:
        self._stop = threading.Event()
        self._latencies: list[list[float]] = [[] for _ in range(count)]
        self.errors = 0
        self.final: dict[str, Any] | None = None  # the first answer with a final status
        self.progress: list[tuple[float, int]] = []  # (perf_counter, records applied)
        self.done = threading.Event()
        self._lock = threading.Lock()
        self.count = count
        self._threads = [
            threading.Thread(target=self._poll, args=(server, key, batch_id, pause, self._latencies[i]))
            for i in range(count)
        ]

    def _poll(self, server: Server, key: str, batch_id: int, pause: float, out: list[float]) -> None:
        with server.client(key) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    response = client.get(f"/v1/batches/{batch_id}")
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    out.append(time.perf_counter() - started)
                    self._see(response.json())
                else:
                    with self._lock:
                        self.errors += 1
                self._stop.wait(pause)

    def _see(self, batch: dict[str, Any]) -> None:
        counts = batch["counts"]
        applied = counts["succeeded"] + counts["failed"] + counts["unprocessed"]
        with self._lock:
            self.progress.append((time.perf_counter(), applied))
        if batch["status"] in FINAL:
            with self._lock:
                if self.final is None:
                    self.final = batch
            self.done.set()

    def __enter__(self) -> _Pollers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def latencies_ms(self) -> list[float]:
        return sorted(s * 1000 for samples in self._latencies for s in samples)


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


def _stream(file: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    while block := file.read(size):
        yield block


def loadbay_end_to_end(database: str, db: Fresh, data: DataFile, settings: E2eSettings) -> Result:
    """Time from the upload's first byte to the last byte of the result file."""
    env = {"LOADBAY_POLL_INTERVAL": "0.5"} | settings.server_env  # the shipped default, not the tests' 0.05
    server = start_server(db.url, db.work_dir / "data", workers=settings.workers, env=env)
    profiler: subprocess.Popen[bytes] | None = None
    try:
        key = server.account("bench")
        profiler, profile = _start_pyspy(settings, server, database, data)
        cpu_before = _cpu_seconds(server.process.pid)
        result = _run(server, key, database, db, data, settings)
        cpu_after = _cpu_seconds(server.process.pid)
        hwm = _proc_status_kb(server.process.pid, "VmHWM")  # the server's peak RSS, read before it stops
        result.peak_rss_mb = hwm / 1024 if hwm is not None else None
        if cpu_before is not None and cpu_after is not None:  # the run's share, not start-up's
            result.extra["server_cpu_s"] = round(cpu_after - cpu_before, 2)
        if profiler is not None:
            _stop_pyspy(profiler)
            result.extra["pyspy_profile"] = str(profile)
    finally:
        if profiler is not None and profiler.poll() is None:
            profiler.kill()
        server.stop()
    _check_counts_in_db(db, data)
    return result


def _start_pyspy(
    settings: E2eSettings, server: Server, database: str, data: DataFile
) -> tuple[subprocess.Popen[bytes] | None, Path | None]:
    """`py-spy record` of the server (all threads, idle ones left out), as collapsed stacks."""
    if settings.pyspy is None or settings.profile_dir is None:
        return None, None
    settings.profile_dir.mkdir(parents=True, exist_ok=True)
    profile = settings.profile_dir / f"loadbay-{database}-{data.rows}.txt"
    args = [settings.pyspy, "record", "--pid", str(server.process.pid), "--threads", "--format", "raw"]
    args += ["--rate", "50", "--output", str(profile)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach before the clock starts
    return process, profile


def _stop_pyspy(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


def _run(server: Server, key: str, database: str, db: Fresh, data: DataFile, settings: E2eSettings) -> Result:
    results_path = db.work_dir / "results.csv"
    headers = {"X-Api-Key": key}
    with httpx.Client(base_url=server.url, headers=headers, timeout=httpx.Timeout(600.0)) as client:
        batch = _ok(client.post("/v1/batches", json={"type": "billing.customer"}))
        batch_id = int(batch["id"])
        pollers = _Pollers(server, key, batch_id, settings.pollers, settings.poll_pause)
        with pollers:
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
            batch = _wait_final(server, client, batch_id, pollers)
            completed = time.perf_counter()
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
    latencies = pollers.latencies_ms()
    extra: dict[str, Any] = {
        "upload_s": round(uploaded - started, 3),
        "submit_to_completed_s": round(completed - uploaded, 3),
        "download_s": round(finished - completed, 3),
        "server_events_s": _events(events),
        "server_phases_s": _phases(_events(events)),
        "result_file_bytes": results_path.stat().st_size,
        "status_requests": len(latencies),
        "status_errors": pollers.errors,
        "status_mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
        "status_max_ms": round(latencies[-1], 2) if latencies else None,
        "apply_rate_by_tenth": _rate_by_tenth(pollers.progress, data.rows - data.bad),
        "counts": batch["counts"],
        "workers": settings.workers,
        "pollers": settings.pollers,
        "poll_pause_s": settings.poll_pause,
    }
    return Result(
        database,
        data.rows,
        f"loadbay serve (--workers {settings.workers})",
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
    server: Server, client: httpx.Client, batch_id: int, pollers: _Pollers, timeout: float = 3 * 3600
) -> dict[str, Any]:
    """The pollers notice completion (no extra requests of our own); without pollers, poll here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"loadbay serve exited with {server.process.returncode}; see {server.log}")
        if pollers.count:
            if pollers.done.wait(1.0) and pollers.final is not None:
                return pollers.final
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


def _check_counts_in_db(db: Fresh, data: DataFile) -> None:
    got = count_customers(db.url)
    if got != data.rows - data.bad:
        raise BenchError(f"loadbay: billing_customers holds {got} rows, expected {data.rows - data.bad}")


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
    """Validation (one worker reads, validates and stages every record) and apply (all workers)."""

    def between(a: str, b: str) -> float | None:
        return round(at[b] - at[a], 3) if a in at and b in at else None

    return {"validate_s": between("start", "chunked"), "apply_s": between("chunked", "complete")}
