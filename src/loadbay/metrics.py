"""Prometheus metrics: live queue and batch gauges read from the database on scrape."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select

from loadbay.db.engine import Database
from loadbay.db.tables import batches, chunks

__all__ = ["QueueCollector", "registry_for"]


class QueueCollector(Collector):
    """Batches by status and chunks by status, as every process sees them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._db.read() as conn:
            by_batch = conn.execute(select(batches.c.status, func.count()).group_by(batches.c.status)).all()
            by_chunk = conn.execute(select(chunks.c.status, func.count()).group_by(chunks.c.status)).all()
            records = conn.execute(
                select(
                    func.coalesce(func.sum(batches.c.succeeded), 0),
                    func.coalesce(func.sum(batches.c.failed), 0),
                )
            ).one()
        yield _gauge("loadbay_batches", "Batches by status", "status", by_batch)
        yield _gauge("loadbay_chunks", "Chunks by status", "status", by_chunk)
        applied = GaugeMetricFamily("loadbay_records", "Records by outcome", labels=["outcome"])
        applied.add_metric(["succeeded"], float(records[0]))
        applied.add_metric(["failed"], float(records[1]))
        yield applied


def _gauge(name: str, doc: str, label: str, rows: Sequence[Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for row in rows:
        family.add_metric([str(row[0])], float(row[1]))
    return family


def registry_for(db: Database) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(QueueCollector(db))
    return registry
