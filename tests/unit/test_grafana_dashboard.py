"""docs/grafana-dashboard.json counts each thing once however many servers Prometheus scrapes:
a metric read from the database (every server answers the same) is taken once, by `max by`
its own labels, never summed across servers; a metric each process measures for itself is
summed."""

from __future__ import annotations

import json
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
# what may stand between an aggregation and the metric it aggregates
_AGGREGATED = re.compile(r"(\w+)\s*(?:by\s*\(([^)]*)\))?\s*\(\s*(?:(?:rate|irate|increase)\s*\(\s*)?$")


def database_metrics() -> dict[str, set[str]]:
    """name -> labels of each metric docs/metrics.md lists as read from the database."""
    text = (DOCS / "metrics.md").read_text()
    table = text.split("Read from the database on each scrape", 1)[1].split("\n\n", 2)[1]
    rows = re.findall(r"^\| `(loadbay_\w+)` \| \w+ \|([^|]*)\|", table, re.MULTILINE)
    return {name: set(re.findall(r"`(\w+)`", labels)) for name, labels in rows}


def aggregations() -> list[tuple[str, str, str, set[str]]]:
    """(expression, metric, aggregation, its `by` labels) of every loadbay metric a panel reads."""
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for match in re.finditer(r"\bloadbay_\w+", expr):
                outer = _AGGREGATED.search(expr[: match.start()])
                how, labels = (outer.group(1), outer.group(2) or "") if outer else ("", "")
                found.append(
                    (
                        expr,
                        match.group(),
                        how,
                        {label.strip() for label in labels.split(",") if label.strip()},
                    )
                )
    return found


def test_the_docs_list_the_database_metrics() -> None:
    assert database_metrics() == {
        "loadbay_records_total": {"type", "outcome"},
        "loadbay_batches": {"status", "type"},
        "loadbay_chunks": {"status"},
        "loadbay_queue_lag_seconds": {"queue"},
        "loadbay_workers_alive": {"kind"},
        "loadbay_worker_threads_alive": set(),
    }


def test_database_metrics_are_taken_once_not_summed_across_servers() -> None:
    from_database = database_metrics()
    read = aggregations()
    assert {metric for _, metric, _, _ in read} >= set(from_database), "a panel for each"
    for expr, metric, how, labels in read:
        if metric in from_database:
            assert (how, labels) == ("max", from_database[metric]), f"{expr}: max by its own labels first"
        else:
            assert how == "sum", f"{expr}: each process counts its own; sum them"
