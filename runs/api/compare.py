"""GET /api/runs/{a}/compare/{b}: two runs side by side (DESIGN 10; runs.insight does the work).

On the runs router (its resource is a run), in a module of its own to keep runs.py about one
run.
"""

from datetime import datetime

from ninja import Schema
from ninja.errors import HttpError

from runs.api.common import Detail
from runs.api.runs import RunFigures, TestsOut, WorkerOut, router
from runs.insight import queries


# One test in a comparison (no docstrings on schemas: they would be published).
class CompareEntry(Schema):
    nodeid: str
    outcome_a: str | None  # passed, failed, flaky or skipped; null: not in run a
    outcome_b: str | None
    duration_a: float | None  # mean seconds per attempt
    duration_b: float | None
    delta: float | None  # duration_b - duration_a
    ratio: float | None  # duration_b / duration_a


class CompareSide(RunFigures):
    id: int
    url: str
    suite: str
    status: str
    status_label: str
    trigger: str
    config_name: str
    engine: str
    dist: str
    workers: int | None
    commit: str
    branch: str
    created_at: datetime
    tests: TestsOut
    per_worker: list[WorkerOut]


class NoiseFloor(Schema):
    seconds: float
    ratio: float


class CompareOut(Schema):
    a: CompareSide
    b: CompareSide
    noise_floor: NoiseFloor
    caveats: list[str]
    new_failures: list[CompareEntry]
    fixed: list[CompareEntry]
    still_failing: list[CompareEntry]
    new_flaky: list[CompareEntry]
    added: list[CompareEntry]
    removed: list[CompareEntry]
    slower: list[CompareEntry]
    faster: list[CompareEntry]


@router.get("/{run_id}/compare/{other_id}", response={200: CompareOut, 404: Detail})
def compare_runs(request, run_id: int, other_id: int):
    """Run `run_id` (the baseline) against run `other_id`: tests grouped by what changed,
    durations that moved above the noise floor, metrics and workers side by side."""
    comparison = queries.compare_runs(run_id, other_id)
    if comparison is None:
        raise HttpError(404, f"no run {run_id} or no run {other_id}")
    return comparison
