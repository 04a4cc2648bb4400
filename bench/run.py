"""`make bench`: loadbay end to end vs the database's own bulk load vs a naive importer.

Environment (all optional):
  BENCH_ROWS=100000,1000000          file sizes (rows), for every database
  BENCH_ROWS_SQLITE, BENCH_ROWS_POSTGRES  the same for one database only (e.g. to cap its big run)
  BENCH_DATABASES=sqlite,postgres    databases
  BENCH_METHODS=limit,loadbay,naive  what to measure (PostgreSQL's "limit" includes the plain-COPY floor)
  BENCH_NAIVE_ROWS=100000            the naive importer reads at most this many rows of a file
  BENCH_LAYOUT=serve                 serve: `loadbay serve --workers BENCH_WORKERS` (its own worker
                                     processes, the default layout); processes: `loadbay serve
                                     --workers 0` + BENCH_WORKERS `loadbay worker --concurrency 1`;
                                     threads: `loadbay serve --workers 0 --worker-threads N`
  BENCH_WORKERS=2                    worker processes (or threads in the server, BENCH_LAYOUT=threads)
  BENCH_STORAGE=file                 loadbay's blob store: file (a local directory), s3 (a bucket of
                                     moto's S3 server, in this process: not real S3), or file,s3
  BENCH_POLLERS=4                    status pollers while loadbay imports
  BENCH_POLL_PAUSE=0.25              seconds each poller waits between two requests
  BENCH_PYSPY=1                      record each loadbay process with py-spy (on PATH, or give its
                                     path) into bench/.cache/profiles/ (collapsed stacks)
  LOADBAY_BENCH_POSTGRES_URL         an existing PostgreSQL server (must allow CREATE DATABASE);
                                     default: a throwaway cluster (tests/support/postgres.py)
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

if __package__ in (None, ""):  # `python bench/run.py`: make `bench`, `tests` and `loadbay` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data as bench_data
from bench.databases import BENCH_POSTGRES_ENV, Backend, Fresh, PostgresBackend, SqliteBackend
from bench.e2e import FILE, LAYOUTS, PROCESSES, SERVE, STORAGES, E2eSettings, loadbay_end_to_end
from bench.peers import naive, postgres_copy_direct, postgres_limit, sqlite_limit
from bench.report import LOADBAY, NAIVE, Result, format_table, machine_facts, write_json

# Each run's own scratch space, so two runs at once do not delete each other's databases.
SCRATCH = bench_data.CACHE_DIR / "work" / f"run-{os.getpid()}"


def _remove_abandoned_scratch() -> None:
    """Delete the scratch space of earlier runs whose process is gone."""
    for path in SCRATCH.parent.glob("*"):
        pid = path.name.removeprefix("run-")
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            shutil.rmtree(path, ignore_errors=True)


METHODS = ("limit", "loadbay", "naive")
Measure = Callable[[Fresh], Result]


def _list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)).replace("_", ""))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Config:
    backends: list[Backend]
    sizes: dict[str, list[int]]  # rows per database
    methods: list[str]
    naive_cap: int
    e2e: E2eSettings
    storages: list[str] = field(default_factory=lambda: [FILE])  # loadbay's blob stores

    @classmethod
    def from_env(cls) -> Config:
        methods = _list("BENCH_METHODS", ",".join(METHODS))
        if unknown := set(methods) - set(METHODS):
            raise SystemExit(
                f"bench: unknown BENCH_METHODS {sorted(unknown)} (choose from {', '.join(METHODS)})"
            )
        backends = _backends(_list("BENCH_DATABASES", "sqlite,postgres"))
        default = os.environ.get("BENCH_ROWS", "100000,1000000")
        sizes = {
            b.name: [int(n.replace("_", "")) for n in _list(f"BENCH_ROWS_{b.name.upper()}", default)]
            for b in backends
        }
        layout = os.environ.get("BENCH_LAYOUT", SERVE).strip() or SERVE
        if layout not in LAYOUTS:
            raise SystemExit(f"bench: unknown BENCH_LAYOUT {layout!r} (choose from {', '.join(LAYOUTS)})")
        e2e = E2eSettings(
            layout=layout,
            workers=_int("BENCH_WORKERS", 2),
            pollers=_int("BENCH_POLLERS", 4),
            poll_pause=float(os.environ.get("BENCH_POLL_PAUSE", "0.25")),
            pyspy=_pyspy(),
            profile_dir=bench_data.CACHE_DIR / "profiles",
        )
        storages = _list("BENCH_STORAGE", FILE)
        if unknown := set(storages) - set(STORAGES):
            raise SystemExit(
                f"bench: unknown BENCH_STORAGE {sorted(unknown)} (choose from {', '.join(STORAGES)})"
            )
        return cls(backends, sizes, methods, _int("BENCH_NAIVE_ROWS", 100_000), e2e, storages)

    def as_json(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "rows": self.sizes,
            "methods": self.methods,
            "naive_rows_cap": self.naive_cap,
            "loadbay_layout": self.e2e.layout,
            "loadbay_workers": self.e2e.workers,
            "loadbay_storage": self.storages,
            "status_pollers": self.e2e.pollers,
            "status_poll_pause_s": self.e2e.poll_pause,
            "pyspy": self.e2e.pyspy is not None,
        }
        if any(isinstance(b, PostgresBackend) for b in self.backends):
            settings["postgres"] = (
                f"{BENCH_POSTGRES_ENV} (an existing server)"
                if os.environ.get(BENCH_POSTGRES_ENV)
                else "throwaway cluster (fsync=off, synchronous_commit=off, full_page_writes=off)"
            )
        return settings


def _backends(names: list[str]) -> list[Backend]:
    backends: list[Backend] = []
    for name in names:
        if name == "sqlite":
            backends.append(SqliteBackend())
        elif name == "postgres":
            found = PostgresBackend.find()
            if found is None:
                raise SystemExit(
                    "bench: no PostgreSQL. Install Debian's postgresql package (see .ci/run), set "
                    f"{BENCH_POSTGRES_ENV}, or run with BENCH_DATABASES=sqlite"
                )
            backends.append(found)
        else:
            raise SystemExit(f"bench: unknown database {name!r} in BENCH_DATABASES (sqlite, postgres)")
    return backends


def _pyspy() -> str | None:
    """BENCH_PYSPY=1 (py-spy on PATH) or BENCH_PYSPY=/path/to/py-spy: profile loadbay's processes."""
    value = os.environ.get("BENCH_PYSPY", "").strip()
    if not value or value == "0":
        return None
    found = shutil.which("py-spy") if value == "1" else value
    if not found or not os.access(found, os.X_OK):
        raise SystemExit(f"bench: BENCH_PYSPY={value!r} but no py-spy binary there (pip install py-spy)")
    return found


