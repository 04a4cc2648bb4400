"""Prometheus metrics.

Read from the database on each scrape, so every server answers the same: batches by status
and type, chunks by status, records with an outcome by type and outcome (a counter: only
batches past validation, whose counts never go down), the age of the oldest work a worker
could take (queue lag) and the live worker processes (their heartbeats).

Measured where the work happens: how long applying a chunk takes and how long a batch takes
from submit to its final status (histograms). Worker threads inside `loadbay serve` report
them on its /metrics; a worker process serves its own on LOADBAY_WORKER_METRICS_PORT, at
LOADBAY_WORKER_METRICS_HOST (loopback by default). HTTP requests are measured by the app
(starlette-exporter).
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.db.engine import Database
from loadbay.domain.models import Batch

__all__ = [
    "MetricsPortError",
    "QueueCollector",
    "batch_finished",
    "exposition",
    "registry_for",
    "serve_process_metrics",
    "timed_chunk",
]

log = logging.getLogger(__name__)

# This process's measurements (one registry for every app and worker pool in the process).
PROCESS = CollectorRegistry()
_CHUNK_SECONDS = Histogram(
    "loadbay_chunk_apply_seconds",
    "Time to apply one chunk and settle its outcomes, by record type",
    ["type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=PROCESS,
)
_BATCH_SECONDS = Histogram(
    "loadbay_batch_seconds",
    "Time from a batch's submit to its final status, by record type and final status",
    ["type", "status"],
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
    registry=PROCESS,
)


@contextmanager
def timed_chunk(batch_type: str) -> Iterator[None]:
    """Measure applying a chunk of a batch of `batch_type` (only when it succeeds)."""
    started = time.perf_counter()
    yield
    _CHUNK_SECONDS.labels(batch_type).observe(time.perf_counter() - started)


def batch_finished(batch: Batch, status: str, at: datetime) -> None:
    """Measure a batch that reached its final `status` at `at`."""
    if batch.submitted_at is not None:
        _BATCH_SECONDS.labels(batch.type, status).observe(max(0.0, (at - batch.submitted_at).total_seconds()))


class QueueCollector(Collector):
    """What the database holds, across all accounts, on each scrape, and whether it answered
    (`loadbay_database_up`): while it does not, the scrape has that gauge at 0 and none of
    the database's metrics, so that the process's own (HTTP requests, CPU) still come, and an
    alert on the database's metrics sees them absent rather than losing every series."""

    def __init__(self, db: Database, heartbeat_seconds: float) -> None:
        self._db = db
        self._alive = timedelta(seconds=3 * heartbeat_seconds)
        self._was_up = True

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = repo.now()
        up = GaugeMetricFamily(
            "loadbay_database_up", "Whether the database answered this scrape (1) or not (0)"
        )
        try:
            with self._db.read() as conn:
                census = queue.census(conn, now, now - self._alive)
        except (SQLAlchemyError, OSError) as exc:
            if self._was_up:  # once per outage, not once per scrape
                log.warning(
                    "metrics: the database does not answer (%s); its metrics are left out", _reason(exc)
                )
            self._was_up = False
            up.add_metric([], 0.0)
            yield up
            return
        if not self._was_up:
            log.info("metrics: the database answers again")
        self._was_up = True
        up.add_metric([], 1.0)
        yield up
        yield _batches(census)
        yield _gauge("loadbay_chunks", "Chunks by status", "status", sorted(census.chunks.items()))
        yield _records(census)
        yield _lag(census, now)
        yield from _workers(census)


def _reason(exc: BaseException) -> str:
    """An error's kind and the first line of what it says (a database error's own, not its
    statement)."""
    cause = getattr(exc, "orig", None) or exc
    return f"{type(cause).__name__}: {str(cause).partition(chr(10))[0]}"


def _batches(census: queue.Census) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "loadbay_batches", "Batches by status and record type", labels=["status", "type"]
    )
    for (status, type_), count in sorted(census.batches.items()):
        family.add_metric([status, type_], count)
    return family


def _records(census: queue.Census) -> CounterMetricFamily:
    doc = "Records that have an outcome, by record type and outcome (of batches past validation)"
    family = CounterMetricFamily("loadbay_records", doc, labels=["type", "outcome"])
    for (type_, outcome), count in sorted(census.records.items()):
        family.add_metric([type_, outcome], count)
    return family


def _lag(census: queue.Census, now: datetime) -> GaugeMetricFamily:
    doc = "How long the oldest work waiting for a worker has waited (0: none waits)"
    family = GaugeMetricFamily("loadbay_queue_lag_seconds", doc, labels=["queue"])
    for name, since in (("validation", census.oldest_queued_batch), ("chunks", census.oldest_ready_chunk)):
        family.add_metric([name], 0.0 if since is None else max(0.0, (now - since).total_seconds()))
    return family


def _workers(census: queue.Census) -> Iterator[GaugeMetricFamily]:
    doc = "Processes running workers whose heartbeat is recent, by kind"
    alive = GaugeMetricFamily("loadbay_workers_alive", doc, labels=["kind"])
    for kind in ("serve", "worker"):
        alive.add_metric([kind], sum(1 for w in census.live_workers if w.kind == kind))
    yield alive
    threads = GaugeMetricFamily("loadbay_worker_threads_alive", "Worker threads in those processes")
    threads.add_metric([], sum(w.threads for w in census.live_workers))
    yield threads


def _gauge(name: str, doc: str, label: str, rows: Iterable[tuple[str, int]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for value, count in rows:
        family.add_metric([value], float(count))
    return family


def registry_for(db: Database, heartbeat_seconds: float) -> CollectorRegistry:
    """The database's metrics for one app (each scrape reads them anew)."""
    registry = CollectorRegistry()
    registry.register(QueueCollector(db, heartbeat_seconds))
    return registry


class _Merged(Collector):
    """The metrics of several registries as one."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self._registries = registries

    def collect(self) -> Iterator[Metric]:
        for registry in self._registries:
            yield from registry.collect()


class MetricsPortError(Exception):
    """The port a worker process was told to serve its metrics on cannot be listened on (one
    line an operator can act on: the address, the setting that named it, and why)."""


def serve_process_metrics(port: int, host: str = "127.0.0.1", setting: str = "") -> None:
    """Serve this process's measurements at http://host:port/metrics (a worker process):
    loopback unless told otherwise (LOADBAY_WORKER_METRICS_HOST, `serve --host`).
    MetricsPortError when the port cannot be listened on (`setting`: what named it, for the
    message; LOADBAY_WORKER_METRICS_PORT by default)."""
    registry = CollectorRegistry()
    registry.register(_Merged(PROCESS, REGISTRY))
    try:
        start_http_server(port, host, registry=registry)
    except OSError as exc:
        named = setting or f"LOADBAY_WORKER_METRICS_PORT={port}"
        why = exc.strerror or str(exc)
        hint = (
            ": another process listens on it (another `loadbay worker` on this machine?); give each "
            "worker process on a machine a port of its own, or unset it"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        raise MetricsPortError(
            f"cannot serve this process's metrics on {host}:{port} ({named}): {why}{hint}"
        ) from None


def exposition(queue_registry: CollectorRegistry | None = None) -> bytes:
    """The text a scrape gets: the database's metrics (when given), this process's
    measurements, and the process's default registry (HTTP requests, CPU, memory)."""
    parts = [generate_latest(PROCESS), generate_latest(REGISTRY)]
    if queue_registry is not None:
        parts.insert(0, generate_latest(queue_registry))
    return b"".join(parts)
