"""Quarantine: a failed run whose only failing tests are quarantined passes, with a note."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from runner.metrics import base_nodeid
from runs.models import Run, TestResult, TestStat


def failing_tests(tests: Iterable[Mapping[str, Any]]) -> set[str]:
    """Base node ids with an attempt that fails the run (not rerun attempts)."""
    return {base_nodeid(t["nodeid"]) for t in tests if t.get("outcome") in TestResult.FAILING}


def quarantined_ids(suite_id: int) -> set[str]:
    return set(
        TestStat.objects.filter(suite_id=suite_id, quarantined=True).values_list(
            "nodeid", flat=True
        )
    )


def apply_quarantine(run: Run, tests, status: str, message: str) -> tuple[str, str]:
    """A failed run whose only failing tests are quarantined passes, with a note."""
    if status != Run.Status.FAILED:
        return status, message
    failing = failing_tests(tests)
    if not failing:
        return status, message
    quarantined = failing & quarantined_ids(run.suite_id)
    if not quarantined:
        return status, message
    names = ", ".join(sorted(quarantined)[:5]) + (" …" if len(quarantined) > 5 else "")
    if quarantined == failing:
        note = (
            f"Passed: the only failing tests are quarantined ({len(quarantined)}: {names}); "
            "their failures are shown but do not fail the run."
        )
        return Run.Status.PASSED, f"{message} {note}".strip()
    note = f"{len(quarantined)} of the {len(failing)} failing tests are quarantined ({names})."
    return status, f"{message} {note}".strip()
