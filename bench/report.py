"""Results: one row per (database, file size, method), printed as a table and kept as JSON."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["Result", "format_table", "machine_facts", "write_json"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOADBAY, LIMIT, FLOOR, NAIVE = "loadbay", "limit", "floor", "naive"


@dataclass
class Result:
    database: str
    rows: int  # rows in the file
    method: str  # what the table shows
    rows_measured: int  # rows this measurement read (the naive peer may stop early)
    seconds: float
    kind: str = LIMIT  # loadbay | limit | floor | naive
    peak_rss_mb: float | None = None  # loadbay: server + worker processes' peaks, summed
    server_peak_rss_mb: float | None = None  # loadbay: the `loadbay serve` process's peak
    worker_peak_rss_mb: list[float | None] | None = None  # loadbay: each `loadbay worker` process's peak
    status_p50_ms: float | None = None
    status_p99_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        return self.rows_measured / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        rounded = {
            name: round(value, 3)
            for name, value in asdict(self).items()
            if isinstance(value, float) and value == value  # not NaN
        }
        return asdict(self) | rounded | {"records_per_s": round(self.records_per_s, 1)}


def _peer(results: list[Result], of: Result, kind: str) -> Result | None:
    return next(
        (r for r in results if r.database == of.database and r.rows == of.rows and r.kind == kind), None
    )


def comparisons(results: list[Result], r: Result) -> tuple[str, str]:
    """For a loadbay row: how many times the limit's time it takes, and its speed-up over naive."""
    if r.kind != LOADBAY:
        return "", ""
    limit, naive = _peer(results, r, LIMIT), _peer(results, r, NAIVE)
    vs_limit = f"{r.seconds / limit.seconds:.1f}× limit's time" if limit else "n/a"
    vs_naive = f"{r.records_per_s / naive.records_per_s:.1f}× naive" if naive and naive.seconds else "n/a"
    return vs_limit, vs_naive


HEADERS = (
    "database",
    "rows",
    "method",
    "seconds",
    "records/s",
    "loadbay ÷ limit",
    "loadbay vs naive",
    "peak RSS MB",
    "status p50/p99 ms",
)


def _rss(r: Result) -> str:
    """ "80" (one process), or "80 + 150/140": the server's peak + each worker process's."""
    if r.worker_peak_rss_mb and r.server_peak_rss_mb is not None:
        workers = "/".join(f"{mb:.0f}" if mb is not None else "?" for mb in r.worker_peak_rss_mb)
        return f"{r.server_peak_rss_mb:.0f} + {workers}"
    return f"{r.peak_rss_mb:.0f}" if r.peak_rss_mb is not None else ""


def _cells(results: list[Result], r: Result) -> list[str]:
    vs_limit, vs_naive = comparisons(results, r)
    latency = ""
    if r.status_p50_ms is not None and r.status_p99_ms is not None:
        latency = f"{r.status_p50_ms:.1f} / {r.status_p99_ms:.1f}"
    return [
        r.database,
        f"{r.rows:,}",
        r.method,
        f"{r.seconds:.2f}",
        f"{r.records_per_s:,.0f}",
        vs_limit,
        vs_naive,
        _rss(r),
        latency,
    ]


def format_table(results: list[Result]) -> str:
    """A Markdown table (readable as plain text too)."""
    rows = [list(HEADERS), *(_cells(results, r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    right = {1, 3, 4, 7, 8}

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs)
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths)
    )
    return "\n".join([line(rows[0]), rule + "|", *(line(r) for r in rows[1:])])


def machine_facts(versions: dict[str, str]) -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_mb": _memory_mb(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "loadbay_commit": _git("rev-parse", "HEAD"),
        "loadbay_tree_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        **versions,
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def write_json(document: dict[str, Any], started: datetime) -> Path:
    """bench/results/<UTC timestamp>-<hostname>.json (written whole, then renamed into place)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())
    path = RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{host}.json"
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n", "utf-8")
    partial.replace(path)
    return path
