"""Flakiness pages: a suite's flaky list, a test's history, quarantine, "rerun K times".

Every page needs a login (LoginRequiredMiddleware); who may quarantine, rebuild and rerun on
which configuration is runs/permissions.py's to say.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from runner import options
from runner.metrics import base_nodeid
from runs import permissions
from runs.execution import launch
from runs.execution.pytest_input import rerun_problem
from runs.flaky import history as flaky_history
from runs.flaky import summary
from runs.flaky.queries import SORTS, failing_queryset, flaky_queryset
from runs.models import Run, Suite, TestStat
from runs.numbers import object_id

RERUN_DEFAULT = 10
RERUN_MAX = 200


def test_url(suite: Suite, nodeid: str) -> str:
    return reverse("test_history", args=[suite.name, nodeid])


def flaky_list(request, name):
    suite = get_object_or_404(Suite, name=name)
    sort = request.GET.get("sort", "flip_rate")
    if sort not in SORTS:
        sort = "flip_rate"
    tests = list(flaky_queryset(suite, sort)[:500])
    return render(
        request,
        "runs/flaky_list.html",
        {
            "suite": suite,
            "tests": tests,
            "failing": failing_queryset(suite)[:200],
            "sort": sort,
            "sorts": list(SORTS),
            "quarantined": TestStat.objects.filter(suite=suite, quarantined=True).count(),
            "tracked": TestStat.objects.filter(suite=suite).count(),
            "pending": summary.pending_runs(suite),
        },
    )


def test_history(request, name, nodeid):
    suite = get_object_or_404(Suite, name=name)
    data = flaky_history.history(suite, nodeid)
    stat = data["stat"]
    if stat is None and not data["points"]:
        raise Http404("No such test in this suite's history.")
    last_run_id = data["points"][-1]["run_id"] if data["points"] else None
    last_run = Run.objects.filter(pk=last_run_id).first() if last_run_id else None
    return render(
        request,
        "runs/test_history.html",
        {
            "suite": suite,
            "nodeid": nodeid,
            "stat": stat,
            "points": data["points"],
            "errors": data["errors"],
            "by_workers": TestStat.rates(stat.by_workers) if stat else [],
            "by_worker_id": TestStat.rates(stat.by_worker_id) if stat else [],
            "last_run_id": last_run_id,
            "rerunnable": rerunnable(suite, nodeid),
            "rerun_here": rerun_source(request.user, last_run) is not None,
            "rerun_default": RERUN_DEFAULT,
            "rerun_max": RERUN_MAX,
            "printed": flaky_history.latest_output(suite, nodeid),
        },
    )


def quarantine_list(request, name):
    suite = get_object_or_404(Suite, name=name)
    tests = (
        TestStat.objects.filter(suite=suite, quarantined=True)
        .select_related("quarantined_by")
        .order_by("-quarantined_at", "nodeid")
    )
    return render(request, "runs/flaky_quarantine.html", {"suite": suite, "tests": tests})


def _back(request, default: str) -> str:
    """Where to go after a POST: a local path from `next`, else `default`.

    Only a path ("/..."): redirect() would take any other text for a URL pattern's name
    (a 500 on NoReverseMatch) or a relative URL.
    """
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


@require_POST
@permissions.quarantine_page
def quarantine(request, name):
    suite = get_object_or_404(Suite, name=name)
    nodeid = request.POST.get("nodeid", "").strip()
    stat = get_object_or_404(TestStat, suite=suite, nodeid=nodeid)
    back = _back(request, test_url(suite, nodeid))
    if request.POST.get("action") == "release":
        stat.quarantined = False
        stat.quarantined_by = request.user
        stat.quarantined_at = timezone.now()
        stat.quarantine_reason = ""
        messages.info(request, f"{nodeid} is out of quarantine: its failures fail runs again.")
    else:
        reason = request.POST.get("reason", "").strip()
        if not reason:
            messages.warning(request, "Say why the test is quarantined.")
            return redirect(back)
        stat.quarantined = True
        stat.quarantined_by = request.user
        stat.quarantined_at = timezone.now()
        stat.quarantine_reason = reason[:2000]
        messages.success(
            request, f"{nodeid} is quarantined: it still runs, its failures do not fail runs."
        )
    stat.save(
        update_fields=["quarantined", "quarantined_by", "quarantined_at", "quarantine_reason"]
    )
    return redirect(back)


def rerunnable(suite: Suite, nodeid: str) -> bool:
    """Whether `nodeid` may be rerun: a test in a Python file (pytest_input) that this server
    itself ran for the suite. Ids of outside runs are whatever their uploader sent, and
    pytest imports any .py file named on its command line (review M1)."""
    return rerun_problem(nodeid) is None and flaky_history.ran_here(suite, nodeid)


def rerun_source(user, source: Run | None) -> Run | None:
    """The run whose configuration a rerun repeats: ``source`` when the user may rerun it
    (their own, or staff) and its snapshot is a launchable configuration (not an outside run's
    from CI); else None, and the rerun runs on the suite's default configuration, which anyone
    who may launch may run."""
    if source is None or not source.is_launchable or not permissions.can_rerun(user, source):
        return None
    return source


def rerun_overrides(source: Run | None, times: int) -> dict:
    """The source run's configuration (its snapshot), repeated `times` times: a run of the
    tests (a rerun probes a test's flakiness, even of a load run), so without the load-only
    options every snapshot carries (a configuration keeps its load settings in tests mode,
    and a launch that asks for one of them in a tests run is refused)."""
    overrides: dict = {}
    if source is not None:
        snap = source.config_snapshot or {}
        for key in launch.OVERRIDABLE:
            if key in snap and snap[key] is not None and key not in options.LOAD_ONLY:
                overrides[key] = options.as_given(key, snap[key])
    overrides["mode"] = "tests"
    overrides["repeat"] = times
    return overrides


@require_POST
@permissions.launch_page
def rerun(request, name):
    """Launch a run of just one test, repeated K times, on the configuration of a run."""
    suite = get_object_or_404(Suite, name=name)
    nodeid = base_nodeid(request.POST.get("nodeid", "").strip())
    problem = rerun_problem(nodeid)  # it becomes a pytest argument
    if problem:
        messages.error(request, f"Not a test id of {suite.name}: {problem}.")
        return redirect(_back(request, suite.get_absolute_url()))
    back = _back(request, test_url(suite, nodeid))
    try:
        times = int(request.POST.get("times", RERUN_DEFAULT))
    except ValueError:
        times = 0
    if not 1 <= times <= RERUN_MAX:
        messages.error(request, f"Rerun between 1 and {RERUN_MAX} times.")
        return redirect(back)
    source = None
    run_id = object_id(request.POST.get("run", ""))
    if run_id is not None:
        source = Run.objects.filter(pk=run_id, suite=suite).select_related("config").first()
    if source is None:
        source = flaky_history.last_run_of(suite, nodeid)
    if not rerunnable(suite, nodeid):
        messages.error(request, f"{nodeid} never ran in {suite.name} on this server.")
        return redirect(back)
    source = rerun_source(request.user, source)
    config = (source.config if source is not None else None) or suite.default_config()
    try:
        run = launch.launch(
            config,
            trigger=Run.Trigger.UI,
            user=request.user,
            overrides=rerun_overrides(source, times),
            rerun_of=nodeid,
        )
    except launch.LaunchError as exc:
        messages.error(request, f"Could not rerun {nodeid}: {exc.message}")
        return redirect(back)
    messages.success(request, f"Rerunning {nodeid} {times} times.")
    return redirect(run)


@require_POST
@permissions.quarantine_page
def rebuild(request, name):
    suite = get_object_or_404(Suite, name=name)
    count = summary.rebuild(suite)
    messages.info(request, f"Rebuilt the flakiness summary of {suite.name}: {count} tests.")
    return redirect("flaky_list", name=suite.name)
