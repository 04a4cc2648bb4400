"""Prometheus metrics: live queue and batch gauges read from the database on scrape."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from loadbay.db import queue
from loadbay.db.engine import Database

__all__ = ["QueueCollector", "registry_for"]


class QueueCollector(Collector):
    """Batches by status and chunks by status, as every process sees them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._db.read() as conn:
            census = queue.census(conn)
        yield _gauge("loadbay_batches", "Batches by status", "status", census.batches.items())
        yield _gauge("loadbay_chunks", "Chunks by status", "status", census.chunks.items())
        applied = GaugeMetricFamily("loadbay_records", "Records by outcome", labels=["outcome"])
        applied.add_metric(["succeeded"], float(census.succeeded))
        applied.add_metric(["failed"], float(census.failed))
        yield applied


def _gauge(name: str, doc: str, label: str, rows: Iterable[tuple[str, int]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for row in rows:
        family.add_metric([row[0]], float(row[1]))
    return family


def registry_for(db: Database) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(QueueCollector(db))
    return registry