def _plan(backend: Backend, data: bench_data.DataFile, config: Config) -> list[tuple[str, Measure]]:
    db, methods = backend.name, config.methods
    plan: list[tuple[str, Measure]] = []
    if "limit" in methods:
        if isinstance(backend, PostgresBackend):
            plan.append(("limit", lambda f: postgres_limit(f, data)))
            plan.append(("copy", lambda f: postgres_copy_direct(f, data)))
        else:
            plan.append(("limit", lambda f: sqlite_limit(f, data)))
    if "loadbay" in methods:
        for storage in config.storages:
            label = "loadbay" if storage == FILE else f"loadbay-{storage}"

            def end_to_end(f: Fresh, store: str = storage) -> Result:
                return loadbay_end_to_end(db, f, data, config.e2e, store)

            plan.append((label, end_to_end))
    if "naive" in methods:
        plan.append(("naive", lambda f: naive(db, f, data, config.naive_cap)))
    return plan


@dataclass
class Run:
    config: Config
    files: dict[int, bench_data.DataFile] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def prepare_files(self) -> None:
        for rows in sorted({n for sizes in self.config.sizes.values() for n in sizes}):
            started = time.perf_counter()
            file = self.files[rows] = bench_data.customer_file(rows)
            how = "generated" if file.generated else "reused"
            took = time.perf_counter() - started
            _log(f"bench: {how} {file.path.name} ({file.size / 1e6:.0f} MB, checked) in {took:.1f}s")

    def measure_all(self) -> None:
        _remove_abandoned_scratch()
        try:
            for backend in self.config.backends:
                for rows in self.config.sizes[backend.name]:
                    for label, measure in _plan(backend, self.files[rows], self.config):
                        self._one(backend, rows, label, measure)
        finally:
            shutil.rmtree(SCRATCH, ignore_errors=True)

    def _one(self, backend: Backend, rows: int, label: str, measure: Measure) -> None:
        name = f"{backend.name} {rows:,} rows: {label}"
        if label == "naive" and (earlier := self._same_naive_run(backend.name, rows)):
            self.results.append(_reused(earlier, rows))
            _log(f"bench: {name}: the same first {earlier.rows_measured:,} rows were measured; reused")
            return
        _log(f"bench: {name} …")
        load = _loadavg()
        try:
            with backend.fresh(label, SCRATCH) as fresh:
                result = measure(fresh)
        except Exception as exc:  # a broken measurement reports no number; the others go on
            traceback.print_exc()
            self.failures.append(
                {"database": backend.name, "rows": rows, "method": label, "error": repr(exc)}
            )
            _log(f"bench: {name} FAILED: {exc}")
            return
        result.extra["loadavg_1m_before"] = load
        self.results.append(result)
        _log(f"bench:   {result.seconds:.2f}s, {result.records_per_s:,.0f} records/s")

    def _same_naive_run(self, database: str, rows: int) -> Result | None:
        """A naive run over the same first rows: every file has the same row i, so a bigger file's
        capped run would repeat a smaller file's run exactly."""
        measured = min(rows, self.config.naive_cap)
        return next(
            (
                r
                for r in self.results
                if r.kind == NAIVE and r.database == database and r.rows_measured == measured
            ),
            None,
        )


