"""A test's history in a suite: its attempts run by run, and its failures grouped by error."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Q

from runner.metrics import FAILING, base_nodeid
from runs.flaky.errors import error_key, error_line
from runs.flaky.summary import aggregate, run_outcome
from runs.models import Run, Suite, TestResult, TestStat


def _results_of(suite: Suite, nodeid: str):
    """The suite's results whose node id may be `nodeid`'s (check base_nodeid on each)."""
    return TestResult.objects.filter(run__suite=suite).filter(
        Q(nodeid=nodeid) | Q(nodeid__startswith=nodeid + "[") | Q(nodeid__startswith=nodeid + "@")
    )


def ran_here(suite: Suite, nodeid: str) -> bool:
    """Whether the server itself ran this test for the suite (in a run it made, not one
    ingested from outside, whose node ids are whatever its uploader sent)."""
    rows = (
        _results_of(suite, nodeid)
        .exclude(run__trigger=Run.Trigger.EXTERNAL)
        .values_list("nodeid", flat=True)
    )
    return any(base_nodeid(stored) == nodeid for stored in rows.iterator())


def attempts_of(suite: Suite, nodeid: str, run_ids: Iterable[int] | None = None):
    """Every stored attempt of a test (all its repeats) in a suite, oldest run first."""
    qs = _results_of(suite, nodeid)
    if run_ids is not None:
        qs = qs.filter(run_id__in=list(run_ids))
    rows = qs.order_by("run_id", "start", "id").values(
        "run_id", "nodeid", "worker", "outcome", "duration", "longrepr"
    )
    return [r for r in rows if base_nodeid(r["nodeid"]) == nodeid]


def history(suite: Suite, nodeid: str, limit: int = TestStat.RECENT_RUNS) -> dict:
    """A test's recent runs (outcome, durations, workers) and its grouped error messages."""
    stat = TestStat.objects.filter(suite=suite, nodeid=nodeid).first()
    if stat is not None and stat.recent:
        run_ids = [r[0] for r in stat.recent][-limit:]
    else:
        run_ids = list(
            Run.objects.filter(suite=suite, status__in=Run.COMPLETE)
            .order_by("-created_at")
            .values_list("id", flat=True)[:limit]
        )
    rows = attempts_of(suite, nodeid, run_ids)
    runs = {
        r["id"]: r
        for r in Run.objects.filter(id__in={row["run_id"] for row in rows}).values(
            "id", "created_at", "workers", "commit", "branch", "status"
        )
    }
    by_run: dict[int, list] = defaultdict(list)
    for row in rows:
        by_run[row["run_id"]].append(row)
    points = []
    errors: dict[str, dict] = {}
    for run_id in sorted(by_run, key=lambda i: (runs[i]["created_at"], i)):
        attempts = by_run[run_id]
        entry = aggregate(attempts)[nodeid]
        run = runs[run_id]
        points.append(
            {
                "run_id": run_id,
                "time": run["created_at"].isoformat(),
                "outcome": run_outcome(entry),
                "attempts": entry["attempts"],
                "failures": entry["failures"],
                "duration": round(entry["duration"] / entry["attempts"], 6)
                if entry["attempts"]
                else None,
                "workers": run["workers"],
                "worker_ids": sorted(entry["workers"]),
                "commit": run["commit"],
                "branch": run["branch"],
                "url": f"/runs/{run_id}/",
            }
        )
        for a in attempts:
            if a["outcome"] in FAILING:
                key = error_key(a["longrepr"])
                group = errors.setdefault(
                    key,
                    {
                        "message": error_line(a["longrepr"]),
                        "count": 0,
                        "runs": [],
                        "example": a["longrepr"],
                    },
                )
                group["count"] += 1
                if run_id not in group["runs"]:
                    group["runs"].append(run_id)
                group["last_run"] = run_id
                group["example"] = a["longrepr"] or group["example"]
    return {
        "stat": stat,
        "points": points,
        "errors": sorted(errors.values(), key=lambda g: (-g["count"], g["message"])),
    }


def last_run_of(suite: Suite, nodeid: str) -> Run | None:
    stat = TestStat.objects.filter(suite=suite, nodeid=nodeid).first()
    if stat is not None and stat.last_run_id:
        return Run.objects.filter(pk=stat.last_run_id).first()
    return None


def latest_output(suite: Suite, nodeid: str) -> TestResult | None:
    """The test's latest attempt that kept what it printed (a failing one, or any under
    capture_passed), or None."""
    printed = ~Q(stdout="") | ~Q(stderr="") | ~Q(log="")
    rows = _results_of(suite, nodeid).filter(printed).order_by("-run_id", "-id")
    return next((r for r in rows[:50] if base_nodeid(r.nodeid) == nodeid), None)
