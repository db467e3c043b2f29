"""API of issue #6: a suite's flaky tests, its trend points, a test's history.

Mounted by runs.api (same auth, same `{"detail": ...}` errors).
"""

from __future__ import annotations

from datetime import datetime

from ninja import Field, Router, Schema, Status

from runs.api.common import Detail, find_suite
from runs.flaky import history as flaky_history
from runs.flaky import summary
from runs.flaky.queries import SORTS, flaky_queryset
from runs.pages import trends

router = Router(tags=["flakiness"])


class FlakyOut(Schema):
    nodeid: str
    runs_seen: int
    runs_failed: int
    runs_flaky: int
    flip_count: int
    flip_rate: float
    fail_rate: float | None = Field(description="failing attempts / attempts, last 20 runs")
    first_flaky_at: datetime | None
    last_flip_at: datetime | None
    last_seen_at: datetime | None
    last_outcome: str
    parallel_only: bool
    failed_serial: bool
    quarantined: bool


class FlakyList(Schema):
    suite: str
    count: int
    items: list[FlakyOut]
    pending_runs: int = Field(
        description="finished runs not folded into these figures yet (run_suite's, until a "
        "running serve folds them: within seconds)"
    )


class TrendPoint(Schema):
    run_id: int
    time: datetime
    workers: int
    wall_seconds: float | None
    serial_seconds: float | None
    speedup: float | None
    efficiency: float | None
    balance: float | None
    flakiness_rate: float | None
    pass_rate: float | None
    branch: str
    config: str | None
    status: str
    url: str


class Trends(Schema):
    suite: str
    points: list[TrendPoint]


class HistoryPoint(Schema):
    run_id: int
    time: datetime
    outcome: str
    attempts: int
    failures: int
    duration: float | None
    workers: int
    worker_ids: list[str]
    commit: str
    branch: str
    url: str


class ErrorGroup(Schema):
    message: str
    count: int
    runs: list[int]
    last_run: int


class RateRow(Schema):
    key: str
    attempts: int
    failures: int
    fail_rate: float | None = Field(description="failing attempts / attempts")


class History(Schema):
    suite: str
    nodeid: str
    summary: FlakyOut | None
    by_workers: list[RateRow]
    by_worker_id: list[RateRow]
    points: list[HistoryPoint]
    errors: list[ErrorGroup]


@router.get("/suites/{suite_id}/flaky", response={200: FlakyList, 404: Detail})
def suite_flaky(request, suite_id: str, sort: str = "flip_rate", limit: int = 500):
    suite = find_suite(suite_id)
    qs = flaky_queryset(suite, sort if sort in SORTS else "flip_rate")
    items = [s.to_dict() for s in qs[: max(1, min(limit, 5000))]]
    return {
        "suite": suite.name,
        "count": qs.count(),
        "items": items,
        "pending_runs": summary.pending_runs(suite),
    }


@router.get("/suites/{suite_id}/trends", response={200: Trends, 404: Detail})
def suite_trends(request, suite_id: str, workers: str = "", branch: str = "", config: str = ""):
    suite = find_suite(suite_id)
    params = {"workers": workers, "branch": branch, "config": config}
    return {"suite": suite.name, "points": trends.series(suite, params)}


@router.get("/tests/{suite_id}/{path:nodeid}/history", response={200: History, 404: Detail})
def test_history(request, suite_id: str, nodeid: str):
    suite = find_suite(suite_id)
    data = flaky_history.history(suite, nodeid)
    stat = data["stat"]
    if stat is None and not data["points"]:
        return Status(404, {"detail": f"no test {nodeid!r} in suite {suite.name}"})
    return {
        "suite": suite.name,
        "nodeid": nodeid,
        "summary": stat.to_dict() if stat else None,
        "by_workers": stat.rates(stat.by_workers) if stat else [],
        "by_worker_id": stat.rates(stat.by_worker_id) if stat else [],
        "points": data["points"],
        "errors": [
            {k: g[k] for k in ("message", "count", "runs", "last_run")} for g in data["errors"]
        ],
    }
