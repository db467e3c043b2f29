"""A load run's exports: CSV of its stats (as Locust's ``_stats.csv``: a row per test and per
endpoint, then the total) and of its per-second series. The HTML report is a page
(runs.pages.load) built from ``queries``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from runs.csvcell import csv_cell
from runs.load import queries
from runs.models import LoadSecond, Run

STATS_COLUMNS = ("type", "name", *queries.FIGURES, *queries.EXTRA)
SERIES_COLUMNS = (
    "second",
    "users",
    "iterations",
    "rps",
    "failures",
    "requests",
    "request_failures",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "mean_ms",
)


def _csv(columns, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in columns])
    return out.getvalue()


def stats_csv(run: Run) -> str:
    load = queries.load_dict(run) or {}
    total, entries = queries.stored_entries(run)
    stats = queries.stats_of(total, entries, load.get("duration_seconds") or 0.0)
    rows = [{"type": "test", "name": t["nodeid"], **t} for t in stats["tests"]]
    rows += [
        {"type": "endpoint", "name": f"{e['method']} {e['path']}".strip(), **e}
        for e in stats["endpoints"]
    ]
    rows.append({"type": "total", "name": "Aggregated", **stats["total"]})
    return _csv(STATS_COLUMNS, rows)


def series_csv(run: Run) -> Iterator[str]:
    """The series' CSV, a line at a time (read from the database in chunks)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(SERIES_COLUMNS)
    rows = LoadSecond.objects.filter(run=run).order_by("second").iterator(chunk_size=2000)
    for row in rows:
        data = row.to_dict()
        writer.writerow([csv_cell(data.get(column)) for column in SERIES_COLUMNS])
        if out.tell() > 64_000:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()
