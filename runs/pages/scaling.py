"""A suite's Scaling view (issue #17): the speedup curve, the recommended worker count, and
the form that starts a sweep. The chart draws from GET /api/suites/{id}/scaling."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from runs import permissions
from runs.execution import launch, sweep
from runs.insight.scaling_data import suite_scaling
from runs.models import Run, RunConfig, Suite


def _config(suite: Suite, name: str) -> RunConfig:
    default = suite.default_config()  # unsaved until the suite's first launch
    if not name or name == default.name:
        return default
    return get_object_or_404(RunConfig, suite=suite, name=name)


def _page(suite: Suite, config: RunConfig) -> str:
    return f"{reverse('scaling', args=[suite.name])}?{urlencode({'config': config.name})}"


def scaling_page(request, name, status=200, sweep_error=""):
    suite = get_object_or_404(Suite, name=name)
    config = _config(suite, request.GET.get("config", "").strip())
    data = suite_scaling(suite, config)
    # The latest sweep of the configuration shown, like the curve above it.
    latest = Run.objects.filter(
        suite=suite, config_snapshot__has_key="sweep", config_snapshot__name=config.name
    ).first()
    sweep_runs = (
        Run.objects.filter(suite=suite, config_snapshot__sweep__id=latest.sweep["id"]).order_by(
            "id"
        )
        if latest
        else []
    )
    return render(
        request,
        "runs/scaling.html",
        {
            "suite": suite,
            "config": config,
            "configs": suite.configs.all(),
            "data": data,
            "data_url": f"/api/suites/{suite.id}/scaling?{urlencode({'config': config.name})}",
            "sweep_runs": sweep_runs,
            "default_workers": request.POST.get("workers")
            or ", ".join(map(str, sweep.DEFAULT_WORKERS)),
            "sweep_error": sweep_error,
            "max_steps": sweep.MAX_STEPS,
        },
        status=status,
    )


@permissions.sweep_page
@require_POST
def start_sweep(request, name):
    suite = get_object_or_404(Suite, name=name)
    config = _config(suite, request.POST.get("config", "").strip())
    try:
        runs = sweep.start(config, sweep.parse_workers(request.POST.get("workers", "")),
                           user=request.user)  # fmt: skip
    except launch.LaunchError as exc:
        request.GET = request.GET.copy()
        request.GET["config"] = config.name
        return scaling_page(request, name, status=400, sweep_error=exc.message)
    counts = ", ".join(str(r.workers) for r in runs)
    messages.success(
        request,
        f"Sweep queued: {len(runs)} runs of {config.name} at {counts} workers, one after "
        f"another (runs #{runs[0].id}–#{runs[-1].id}). Reload this page as they finish.",
    )
    return redirect(_page(suite, config))
