"""A finished run's verdict: its status and message from how its engine ended, and the
measured speedup it may claim (README: "Honest figures")."""

from __future__ import annotations

from runner.pool import RunOutcome, exit_meaning
from runs.models import Run


def status_for(outcome: RunOutcome, interrupted: bool) -> tuple[str, str]:
    """The run's status and message from how the engine's process ended."""
    if outcome.reason == "interrupted":  # close_interrupted: no process left to ask
        return Run.Status.INTERRUPTED, outcome.message
    if outcome.reason == "cancelled":
        if interrupted:
            return Run.Status.INTERRUPTED, "The server stopped while this run was going."
        return Run.Status.CANCELLED, "Cancelled."
    if outcome.reason == "timeout":  # one message: the pool's, which names the limit
        message = outcome.message or f"timed out after {outcome.wall_seconds:.0f} s"
        return Run.Status.TIMED_OUT, message[:1].upper() + message[1:] + "."
    if outcome.reason:
        return Run.Status.ERROR, outcome.message or f"The engine failed ({outcome.reason})."
    code = outcome.returncode
    if code == 0:
        return Run.Status.PASSED, ""
    if code == 1:
        return Run.Status.FAILED, ""
    if code == 5:
        return Run.Status.ERROR, "No tests were collected (check the selection)."
    head = f"pytest exited with code {code}{exit_meaning(code)}"
    return Run.Status.ERROR, f"{head}. {outcome.message}".strip()


def measured_speedup(run: Run) -> float | None:
    """Wall of the latest whole 1-worker run of the same suite, selection and code (commit, when
    both name one) / this wall; none for a 1-worker run, the baseline itself (README)."""
    if not run.wall_seconds or run.figures_withheld or run.workers == 1:
        return None
    snap = run.config_snapshot
    candidates = (
        Run.objects.filter(
            suite_id=run.suite_id,
            workers=1,
            status__in=Run.COMPLETE,
            wall_seconds__gt=0,
        )
        .tests_runs()
        .exclude(pk=run.pk)
        .order_by("-created_at")
    )
    for other in candidates[:20]:
        o = other.config_snapshot
        same = all(o.get(k) == snap.get(k) for k in ("keyword", "markers", "repeat", "rerun_of"))
        same_code = not (run.commit and other.commit) or run.commit == other.commit
        if same and same_code and other.tests_total > other.tests_skipped:
            return round(other.wall_seconds / run.wall_seconds, 4)
    return None
