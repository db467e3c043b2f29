"""Trend series of a suite: one point per finished run, from one query (no N+1)."""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render

from runs.models import Run, Suite
from runs.numbers import whole_number

MAX_POINTS = 5000
FIELDS = (
    "id",
    "created_at",
    "workers",
    "wall_seconds",
    "serial_seconds",
    "speedup",
    "efficiency",
    "balance",
    "flakiness_rate",
    "tests_total",
    "tests_passed",
    "branch",
    "config_snapshot__name",  # the configuration's name when the run was made
    "status",
)


def filtered_runs(suite: Suite, params) -> tuple:
    runs = Run.objects.whole().filter(suite=suite, status__in=Run.COMPLETE)
    filters = {}
    workers = whole_number(params.get("workers", ""))
    if workers is not None:
        runs = runs.filter(workers=workers)
        filters["workers"] = str(workers)
    if branch := params.get("branch", "").strip():
        runs = runs.filter(branch=branch)
        filters["branch"] = branch
    if config := params.get("config", "").strip():
        # By the name the run was made under: renaming or deleting a configuration later
        # does not move its past runs.
        runs = runs.filter(config_snapshot__name=config)
        filters["config"] = config
    return runs, filters


def series(suite: Suite, params) -> list[dict]:
    runs, _ = filtered_runs(suite, params)
    rows = runs.order_by("-created_at").values(*FIELDS)[:MAX_POINTS]
    points = []
    for row in reversed(rows):
        total = row["tests_total"]
        points.append(
            {
                "run_id": row["id"],
                "time": row["created_at"].isoformat(),
                "workers": row["workers"],
                "wall_seconds": row["wall_seconds"],
                "serial_seconds": row["serial_seconds"],
                "speedup": row["speedup"],
                "efficiency": row["efficiency"],
                "balance": row["balance"],
                "flakiness_rate": row["flakiness_rate"],
                "pass_rate": round(row["tests_passed"] / total, 4) if total else None,
                "branch": row["branch"],
                "config": row["config_snapshot__name"],
                "status": row["status"],
                "url": f"/runs/{row['id']}/",
            }
        )
    return points


def trends_page(request):
    suites = Suite.objects.all()
    name = request.GET.get("suite")
    suite = get_object_or_404(Suite, name=name) if name else suites.first()
    choices = {}
    if suite is not None:
        base = Run.objects.whole().filter(suite=suite, status__in=Run.COMPLETE)
        choices = {
            "workers": sorted(set(base.values_list("workers", flat=True))),
            "branches": sorted(set(base.exclude(branch="").values_list("branch", flat=True))),
            "configs": sorted(
                {n for n in base.values_list("config_snapshot__name", flat=True) if n}
                | set(suite.configs.values_list("name", flat=True))
            ),
        }
    _, filters = filtered_runs(suite, request.GET) if suite else (None, {})
    return render(
        request,
        "runs/trends.html",
        {"suites": suites, "suite": suite, "choices": choices, "filters": filters},
    )


def trends_data(request, name):
    suite = get_object_or_404(Suite, name=name)
    return JsonResponse({"suite": suite.name, "points": series(suite, request.GET)})
