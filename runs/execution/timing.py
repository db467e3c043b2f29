"""A run's time breakdown (runs.insight.breakdown) from what the sink stores.

The moments only events carry (session start, collection finish) are kept on the run while it
goes, in ``Run.time_breakdown["marks"]``; when it finishes the breakdown replaces them (and
keeps them under the same key).
"""

from __future__ import annotations

from runs.insight import breakdown
from runs.models import Run

# Ended by PTD before the tests were over (an error run ended by itself: pytest's own exit).
STOPPED = (Run.Status.CANCELLED, Run.Status.TIMED_OUT, Run.Status.INTERRUPTED)


def add_marks(run_id: int, marks: dict) -> None:
    """Keep the moments a batch carried (session start, collection finish) until the run
    finishes: its first value of each wins. Rare (two events a run): read, merge, write."""
    marks = {k: float(v) for k, v in marks.items() if isinstance(v, int | float)}
    if not marks:
        return
    row = Run.objects.select_for_update().values_list("time_breakdown", flat=True).get(pk=run_id)
    stored = (row or {}).get("marks", {})
    Run.objects.filter(pk=run_id).update(time_breakdown={"marks": {**marks, **stored}})


def time_breakdown(run: Run, tests: list[dict]) -> dict | None:
    """runs.insight.breakdown of a finishing run, from its marks and executed results."""
    marks = (run.time_breakdown or {}).get("marks", {})
    launch = run.started_at.timestamp() if run.started_at else None
    result = breakdown.compute(
        launch=launch,
        wall=run.wall_seconds,
        marks=marks,
        tests=tests,
        workers=run.workers or 1,
        dist=run.config_snapshot.get("dist", "load"),
        stopped=run.get_status_display().lower() if run.status in STOPPED else None,
    )
    if result is not None:
        result["marks"] = marks
    return result
