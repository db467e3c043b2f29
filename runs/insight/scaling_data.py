"""The runs a suite's Scaling view is drawn from: complete whole runs of one selection.

"The same selection" is the same -k, -m, repeat, engine and dist (engines and distribution
modes start and spread work differently; mixing them would draw two curves as one). Sweeps'
runs and ordinary runs count alike; outside runs (CI machines) do not: other hardware.
"""

from __future__ import annotations

import os

from django.db.models import Max

from runs.insight import scaling
from runs.models import Run, RunConfig, Suite, TestResult

SELECTION = ("keyword", "markers", "repeat", "engine", "dist")
RECENT_RUNS = 500


def selection_of(config: RunConfig, overrides: dict | None = None) -> dict:
    data = config.to_dict()
    data.update({k: v for k, v in (overrides or {}).items() if v not in (None, "")})
    return {k: data.get(k, "") for k in SELECTION}


def matching_runs(suite: Suite, selection: dict) -> list[dict]:
    """The suite's complete whole runs of the selection made here, newest first."""
    rows = (
        Run.objects.whole()
        .filter(suite=suite, status__in=Run.COMPLETE, wall_seconds__gt=0)
        .exclude(trigger=Run.Trigger.EXTERNAL)
        .order_by("-created_at", "-id")
        .values("id", "workers", "wall_seconds", "config_snapshot", "time_breakdown")
    )[:RECENT_RUNS]
    out = []
    for row in rows:
        snap = row["config_snapshot"]
        if all(snap.get(k, "") == selection[k] for k in SELECTION):
            out.append(
                {
                    "id": row["id"],
                    "workers": row["workers"],
                    "wall_seconds": row["wall_seconds"],
                    "sweep": (snap.get("sweep") or {}).get("id"),
                    "time_breakdown": row["time_breakdown"],
                }
            )
    return out


def longest_test(run_id: int) -> dict | None:
    """The longest attempt of a run: ``nodeid, seconds``."""
    top = TestResult.objects.filter(run_id=run_id).aggregate(m=Max("duration"))["m"]
    if top is None:
        return None
    nodeid = (
        TestResult.objects.filter(run_id=run_id, duration=top).values_list("nodeid", flat=True)
    ).first()
    return {"nodeid": nodeid, "seconds": round(top, 3)}


def suite_scaling(suite: Suite, config: RunConfig | None = None, overrides=None) -> dict:
    """The Scaling view's data for a configuration's selection (the suite's default one)."""
    config = config or suite.default_config()
    selection = selection_of(config, overrides)
    runs = matching_runs(suite, selection)
    pts = scaling.points(runs)
    best = min(pts, key=lambda p: p["wall_seconds"]) if pts else None
    data = scaling.analyse(
        runs, os.cpu_count() or 1, longest_test(best["latest_run"]) if best else None
    )
    data["suite"] = suite.name
    data["config"] = config.name
    data["selection"] = selection
    return data
