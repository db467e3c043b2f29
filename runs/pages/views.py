"""Server-rendered pages. Every page needs a login (LoginRequiredMiddleware); who may do what
beyond viewing is runs/permissions.py's to say."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from runs import permissions
from runs.execution import environment, launch
from runs.insight import breakdown
from runs.insight import queries as insight
from runs.models import Run, RunConfig, Suite, TestResult
from runs.numbers import whole_number
from runs.pages import load
from runs.pages.forms import LaunchForm, NamedRunConfigForm, RunConfigForm, SuiteForm

RUNS_PER_PAGE = 50


def suites_with_latest_run():
    latest = Run.objects.filter(suite=OuterRef("pk")).order_by("-created_at", "-id")
    return Suite.objects.annotate(
        latest_run_id=Subquery(latest.values("id")[:1]),
        latest_status=Subquery(latest.values("status")[:1]),
        latest_created=Subquery(latest.values("created_at")[:1]),
    )


def home(request):
    return render(
        request,
        "runs/home.html",
        {
            "suites": suites_with_latest_run(),
            "recent_runs": Run.objects.select_related("suite")[:10],
            "rows_url": f"{reverse('run_rows')}?limit=10",
        },
    )


def suite_list(request):
    return render(request, "runs/suite_list.html", {"suites": suites_with_latest_run()})


def suite_detail(request, name):
    suite = get_object_or_404(Suite, name=name)
    if request.method == "POST" and not permissions.can_launch(request.user):
        raise PermissionDenied("You may not launch runs.")
    form = LaunchForm(suite, request.POST or None, initial={"config": suite.default_config()})
    if request.method == "POST" and form.is_valid():
        try:
            run = launch.launch(
                form.cleaned_data["config"],
                trigger=Run.Trigger.UI,
                user=request.user,
                overrides=form.overrides(),
            )
        except launch.LaunchError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            return redirect(run)
    runs = suite.runs.select_related("suite")[:20]
    return render(
        request,
        "runs/suite_detail.html",
        {
            "suite": suite,
            "form": form,
            "runs": runs,
            "configs": suite.configs.all(),
            "rows_url": f"{reverse('run_rows')}?{urlencode({'suite': suite.name, 'limit': 20})}",
        },
        status=400 if form.errors else 200,
    )


@permissions.staff_only_page
def suite_edit(request, name=None):
    suite = get_object_or_404(Suite, name=name) if name else None
    config = suite.default_config() if suite else RunConfig(is_default=True, name="default")
    form = SuiteForm(request.POST or None, instance=suite, prefix="suite")
    config_form = RunConfigForm(request.POST or None, instance=config, prefix="config")
    if request.method == "POST" and form.is_valid() and config_form.is_valid():
        suite = form.save(commit=False)
        if suite.created_by_id is None:
            suite.created_by = request.user
        suite.save()
        config = config_form.save(commit=False)
        config.suite = suite
        config.save()
        messages.success(request, f"Suite {suite.name} saved.")
        return redirect(suite)
    return render(
        request,
        "runs/suite_form.html",
        # The suite's name as saved: a form that failed has set the instance's to what was typed.
        {"form": form, "config_form": config_form, "name": name},
        status=400 if request.method == "POST" else 200,
    )


@permissions.staff_only_page
def config_edit(request, name, config_id=None):
    suite = get_object_or_404(Suite, name=name)
    config = (
        get_object_or_404(RunConfig, pk=config_id, suite=suite)
        if config_id is not None
        else RunConfig(suite=suite)
    )
    form = NamedRunConfigForm(suite, request.POST or None, instance=config)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            # One default per suite: two staff making different defaults at once take turns.
            Suite.objects.select_for_update().get(pk=suite.pk)
            config = form.save()
            if config.is_default:
                suite.configs.exclude(pk=config.pk).update(is_default=False)
        messages.success(request, f"Configuration {config.name} saved.")
        return redirect(suite)
    return render(
        request,
        "runs/config_form.html",
        {"form": form, "suite": suite, "config": config if config.pk else None},
        status=400 if request.method == "POST" else 200,
    )


@permissions.staff_only_page
@require_POST
def config_delete(request, name, config_id):
    suite = get_object_or_404(Suite, name=name)
    config = get_object_or_404(RunConfig, pk=config_id, suite=suite)
    if config.is_default:
        messages.warning(
            request, "The default configuration stays: make another the default first."
        )
    else:
        config.delete()  # its runs keep their snapshot of it
        messages.success(request, f"Configuration {config.name} deleted.")
    return redirect(suite)


def filtered_runs(request) -> tuple:
    """The runs list's runs and the filters that chose them (suite, status, branch, trigger)."""
    runs = Run.objects.select_related("suite")
    filters = {}
    for key in ("suite", "status", "branch", "trigger"):
        value = request.GET.get(key, "").strip()
        if value:
            filters[key] = value
    if "suite" in filters:
        runs = runs.filter(suite__name=filters["suite"])
    if "status" in filters:
        runs = runs.filter(status=filters["status"])
    if "branch" in filters:
        runs = runs.filter(branch=filters["branch"])
    if "trigger" in filters:
        runs = runs.filter(trigger=filters["trigger"])
    return runs, filters


