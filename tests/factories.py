"""Helpers that build runs and results for tests without running pytest."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from django.conf import settings

from runs.models import Run, Suite, TestResult, WorkerStat

DEMO_DIR = Path(settings.PTD_DEMO_SUITE_DIR)
# The keys of `run_suite --json` (README: Running a suite from a terminal), a contract scripts
# rely on.
SUMMARY_KEYS = {
    "run_id", "status", "engine", "workers", "wall_seconds", "serial_seconds", "speedup",
    "speedup_measured", "efficiency", "balance", "flakiness_rate", "metrics_note", "tests",
    "per_worker", "time_breakdown",
}  # fmt: skip
_clock = itertools.count()


def make_run(suite: Suite, *, results=(), status=Run.Status.PASSED, workers=2, **fields) -> Run:
    """A finished run with `results` given as (nodeid, worker, outcome, duration) tuples."""
    run = Run.objects.create(
        suite=suite,
        status=status,
        workers=workers,
        config_snapshot={
            "workers": workers,
            "engine": "xdist",
            "dist": "load",
            "repeat": 1,
            "reruns": 0,
            "keyword": "",
            "markers": "",
        },
        **fields,
    )
    start = 1_700_000_000.0 + next(_clock) * 1000
    busy: dict[str, list[float]] = {}
    rows = []
    for nodeid, worker, outcome, duration in results:
        rows.append(
            TestResult(
                run=run,
                nodeid=nodeid,
                worker=worker,
                outcome=outcome,
                duration=duration,
                start=start,
                stop=start + duration,
                when="call",
            )
        )
        busy.setdefault(worker, []).append(duration)
        start += duration
    TestResult.objects.bulk_create(rows)
    WorkerStat.objects.bulk_create(
        [WorkerStat(run=run, worker=w, tests=len(d), busy_seconds=sum(d)) for w, d in busy.items()]
    )
    return run


def write_suite(directory: Path, files: dict[str, str]) -> Path:
    """A tiny pytest suite on disk: {relative path: source}."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text("[pytest]\n")
    for name, source in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return directory


def test_event(nodeid, outcome="passed", worker="gw0", start=None, duration=0.5, **extra):
    """A runner "test" event (one attempt), as the in-run plugin emits it; by default it
    started a second ago (ingestion refuses times outside the run's)."""
    start = time.time() - 1 if start is None else start
    return {
        "type": "test",
        "nodeid": nodeid,
        "worker": worker,
        "outcome": outcome,
        "attempt": 0,
        "when": "call",
        "start": start,
        "stop": start + duration,
        "duration": duration,
        "longrepr": None if outcome == "passed" else "E   assert 0",
        **extra,
    }


test_event.__test__ = False  # a factory, not a test
