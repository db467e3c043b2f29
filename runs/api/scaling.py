"""API of issue #17's scaling: start a sweep of a suite, read its speedup curve.

Mounted by runs.api (same auth, same `{"detail": ...}` errors).
"""

from __future__ import annotations

from ninja import Field, Query, Router, Schema, Status
from ninja.errors import HttpError

from runs import permissions
from runs.api.common import Detail, StrictIn, Text, find_config, find_suite
from runs.api.runs import BreakdownOut
from runs.execution import launch, sweep
from runs.insight.scaling_data import suite_scaling

router = Router(tags=["scaling"])


class SweepIn(StrictIn):
    workers: list[int] = Field(list(sweep.DEFAULT_WORKERS), description="worker counts")
    config: Text | int | None = Field(None, description="configuration name or id")
    engine: Text | None = None
    dist: Text | None = None
    repeat: int | None = None
    keyword: Text | None = Field(None, max_length=500)
    markers: Text | None = Field(None, max_length=500)


class SweepRun(Schema):
    id: int
    workers: int
    url: str


class SweepOut(Schema):
    sweep: str
    runs: list[SweepRun]
    scaling_url: str


class ScalingFilters(Schema):
    config: Text | None = Field(None, description="configuration name (default: the suite's)")
    keyword: Text | None = None
    markers: Text | None = None
    engine: Text | None = None
    dist: Text | None = None


class ScalingPoint(Schema):
    workers: int
    wall_seconds: float
    speedup: float | None
    efficiency: float | None
    runs: list[int]
    from_sweep: bool
    latest_run: int
    time_breakdown: BreakdownOut | None


class FitPoint(Schema):
    workers: int
    speedup: float


class Explanation(Schema):
    kind: str
    message: str


class ScalingOut(Schema):
    suite: str
    config: str
    selection: dict
    points: list[ScalingPoint]
    serial_fraction: float | None
    recommended_workers: int | None
    reason: str
    rule: str
    cores: int
    fit: list[FitPoint]
    explanations: list[Explanation]


@router.post(
    "/suites/{suite_id}/sweep",
    response={201: SweepOut, 400: Detail, 403: Detail, 404: Detail, 429: Detail},
)
def start_sweep(request, suite_id: str, payload: SweepIn):
    """Queue one run per worker count, run one after another (never two at once)."""
    if not permissions.can_sweep(request.auth):
        raise HttpError(403, "you may not launch runs")
    suite = find_suite(suite_id)
    config = find_config(suite, payload.config)
    data = payload.dict()
    overrides = {k: data[k] for k in ("engine", "dist", "repeat", "keyword", "markers")}
    try:
        runs = sweep.start(
            config, payload.workers, user=request.auth, trigger="api", overrides=overrides
        )
    except launch.LaunchError as exc:
        field = f"{exc.field}: " if exc.field else ""
        raise HttpError(exc.status, f"{field}{exc.message}") from None
    return Status(
        201,
        {
            "sweep": runs[0].sweep["id"],
            "runs": [{"id": r.id, "workers": r.workers, "url": r.get_absolute_url()} for r in runs],
            "scaling_url": f"/suites/{suite.name}/scaling/?config={config.name}",
        },
    )


@router.get("/suites/{suite_id}/scaling", response={200: ScalingOut, 404: Detail})
def suite_scaling_view(request, suite_id: str, filters: Query[ScalingFilters]):
    """The speedup curve of a selection's complete runs, the Amdahl fit, a worker count."""
    suite = find_suite(suite_id)
    config = find_config(suite, filters.config)
    overrides = filters.dict(exclude={"config"})
    return suite_scaling(suite, config, overrides)