def run_list(request):
    runs, filters = filtered_runs(request)
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    query = urlencode(filters)
    return render(
        request,
        "runs/run_list.html",
        {
            "page": page,
            "filters": filters,
            "query": query,
            "rows_url": f"{reverse('run_rows')}?{urlencode({**filters, 'page': page.number})}",
            "suites": Suite.objects.values_list("name", flat=True),
            "statuses": Run.Status.choices,
        },
    )


def run_rows(request):
    """Just the rows of a list of runs, for the lists that refresh themselves (runs.js): the
    runs list's filters and page, or the latest ``limit`` runs. A fragment: it renders no
    flash message, so polling never eats one meant for the page."""
    runs, _ = filtered_runs(request)
    limit = whole_number(request.GET.get("limit", ""))
    if limit is not None:
        rows = runs[: min(limit, RUNS_PER_PAGE)]
    else:
        rows = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page")).object_list
    return render(request, "runs/_run_rows.html", {"runs": rows})


def run_detail(request, run_id):
    run = get_object_or_404(Run.objects.select_related("suite", "user"), pk=run_id)
    if run.is_load:
        return load.run_page(request, run)
    user = request.user
    previous = insight.previous(run)  # what "compare with…" offers first
    return render(
        request,
        "runs/run_detail.html",
        {
            "run": run,
            "can_cancel": permissions.can_cancel(user, run),
            "can_read_log": permissions.can_read_log(user, run),
            "rerun_here": permissions.can_rerun(user, run) and run.is_launchable,
            "log_half": settings.PTD_MAX_LOG_BYTES // 2,
            "output_cap": settings.PTD_MAX_OUTPUT_PER_TEST,
            "failing_outcomes": " ".join(TestResult.FAILING),
            "breakdown_bar": breakdown.bar(run.breakdown) if run.breakdown else None,
            "compare_default": previous,
            "compare_choices": insight.choices(run, previous),
            "machines": [s.to_dict() for s in run.shards.select_related("agent")],
        },
    )


@require_POST
def run_cancel(request, run_id):
    run = get_object_or_404(Run, pk=run_id)
    if not permissions.can_cancel(request.user, run):
        raise PermissionDenied("You may cancel only the runs you launched; staff cancel any.")
    if environment.current().cancel(run):
        messages.info(request, f"Run {run.id} cancelled.")
    else:
        messages.warning(request, f"Run {run.id} had already finished.")
    return redirect(run)


def run_log(request, run_id):
    """The run's pytest output as plain text (kept up to PTD_MAX_LOG_BYTES: head and tail)."""
    run = get_object_or_404(Run, pk=run_id)
    if not permissions.can_read_log(request.user, run):
        raise PermissionDenied("Only staff and its launcher may read a run's log (secrets).")
    path = launch.log_path(run)
    if not path.is_file():
        raise Http404("This run has no log (it never started here, or came from outside).")
    return FileResponse(path.open("rb"), content_type="text/plain; charset=utf-8")
