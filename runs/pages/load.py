"""Load runs' pages (issue #16): the live page, its exports (stats and series CSV, a
self-contained HTML report), a suite's load trend (p95 and throughput by branch) and a
side-by-side comparison of two load runs. Viewing is everyone's (LoginRequiredMiddleware)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string

from runs import permissions
from runs.load import export, queries
from runs.models import LoadSummary, Run, Suite
from runs.numbers import object_id

TREND_POINTS = 1000
COMPARED = (  # (key of queries.load_dict, label)
    ("users", "users"),
    ("duration_seconds", "duration (s)"),
    ("iterations", "iterations"),
    ("failures", "failures"),
    ("rps", "iterations/s"),
    ("mean_ms", "mean (ms)"),
    ("p50_ms", "p50 (ms)"),
    ("p90_ms", "p90 (ms)"),
    ("p95_ms", "p95 (ms)"),
    ("p99_ms", "p99 (ms)"),
    ("max_ms", "max (ms)"),
)


def load_run(run_id: int) -> Run:
    run = get_object_or_404(Run.objects.select_related("suite", "user"), pk=run_id)
    if not run.is_load:
        raise Http404("This run is not a load run.")
    return run


def run_page(request, run: Run):
    """The page of a load run (runs.pages.views.run_detail sends load runs here): its
    snapshot read once, its series downsampled (queries.drawn_series)."""
    load = queries.live_snapshot(run)
    return render(
        request,
        "runs/load_run.html",
        {
            "run": run,
            "opts": load["options"],
            "load": load,
            "can_cancel": permissions.can_cancel(request.user, run),
            "can_read_log": permissions.can_read_log(request.user, run),
        },
    )


def _attachment(body: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def stats_csv(request, run_id):
    run = load_run(run_id)
    return _attachment(export.stats_csv(run), "text/csv", f"ptd-load-{run.id}-stats.csv")


def series_csv(request, run_id):
    """Every stored second, streamed: a day of load is 86,400 rows, never held whole."""
    run = load_run(run_id)
    response = StreamingHttpResponse(export.series_csv(run), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="ptd-load-{run.id}-series.csv"'
    return response


def _inline(text: str) -> str:
    """Script or style text that cannot end its element early."""
    return text.replace("</", "<\\/")


def _static_text(path: str) -> str:
    found = finders.find(path)
    if not found:  # collected only (a deployment without the finders' sources)
        found = str(Path(settings.STATIC_ROOT or "") / path)
    return Path(found).read_text(encoding="utf-8")


def report(request, run_id):
    """The HTML report: one file with plotly.js, the page's script, its style and its data
    inline, to keep or mail; opened from disk it fetches nothing. Sent as an attachment: the
    server's CSP (no inline script) would refuse it in the browser's tab."""
    run = load_run(run_id)
    load = queries.live_snapshot(run)
    body = render_to_string(
        "runs/load_report.html",
        {
            "run": run,
            "opts": load["options"],
            "load": load,
            "css": _inline(_static_text("css/ptd.css")),
            "plotly": _inline(_static_text("plotly/plotly.min.js")),
            "script": _inline(_static_text("js/load.js")),
        },
    )
    return _attachment(body, "text/html; charset=utf-8", f"ptd-load-{run.id}-report.html")


def trend(request, name):
    """A suite's finished load runs: p95 and throughput over time, one line per branch; and
    a form choosing two of them to compare."""
    suite = get_object_or_404(Suite, name=name)
    runs = (
        Run.objects.filter(suite=suite, config_snapshot__mode="load", status__in=Run.COMPLETE)
        .order_by("-created_at")
        .select_related("load_summary")[:TREND_POINTS]
    )
    points = []
    for run in reversed(list(runs)):
        load = queries.load_dict(run)
        points.append(
            {
                "run_id": run.id,
                "time": run.created_at.isoformat(),
                "branch": run.branch or "(no branch)",
                "status": run.status,
                "p95_ms": load["p95_ms"],
                "rps": load["rps"],
                "users": load["users"],
                "url": run.get_absolute_url(),
            }
        )
    return render(
        request,
        "runs/load_trend.html",
        {"suite": suite, "points": points, "runs": list(reversed(points))},
    )


def compare(request, name):
    """Two load runs of a suite side by side (?a=ID&b=ID): figures, and per test and per
    endpoint p95 and throughput."""
    suite = get_object_or_404(Suite, name=name)
    picked = []
    for key in ("a", "b"):
        value = object_id(request.GET.get(key, ""))
        if value is None:
            raise Http404("Choose two load runs of this suite (?a=ID&b=ID).")
        run = Run.objects.filter(pk=value, suite=suite, config_snapshot__mode="load").first()
        if run is None:
            raise Http404(f"No load run {value} of {suite.name}.")
        picked.append(run)
    a, b = (queries.load_dict(run) for run in picked)
    rows = [
        (label, a.get(key), b.get(key), _change(a.get(key), b.get(key))) for key, label in COMPARED
    ]
    caveats = []
    if a.get("users") != b.get("users"):
        caveats.append(
            f"The runs held different loads ({a.get('users')} and {b.get('users')} users): "
            "latency and throughput are not comparable as they are."
        )
    entries = []
    for kind, label in (("tests", "nodeid"), ("endpoints", None)):
        name_of = (lambda e: e["nodeid"]) if label else (lambda e: f"{e['method']} {e['path']}")
        left = {name_of(e): e for e in a[kind]}
        right = {name_of(e): e for e in b[kind]}
        for entry_name in sorted(left.keys() | right.keys()):
            x, y = left.get(entry_name, {}), right.get(entry_name, {})
            entries.append(
                (
                    kind[:-1],
                    entry_name,
                    x.get("p95_ms"),
                    y.get("p95_ms"),
                    _change(x.get("p95_ms"), y.get("p95_ms")),
                    x.get("rps"),
                    y.get("rps"),
                )
            )
    summaries = {s.run_id: s for s in LoadSummary.objects.filter(run__in=picked)}
    return render(
        request,
        "runs/load_compare.html",
        {
            "suite": suite,
            "a": picked[0],
            "b": picked[1],
            "rows": rows,
            "entries": entries,
            "thresholds": [getattr(summaries.get(r.id), "thresholds", []) for r in picked],
            "caveats": caveats,
        },
    )


def _change(before, after) -> str:
    if before in (None, 0) or after is None:
        return ""
    return f"{(after - before) / before * 100:+.1f} %"
