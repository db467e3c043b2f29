"""Sweeps: the same selection at several worker counts, one run after another (issue #17).

A sweep is K queued runs of one configuration, identical but for ``workers``; each step's
snapshot names the run it waits for (``sweep.after``), and the dispatcher claims a step only
once that run has finished (launch.claim_next), whatever PTD_MAX_CONCURRENT_RUNS allows: two
steps at once would measure their contention, not their scaling. The Scaling view
(runs.insight) draws the curve from their walls.
"""

from __future__ import annotations

import uuid

from django.db import transaction

from runs.execution import launch
from runs.execution.pytest_input import LaunchError
from runs.models import MAX_WORKERS, Run, RunConfig, Suite
from runs.numbers import whole_number

MAX_STEPS = 8
DEFAULT_WORKERS = (1, 2, 4, 8)


def clean_workers(values) -> list[int]:
    """Worker counts, ascending and distinct (the 1-worker run first: every later step then
    has its measured speedup). Raises LaunchError."""
    if not isinstance(values, list | tuple) or not values:
        raise LaunchError("give a list of worker counts, e.g. [1, 2, 4, 8]", "workers")
    counts = set()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
            raise LaunchError(f"each worker count is a whole number 1..{MAX_WORKERS}", "workers")
        counts.add(value)
    if len(counts) > MAX_STEPS:
        raise LaunchError(f"at most {MAX_STEPS} worker counts in one sweep", "workers")
    return sorted(counts)


def parse_workers(text: str) -> list[int]:
    """'1, 2, 4, 8' (a form field) -> [1, 2, 4, 8]. Raises LaunchError."""
    counts = [whole_number(p) for p in text.replace(",", " ").split()]
    if None in counts:
        raise LaunchError("worker counts are whole numbers separated by commas", "workers")
    return clean_workers(counts)


def start(
    config: RunConfig | Suite,
    workers,
    *,
    user=None,
    trigger: str = Run.Trigger.UI,
    overrides: dict | None = None,
) -> list[Run]:
    """Queue one run per worker count, chained; all or none (one transaction)."""
    counts = clean_workers(workers)
    if getattr(config, "mode", "tests") == "load":  # a Suite has no mode: its default runs tests
        raise LaunchError(
            "a sweep measures how a run of the tests scales: choose a configuration in tests "
            "mode (a load run loops the tests; its figures are load's)",
            "config",
        )
    overrides = {k: v for k, v in (overrides or {}).items() if k != "workers"}
    sweep_id = uuid.uuid4().hex[:12]
    runs: list[Run] = []
    with transaction.atomic():  # the dispatcher is woken on commit: it sees every step chained
        for step, n in enumerate(counts, 1):
            run = launch.launch(
                config, trigger=trigger, user=user, overrides={**overrides, "workers": n}
            )
            run.config_snapshot["sweep"] = {
                "id": sweep_id,
                "step": step,
                "steps": len(counts),
                "after": runs[-1].id if runs else None,
            }
            run.save(update_fields=["config_snapshot"])
            runs.append(run)
    return runs
