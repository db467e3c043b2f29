"""The QA lead's report: a printable page per suite and period, and CSV exports (issue #6)."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date, datetime, time, timedelta

from django.db.models import Avg, Count, Max, Q, Sum
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from runner.metrics import base_nodeid
from runs.csvcell import csv_cell
from runs.flaky.queries import flaky_queryset
from runs.flaky.summary import pending_runs
from runs.models import Run, Suite, TestResult, TestStat
from runs.pages import trends

DEFAULT_DAYS = 30
TOP = 10
EFFICIENCY_TARGET = 0.75


def _date(value: str | None) -> date | None:
    try:
        day = date.fromisoformat(value) if value else None
    except ValueError:
        return None
    # The period's end is the next midnight: the last day has none (an OverflowError).
    return None if day == date.max else day


def period(params) -> tuple[date, date]:
    """[since, until] as dates, both included; default: the last 30 days."""
    until = _date(params.get("until")) or timezone.localdate()
    since = _date(params.get("since"))
    if since is None:
        days = min(DEFAULT_DAYS - 1, (until - date.min).days)  # no OverflowError near year 1
        since = until - timedelta(days=days)
    if since > until:
        since, until = until, since
    return since, until


def _bounds(since: date, until: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    start = datetime.combine(since, time.min, tzinfo=tz)
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


def period_runs(suite: Suite, since: date, until: date):
    start, end = _bounds(since, until)
    return Run.objects.whole().filter(suite=suite, created_at__gte=start, created_at__lt=end)


def summary(runs) -> dict:
    finished = runs.filter(status__in=Run.COMPLETE)
    aggregates = {
        "runs": Count("id"),
        "passed_runs": Count("id", filter=Q(status=Run.Status.PASSED)),
        "speedup": Avg("speedup"),
        "efficiency": Avg("efficiency"),
        "balance": Avg("balance"),
        "flakiness_rate": Avg("flakiness_rate"),
        "max_flakiness_rate": Max("flakiness_rate"),
        "wall_seconds": Sum("wall_seconds"),
        "tests_total": Sum("tests_total"),
        "tests_passed": Sum("tests_passed"),
        "tests_failed": Sum("tests_failed"),
        "tests_flaky": Sum("tests_flaky"),
        "on_target": Count("id", filter=Q(efficiency__gte=EFFICIENCY_TARGET)),
    }
    # Aggregates may not be named like the fields they read: prefix, then strip.
    raw = finished.aggregate(**{f"agg_{k}": v for k, v in aggregates.items()})
    figures = {k[4:]: v for k, v in raw.items()}
    figures["all_runs"] = runs.count()
    figures["not_finished"] = figures["all_runs"] - figures["runs"]
    n = figures["runs"]
    figures["run_pass_rate"] = figures["passed_runs"] / n if n else None
    total = figures["tests_total"] or 0
    figures["test_pass_rate"] = (figures["tests_passed"] or 0) / total if total else None
    figures["quarantined_passes"] = finished.filter(
        status=Run.Status.PASSED, message__contains="quarantined"
    ).count()
    return figures


def by_workers(runs) -> list[dict]:
    """The finished runs' figures per worker count: a speedup at 2 workers and one at 8 are not
    two samples of one thing, so means are taken within a worker count (issue #17)."""
    return list(
        runs.filter(status__in=Run.COMPLETE)
        .values("workers")
        .annotate(
            runs=Count("id"),
            mean_wall=Avg("wall_seconds"),
            mean_speedup=Avg("speedup"),
            mean_efficiency=Avg("efficiency"),
            mean_balance=Avg("balance"),
            on_target=Count("id", filter=Q(efficiency__gte=EFFICIENCY_TARGET)),
        )
        .order_by("workers")
    )


def slowest_tests(runs, limit: int = TOP) -> list[dict]:
    """Mean duration per test (repeats folded in) over the period's finished runs."""
    rows = (
        TestResult.objects.filter(run__in=runs.filter(status__in=Run.COMPLETE))
        .exclude(outcome__in=["skipped", "crashed"])
        .values("nodeid")
        .annotate(total=Sum("duration"), n=Count("id"), longest=Max("duration"))
    )
    folded: dict[str, list] = defaultdict(lambda: [0.0, 0, 0.0])
    for row in rows.iterator():
        entry = folded[base_nodeid(row["nodeid"])]
        entry[0] += row["total"] or 0.0
        entry[1] += row["n"]
        entry[2] = max(entry[2], row["longest"] or 0.0)
    tests = [
        {"nodeid": k, "mean": v[0] / v[1], "max": v[2], "attempts": v[1]}
        for k, v in folded.items()
        if v[1]
    ]
    return sorted(tests, key=lambda t: -t["mean"])[:limit]


def top_flaky(suite: Suite, since: date, until: date, limit: int = TOP):
    start, end = _bounds(since, until)
    return list(flaky_queryset(suite).filter(last_flip_at__gte=start, last_flip_at__lt=end)[:limit])


def worst_balanced(runs, limit: int = TOP):
    return list(
        runs.filter(status__in=Run.COMPLETE, balance__isnull=False).order_by(
            "-balance", "-created_at"
        )[:limit]
    )


def points(suite: Suite, since: date, until: date) -> list[dict]:
    start, end = _bounds(since, until)
    out = []
    for p in trends.series(suite, {}):
        when = datetime.fromisoformat(p["time"])
        if start <= when < end:
            out.append(p)
    return out


def report_page(request, name):
    suite = get_object_or_404(Suite, name=name)
    since, until = period(request.GET)
    runs = period_runs(suite, since, until)
    query = f"since={since.isoformat()}&until={until.isoformat()}"
    return render(
        request,
        "runs/report.html",
        {
            "suite": suite,
            "since": since,
            "until": until,
            "query": query,
            "figures": summary(runs),
            "by_workers": by_workers(runs),
            "flaky": top_flaky(suite, since, until),
            "flaky_total": TestStat.objects.filter(suite=suite, flip_count__gt=0).count(),
            "quarantined": TestStat.objects.filter(suite=suite, quarantined=True).count(),
            "history_pending": pending_runs(suite),
            "slowest": slowest_tests(runs),
            "worst_balanced": worst_balanced(runs),
            "points": points(suite, since, until),
            "target": EFFICIENCY_TARGET,
        },
    )


def _csv_response(filename: str, header: list[str], rows) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return response


RUN_COLUMNS = [
    "run_id", "created_at", "status", "trigger", "config", "branch", "commit", "workers",
    "wall_seconds", "serial_seconds", "speedup", "speedup_measured", "efficiency", "balance",
    "flakiness_rate", "tests_total", "tests_passed", "tests_failed", "tests_skipped",
    "tests_errors", "tests_flaky", "message",
]  # fmt: skip


def runs_csv(request, name):
    suite = get_object_or_404(Suite, name=name)
    since, until = period(request.GET)
    runs = period_runs(suite, since, until).order_by("created_at", "id")

    def rows():
        for r in runs.iterator():
            yield [
                r.id, r.created_at, r.status, r.trigger, r.config_name,
                r.branch, r.commit, r.workers, r.wall_seconds, r.serial_seconds, r.speedup,
                r.speedup_measured, r.efficiency, r.balance, r.flakiness_rate, r.tests_total,
                r.tests_passed, r.tests_failed, r.tests_skipped, r.tests_errors, r.tests_flaky,
                r.message,
            ]  # fmt: skip

    filename = f"ptd-{suite.name}-runs-{since.isoformat()}-{until.isoformat()}.csv"
    return _csv_response(filename, RUN_COLUMNS, rows())


TEST_COLUMNS = [
    "nodeid", "runs_seen", "runs_failed", "runs_flaky", "flip_count", "flip_rate", "fail_rate",
    "mean_duration", "first_seen_at", "first_flaky_at", "last_flip_at", "last_seen_at",
    "last_outcome", "failed_serial", "parallel_only", "quarantined", "quarantined_by",
    "quarantined_at", "quarantine_reason",
]  # fmt: skip


def tests_csv(request, name):
    suite = get_object_or_404(Suite, name=name)
    stats = TestStat.objects.filter(suite=suite).select_related("quarantined_by")
    if request.GET.get("flaky"):
        stats = stats.filter(flip_count__gt=0)

    def rows():
        for s in stats.order_by("nodeid").iterator(chunk_size=2000):
            yield [
                s.nodeid, s.runs_seen, s.runs_failed, s.runs_flaky, s.flip_count,
                round(s.flip_rate, 4), s.fail_rate,
                round(s.mean_duration, 6) if s.mean_duration is not None else None,
                s.first_seen_at, s.first_flaky_at, s.last_flip_at, s.last_seen_at,
                s.last_outcome, s.failed_serial, s.parallel_only, s.quarantined,
                s.quarantined_by.username if s.quarantined and s.quarantined_by else "",
                s.quarantined_at if s.quarantined else None, s.quarantine_reason,
            ]  # fmt: skip

    return _csv_response(f"ptd-{suite.name}-tests.csv", TEST_COLUMNS, rows())
