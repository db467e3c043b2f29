"""What a load run's thresholds make of its status.

A load run with thresholds passes when they all pass and fails when one fails, as k6 does:
failed iterations alone are figures, the thresholds are the gate. A run stopped early by a
failed ``abort`` threshold is ``failed`` (not ``cancelled``), with a message naming it. A run
that did not run to its end for another reason (an error, a user's cancel) keeps its status.
"""

from __future__ import annotations

from runs.models import LoadSummary, Run


def describe(result: dict) -> str:
    value = "no samples" if result["value"] is None else f"{result['value']:g}"
    return f"{result['expr']} (measured {value})"


def load_status(run: Run, status: str, message: str) -> tuple[str, str]:
    if not run.is_load:
        return status, message
    summary = LoadSummary.objects.filter(run=run).first()
    results = summary.thresholds if summary else []
    failed = [r for r in results if not r["passed"]]
    if summary and summary.aborted_by and status == Run.Status.CANCELLED:
        stopped = f"Stopped early: the abort threshold {summary.aborted_by} failed."
        more = "; ".join(describe(r) for r in failed)
        return Run.Status.FAILED, f"{stopped} Failed thresholds: {more}." if more else stopped
    if not results or status not in Run.COMPLETE:
        return status, message
    if failed:
        return Run.Status.FAILED, "Failed thresholds: " + "; ".join(describe(r) for r in failed)
    return Run.Status.PASSED, message
