"""The rows a comparison needs, and the run a run is compared with by default.

A comparison costs three queries whatever the runs' size: both runs (with their suites) in one,
then each side's results as plain tuples (no model instances), one query per side; per-worker
figures are summed from those rows rather than read again.
"""

from __future__ import annotations

from django.db.models import Q

from runs.insight.compare import NOISE_RATIO, NOISE_SECONDS, compare_tests, workers
from runs.models import Run, TestResult

ROW = ("nodeid", "worker", "outcome", "duration")
# What must match for "the same selection": else added/removed may be the selection's doing.
SELECTION = ("keyword", "markers", "repeat")
CHOICES = 30  # runs offered by the run page's "compare with…" control


def rows(run_id: int) -> list[tuple]:
    """A run's attempts as ROW tuples, unordered (folding does not care; sorting costs)."""
    return list(TestResult.objects.filter(run_id=run_id).order_by().values_list(*ROW))


def side(run: Run, results: list[tuple]) -> dict:
    """One run's column of the comparison: who it is, its figures, its workers."""
    figures = workers(results)
    return {
        "id": run.id,
        "url": run.get_absolute_url(),
        "suite": run.suite.name,
        "status": run.status,
        "status_label": run.status_label,
        "trigger": run.trigger,
        "config_name": run.config_name,
        "engine": run.engine,
        "dist": run.config_snapshot.get("dist", ""),
        "workers": run.workers or run.config_snapshot.get("workers"),
        "commit": run.commit,
        "branch": run.branch,
        "created_at": run.created_at,
        **run.metrics_dict(),
        "tests": run.tests_dict(),
        "balance": figures["balance"] if figures["balance"] is not None else run.balance,
        "per_worker": figures["per_worker"],
    }


def caveats(a: Run, b: Run) -> list[str]:
    """What the reader must know before trusting the lists (different suites, selections,
    worker counts, the same run twice, a load run, an unfinished side)."""
    notes = []
    if a.suite_id != b.suite_id:
        notes.append(f"The runs are of different suites ({a.suite.name}, {b.suite.name}).")
    sa, sb = a.config_snapshot, b.config_snapshot
    if any(sa.get(k) != sb.get(k) for k in SELECTION):
        notes.append(
            "The selections differ (-k, -m or repeat): added and removed tests may be its doing."
        )
    if (a.workers or 0) != (b.workers or 0):
        notes.append(
            f"Worker counts differ ({a.workers} and {b.workers}): wall times are not like for like."
        )
    if a.id == b.id:
        notes.append(f"Both sides are run #{a.id}: nothing can differ.")
    for run in (a, b):
        if run.is_load:
            notes.append(
                f"Run #{run.id} is a load run: it loops the tests and keeps no per-test results "
                "(compare load runs on the suite's load trend)."
            )
        if not run.is_complete:
            notes.append(
                f"Run #{run.id} is {run.status_label}: its results cover part of the suite at most."
            )
    return notes


def compare_runs(a_id: int, b_id: int) -> dict | None:
    """The comparison of run ``a_id`` (the baseline) with run ``b_id``; None if either run does
    not exist."""
    # Exact look-ups, not pk__in: an id out of the column's range then finds nothing.
    both = Run.objects.select_related("suite").filter(Q(pk=a_id) | Q(pk=b_id))
    found = {run.id: run for run in both}
    if a_id not in found or b_id not in found:
        return None
    a, b = found[a_id], found[b_id]
    rows_a = rows(a.id)
    rows_b = rows_a if b.id == a.id else rows(b.id)
    return {
        "a": side(a, rows_a),
        "b": side(b, rows_b),
        "noise_floor": {"seconds": NOISE_SECONDS, "ratio": NOISE_RATIO},
        "caveats": caveats(a, b),
        **compare_tests(rows_a, rows_b),
    }


# A run's configuration as it ran (its snapshot): the name, and the settings overrides change.
CONFIGURATION = ("name", "engine", "workers", "dist", "repeat", "reruns", "keyword", "markers")


def comparable(run: Run):
    """Runs like this one: whole runs that ended, of the same suite and branch, run with the
    same configuration (the snapshot's name and settings; outside runs: outside runs with the
    same number of workers)."""
    qs = Run.objects.whole().filter(suite_id=run.suite_id, branch=run.branch).exclude(pk=run.pk)
    qs = qs.exclude(status__in=Run.ACTIVE)
    if run.trigger == Run.Trigger.EXTERNAL:
        return qs.filter(trigger=Run.Trigger.EXTERNAL, workers=run.workers)
    snap = run.config_snapshot
    same = {f"config_snapshot__{k}": snap[k] for k in CONFIGURATION if snap.get(k) is not None}
    return qs.exclude(trigger=Run.Trigger.EXTERNAL).filter(**same)


def previous(run: Run) -> Run | None:
    """The run a run is compared with by default: the latest comparable run before it."""
    earlier = Q(created_at__lt=run.created_at) | Q(created_at=run.created_at, id__lt=run.id)
    return comparable(run).filter(earlier).order_by("-created_at", "-id").first()


def choices(run: Run, default: Run | None = None) -> list[Run]:
    """What the "compare with…" control offers: the suite's latest ended runs (any branch or
    configuration), complete ones (passed, failed) first as the comparisons that say most,
    each part newest first; and ``default`` (previous()) wherever it is."""
    qs = Run.objects.filter(suite_id=run.suite_id).exclude(pk=run.pk).order_by("-created_at", "-id")
    runs = list(qs.filter(status__in=Run.COMPLETE)[:CHOICES])
    runs += qs.exclude(status__in=Run.ACTIVE + Run.COMPLETE)[: CHOICES - len(runs)]
    if default is not None and default not in runs:
        runs.append(default)
    return runs
