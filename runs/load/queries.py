"""A load run's figures as the API, the live page, the exports and the trend read them.

``load_dict`` is the ``load`` object of ``GET /api/runs/{id}`` (DESIGN.md section 9): the run's
figures over every iteration, its thresholds, and the same figures per test and per endpoint.
Every figure comes from the stored histograms (``runner.loadstats``), merged exactly.
"""

from __future__ import annotations

from django.db.models import Count, F, Max, Min, Sum

from runner.loadstats import Entry
from runs.models import LoadEntry, LoadError, LoadSecond, LoadSummary, Run

# The figures of the run, of a test and of an endpoint (the API's contract), in this order.
FIGURES = (
    "iterations",
    "failures",
    "rps",
    "min_ms",
    "mean_ms",
    "max_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
)
EXTRA = ("exceptions", "p99_9_ms")
MAX_ERRORS = 100
LOAD_OPTIONS = ("users", "spawn_rate", "duration", "iterations", "think_time")
DRAWN_POINTS = 2000  # the most points a page or a report draws: a day of load stays light


def _round(value):
    return None if value is None else round(value, 3)


def figures(entry: Entry, seconds: float) -> dict:
    """The contract's figures of one entry over ``seconds`` of load (rps: count / seconds)."""
    raw = entry.figures()
    out = {
        "iterations": raw["count"],
        "failures": raw["failures"],
        "rps": round(raw["count"] / seconds, 3) if seconds > 0 else None,
    }
    for key in (*FIGURES[3:], *EXTRA):
        out[key] = _round(raw[key]) if key.endswith("_ms") else raw[key]
    return out


def split_endpoint(name: str) -> tuple[str, str]:
    method, _, path = name.partition(" ")
    return (method, path) if path else ("", name)


def stats_of(total: Entry, entries: dict[tuple[str, str], Entry], seconds: float) -> dict:
    """The stats table: the run's total, then a row per test and per endpoint."""
    tests, endpoints = [], []
    for (kind, name), entry in sorted(entries.items()):
        row = figures(entry, seconds)
        if kind == "test":
            tests.append({"nodeid": name, **row})
        else:
            method, path = split_endpoint(name)
            endpoints.append({"method": method, "path": path, "requests": row["iterations"], **row})
    return {"total": figures(total, seconds), "tests": tests, "endpoints": endpoints}


def stored_entries(run: Run) -> tuple[Entry, dict[tuple[str, str], Entry]]:
    total, entries = Entry(), {}
    for row in LoadEntry.objects.filter(run=run):
        if row.kind == LoadEntry.Kind.TOTAL:
            total = row.entry
        else:
            entries[(row.kind, row.name)] = row.entry
    return total, entries


def summary_of(run: Run) -> LoadSummary:
    return LoadSummary.objects.filter(run=run).first() or LoadSummary(run=run)


def duration_of(summary: LoadSummary, run: Run) -> float:
    if summary.duration_seconds:
        return summary.duration_seconds
    last = LoadSecond.objects.filter(run=run).order_by("-second").first()
    return float(last.second + 1) if last else 0.0


def load_dict(run: Run) -> dict | None:
    """The ``load`` object of a load run (None for any other run)."""
    if not run.is_load:
        return None
    summary = summary_of(run)
    seconds = duration_of(summary, run)
    total, entries = stored_entries(run)
    stats = stats_of(total, entries, seconds)
    snap = run.config_snapshot
    return {
        "users": summary.users or snap.get("users"),
        "duration_seconds": round(seconds, 3),
        **stats["total"],
        "thresholds": [
            {"expr": t["expr"], "value": t["value"], "passed": t["passed"]}
            for t in summary.thresholds
        ],
        "tests": stats["tests"],
        "endpoints": stats["endpoints"],
        "stop_reason": stop_reason(run, summary),
        "aborted_by": summary.aborted_by,
    }


def stop_reason(run: Run, summary: LoadSummary) -> str:
    """Why the load stopped. The engine says "cancelled" for any SIGTERM, the timeout's too:
    the run's status knows better."""
    if run.status == Run.Status.TIMED_OUT:
        return "timed out"
    return summary.stop_reason


def series(run: Run, since: int = 0, limit: int | None = None) -> list[dict]:
    """The stored seconds from ``since`` on, ``limit`` of them at most (None: all, for the
    CSV export, which streams them)."""
    rows = LoadSecond.objects.filter(run=run, second__gte=since).order_by("second")
    if limit is not None:
        rows = rows[:limit]
    return [row.to_dict() for row in rows.iterator(chunk_size=2000)]


def drawn_series(run: Run, points: int = DRAWN_POINTS) -> list[dict]:
    """The series as the page and the HTML report draw it: every second while there are at
    most ``points``, else buckets of ``span`` seconds computed by the database (one query, at
    most ``points`` rows, whatever the run's length): counts summed, users and the p50 / p95 /
    p99 the highest of their seconds' (an upper bound, the spikes stay visible), the mean and
    the rates over the bucket's stored seconds."""
    seconds = LoadSecond.objects.filter(run=run)
    last = seconds.aggregate(last=Max("second"))["last"]
    if last is None:
        return []
    span = -(-(last + 1) // points)  # ceiling: (last + 1) / span <= points
    if span == 1:
        return series(run)
    buckets = (
        seconds.annotate(bucket=F("second") / span)
        .values("bucket")
        .annotate(
            first=Min("second"),
            stored=Count("id"),
            most_users=Max("users"),
            its_iterations=Sum("iterations"),
            its_failures=Sum("failures"),
            its_requests=Sum("requests"),
            its_request_failures=Sum("request_failures"),
            total=Sum("total_ms"),
            **{f"top_{q}": Max(f"{q}_ms") for q in ("p50", "p95", "p99")},
        )
        .order_by("bucket")
    )
    out = []
    for b in buckets:
        iterations, stored = b["its_iterations"] or 0, b["stored"]
        out.append(
            {
                "second": b["bucket"] * span,
                "span": span,
                "users": b["most_users"],
                "iterations": iterations,
                "rps": round(iterations / stored, 3),
                "failures": round((b["its_failures"] or 0) / stored, 3),
                "requests": b["its_requests"] or 0,
                "request_failures": b["its_request_failures"] or 0,
                "p50_ms": b["top_p50"],
                "p95_ms": b["top_p95"],
                "p99_ms": b["top_p99"],
                "mean_ms": round(b["total"] / iterations, 3) if iterations else None,
            }
        )
    return out


def errors_of(run_or_id) -> list[dict]:
    rows = LoadError.objects.filter(run=run_or_id).order_by("-count", "name")[:MAX_ERRORS]
    return [row.to_dict() for row in rows]


def live_snapshot(run: Run) -> dict:
    """Everything the live page draws, for its first paint and after a reconnect."""
    data = load_dict(run) or {}
    summary = summary_of(run)
    return {
        "users": data.get("users"),  # the run's users: what the page shows once it is over
        "duration_seconds": summary.duration_seconds,  # the measured length, once it is over
        "series": drawn_series(run),
        "stats": {
            "total": {k: data.get(k) for k in FIGURES},
            "tests": data.get("tests", []),
            "endpoints": data.get("endpoints", []),
        },
        "errors": errors_of(run),
        "thresholds": summary.thresholds,
        "options": {
            **{k: run.config_snapshot.get(k) for k in LOAD_OPTIONS},
            "processes": summary.processes or run.workers,
        },
    }