def _reused(earlier: Result, rows: int) -> Result:
    extra = earlier.extra | {"reused_from_rows": earlier.rows}
    method = f"naive ORM (first {earlier.rows_measured:,} rows, reused)"
    return replace(earlier, rows=rows, method=method, extra=extra)


def _notes(run: Run) -> list[str]:
    config = run.config
    e2e = config.e2e
    notes: list[str] = []
    if "loadbay" in config.methods:
        if e2e.layout == SERVE:
            layout = f"layout serve: `loadbay serve --workers {e2e.workers}` (its own worker processes)"
            rss = "peak RSS = each process's VmHWM, server + worker1/worker2/…"
        elif e2e.layout == PROCESSES:
            layout = (
                f"layout processes: `loadbay serve --workers 0` + {e2e.workers} × "
                "`loadbay worker --concurrency 1`"
            )
            rss = "peak RSS = each process's VmHWM, server + worker1/worker2/…"
        else:
            layout = f"layout threads: `loadbay serve --workers 0 --worker-threads {e2e.workers}`"
            rss = "peak RSS = the server process's VmHWM (its worker threads included)"
        notes.append(
            f"loadbay: upload start → result file downloaded; {layout}, "
            f"{e2e.pollers} status pollers (GET /v1/batches/{{id}}, {e2e.poll_pause}s pause each) during "
            f"the import; {rss}."
        )
    if "limit" in config.methods:
        notes.append(
            "limit: the database's own bulk load of the same file into billing_customers' columns and "
            "constraints, no validation (the 1% bad rows break no constraint, so every row loads)."
        )
    if "loadbay" in config.methods:
        notes.append(
            "loadbay ÷ limit: loadbay's time as a multiple of the limit's; loadbay vs naive: records/s ratio."
        )
    capped = sorted(rows for rows in run.files if rows > config.naive_cap)
    if capped and "naive" in config.methods:
        notes.append(
            f"naive: only the first {config.naive_cap:,} rows of the {', '.join(f'{r:,}' for r in capped)}"
            "-row file (BENCH_NAIVE_ROWS); its records/s is over those rows."
        )
    if any(isinstance(b, PostgresBackend) for b in config.backends) and not os.environ.get(
        BENCH_POSTGRES_ENV
    ):
        notes.append(
            "postgres: throwaway cluster with fsync=off, synchronous_commit=off, full_page_writes=off."
        )
    loads = [
        r.extra["loadavg_1m_before"] for r in run.results if r.extra.get("loadavg_1m_before") is not None
    ]
    if loads:
        notes.append(
            f"machine: {os.cpu_count()} CPUs; 1-minute load average before each measurement "
            f"{min(loads):.1f}–{max(loads):.1f} (above ~0.5, other processes shared the CPUs)."
        )
    notes.extend(_phase_line(r) for r in run.results if r.kind == LOADBAY)
    return notes


def _phase_line(r: Result) -> str:
    """Where a loadbay run's time went, by the server's own lifecycle events."""
    e = r.extra
    phases = e.get("server_phases_s", {})
    read = phases.get("read_s")
    validate = phases.get("validate_s")
    apply = phases.get("apply_after_s", phases.get("apply_s"))
    workers = f"{e.get('workers')} worker {'threads' if e.get('layout') == 'threads' else 'processes'}"
    cpu = f"server CPU {e.get('server_cpu_s')}s"
    if "worker_cpu_s" in e:
        cpu += f", workers {'/'.join(str(s) for s in e['worker_cpu_s'])}s (total {e.get('cpu_s_total')}s)"
    return (
        f"loadbay {r.database} {r.rows:,}: upload {e.get('upload_s')}s, read through {read}s, "
        f"validate+stage {validate}s (1 worker; the others apply meanwhile), "
        f"apply after that {apply}s ({workers}), download {e.get('download_s')}s; "
        f"{cpu}; {e.get('status_requests')} status requests; "
        f"apply records/s by tenth of the batch {e.get('apply_rate_by_tenth')}; "
        f"a second account's 100 records, submitted meanwhile: {e.get('second_account_100_records_s')}s"
    )


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the loadbay processes and databases of a measurement are
    stopped and dropped on the way out."""
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = datetime.now(UTC)
    load_at_start = _loadavg()
    config = Config.from_env()
    try:
        versions = {f"{b.name}_version": b.version() for b in config.backends}
    except psycopg.Error as exc:
        raise SystemExit(f"bench: cannot reach PostgreSQL: {exc}") from exc
    run = Run(config)
    run.prepare_files()
    run.measure_all()

    table = format_table(run.results)
    notes = _notes(run)
    print(f"\n{table}\n")
    print("\n".join(notes))
    for failure in run.failures:
        print(f"FAILED {failure['database']} {failure['rows']:,} {failure['method']}: {failure['error']}")
    document = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "loadavg_1m_at_start": load_at_start,
        "machine": machine_facts(versions),
        "settings": config.as_json(),
        "files": [f.as_json() for f in run.files.values()],
        "results": [r.as_json() for r in run.results],
        "failures": run.failures,
        "table": table,
        "notes": notes,
    }
    path = write_json(document, started)
    print(f"\nwrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
