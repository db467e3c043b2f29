"""/api/runs: launch, list, read, export (JUnit XML) and cancel runs."""

from datetime import datetime
from typing import Literal

from django.http import HttpResponse
from ninja import Field, Query, Router, Schema, Status
from ninja.errors import HttpError
from ninja.pagination import paginate

from runs import permissions
from runs.api.common import (
    Detail,
    Line,
    Pages,
    StrictIn,
    Text,
    WebLink,
    find_config,
    find_suite,
    get_run,
)
from runs.api.junit import junit_xml
from runs.execution import environment, launch
from runs.load import queries as load_queries
from runs.models import Run, TestResult


class RunIn(StrictIn):
    suite: Text | int
    config: Text | int | None = Field(
        None, description="one of the suite's configurations, by name or id (default: its default)"
    )
    workers: int | Text | None = None
    engine: Text | None = None
    dist: Text | None = None
    repeat: int | None = None
    reruns: int | None = None
    timeout: int | None = None
    keyword: Text | None = Field(None, max_length=500)
    markers: Text | None = Field(None, max_length=500)
    capture_passed: bool | None = None
    mode: Text | None = None
    users: int | None = None
    spawn_rate: float | None = None
    duration: int | None = None
    iterations: int | None = None
    think_time: float | None = None
    thresholds: list[Text] | None = Field(None, description='e.g. ["p95<300ms", "errors<1% abort"]')
    machines: int | Text | None = Field(
        None, description="machines (agents) to spread the run over, or 'all'; default 1"
    )
    queue: Text | None = Field(None, max_length=40, description="the agents' queue")
    commit: Line = Field("", max_length=64)
    branch: Line = Field("", max_length=200)
    ci_url: WebLink = Field("", max_length=1000)


class RunCreated(Schema):
    id: int
    status: str
    url: str


class TestsOut(Schema):
    total: int
    passed: int
    failed: int
    skipped: int
    errors: int
    flaky: int


class WorkerOut(Schema):
    id: str
    tests: int
    busy_seconds: float


class Finding(Schema):
    part: str
    message: str


class LongestTest(Schema):
    nodeid: str
    seconds: float


# runs.insight.breakdown: seconds of the wall (idle: worker-seconds inside the test phase).
class BreakdownOut(Schema):
    startup: float
    collection: float
    tests: float
    idle: float
    teardown: float
    tail: float
    wall: float
    workers: int
    idle_share: float
    longest_test: LongestTest | None = None
    findings: list[Finding] = []
    stopped: str | None = Field(
        None, description="how the run was ended before its tests were over, if it was"
    )


class MachineOut(Schema):
    number: int
    agent: str
    state: str
    workers: int
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    message: str


class RunFigures(Schema):
    """A run's figures (README "Metrics"; DESIGN section 3), one declaration for every answer
    that carries them: null, with ``metrics_note`` saying why, where the run cannot claim them."""

    wall_seconds: float | None
    serial_seconds: float | None
    speedup: float | None
    speedup_measured: float | None
    efficiency: float | None
    balance: float | None
    flakiness_rate: float | None
    metrics_note: str | None  # why speedup and efficiency are null (cancelled, no test ran...)


class RunOut(RunFigures):
    run_id: int
    id: int
    suite: str
    status: str
    engine: str
    workers: int | None
    trigger: str
    commit: str
    branch: str
    ci_url: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    message: str
    warnings: list[str]
    collected: int | None
    time_breakdown: BreakdownOut | None
    tests: TestsOut
    per_worker: list[WorkerOut]
    machines: list[MachineOut] = Field(
        [], description="a run over several machines: each machine's shard and its state"
    )
    url: str


class LoadFigures(Schema):
    iterations: int
    failures: int
    rps: float | None
    min_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class LoadEntryFigures(LoadFigures):
    exceptions: int
    p99_9_ms: float | None


class LoadTestOut(LoadEntryFigures):
    nodeid: str


class LoadEndpointOut(LoadEntryFigures):
    method: str
    path: str
    requests: int


class ThresholdOut(Schema):
    expr: str
    value: float | None
    passed: bool


class LoadOut(LoadFigures):
    users: int | None
    duration_seconds: float
    thresholds: list[ThresholdOut]
    tests: list[LoadTestOut]
    endpoints: list[LoadEndpointOut]
    stop_reason: str
    aborted_by: str


assert tuple(LoadFigures.model_fields) == load_queries.FIGURES, "load figures changed"


class RunDetailOut(RunOut):
    load: LoadOut | None


class LoadSecondOut(Schema):
    second: int
    users: int
    iterations: int
    rps: float
    failures: int
    requests: int
    request_failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None


# TestResult.FIELDS, typed for the schema (checked below). No docstring: it would be published.
class ResultOut(Schema):
    nodeid: str
    worker: str
    outcome: str
    attempt: int
    when: str
    start: float | None
    stop: float | None
    duration: float
    longrepr: str
    group: str  # its xdist_group under --dist loadgroup, else ""
    # What it printed (pytest's captured sections; failing attempts, or all with
    # capture_passed), each cut to PTD_MAX_OUTPUT_PER_TEST bytes; "" when nothing.
    stdout: str
    stderr: str
    log: str


assert tuple(ResultOut.model_fields) == TestResult.FIELDS, "TestResult.FIELDS changed"


class RunFilters(Schema):
    suite: Text | None = Field(None, description="suite name")
    status: Literal[tuple(Run.Status.values)] | None = None  # type: ignore[valid-type]
    trigger: Literal[tuple(Run.Trigger.values)] | None = None  # type: ignore[valid-type]
    branch: Text | None = None
    commit: Text | None = Field(None, description="a commit SHA or its prefix")


class LazyRuns:
    """A queryset paginated lazily: only the requested page becomes dicts."""

    def __init__(self, qs):
        self.qs = qs

    def __len__(self) -> int:
        return self.qs.count()

    def __getitem__(self, page: slice) -> list[dict]:
        return [run.to_dict() for run in self.qs[page]]


router = Router(tags=["runs"])


@router.post("", response={201: RunCreated, 400: Detail, 403: Detail, 404: Detail, 429: Detail})
def create_run(request, payload: RunIn):
    if not permissions.can_launch(request.auth):
        raise HttpError(403, "you may not launch runs")
    suite = find_suite(payload.suite)
    config = find_config(suite, payload.config)
    data = payload.dict()
    overrides = {k: data[k] for k in launch.OVERRIDABLE if data.get(k) is not None}
    try:
        run = launch.launch(
            config,
            trigger=Run.Trigger.API,
            user=request.auth,
            overrides=overrides,
            commit=payload.commit,
            branch=payload.branch,
            ci_url=payload.ci_url,
        )
    except launch.LaunchError as exc:
        field = f"{exc.field}: " if exc.field else ""
        raise HttpError(exc.status, f"{field}{exc.message}") from None
    return Status(201, {"id": run.id, "status": run.status, "url": run.get_absolute_url()})


@router.get("", response=list[RunOut])
@paginate(Pages)
def list_runs(request, filters: Query[RunFilters]):
    qs = Run.objects.select_related("suite").prefetch_related("worker_stats")
    if filters.suite:
        qs = qs.filter(suite__name=filters.suite)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.trigger:
        qs = qs.filter(trigger=filters.trigger)
    if filters.branch:
        qs = qs.filter(branch=filters.branch)
    if filters.commit:
        qs = qs.filter(commit__startswith=filters.commit)
    return LazyRuns(qs)


@router.get("/{run_id}", response={200: RunDetailOut, 404: Detail})
def run_detail(request, run_id: int):
    run = get_run(run_id)
    return {**run.to_dict(), "load": load_queries.load_dict(run)}


class SeriesWindow(Schema):
    since: int = Field(0, ge=0, le=10**8, description="the first second wanted")
    limit: int = Field(3600, ge=1, le=86400, description="the most seconds in one answer")


@router.get("/{run_id}/load/series", response={200: list[LoadSecondOut], 404: Detail})
def run_load_series(request, run_id: int, window: Query[SeriesWindow], response: HttpResponse):
    """A load run's per-second series (all processes merged), ``limit`` seconds from
    ``since``; when more follow, the ``Link`` header (rel="next") and ``X-Next-Since`` say
    where the next page starts. 404 for a run of tests."""
    run = get_run(run_id)
    if not run.is_load:
        raise HttpError(404, f"run {run.id} is not a load run")
    rows = load_queries.series(run, window.since, window.limit + 1)
    if len(rows) > window.limit:
        following = rows.pop()["second"]
        url = request.build_absolute_uri(request.path)
        response["Link"] = f'<{url}?since={following}&limit={window.limit}>; rel="next"'
        response["X-Next-Since"] = str(following)
    return rows


@router.get("/{run_id}/results", response=list[ResultOut])
@paginate(Pages)
def run_results(request, run_id: int, outcome: str | None = None):
    qs = get_run(run_id).results.order_by("id")
    if outcome:
        qs = qs.filter(outcome=outcome)
    return qs.values(*TestResult.FIELDS)


@router.get("/{run_id}/junit.xml", response={200: None, 404: Detail})
def run_junit(request, run_id: int):
    run = get_run(run_id)
    response = HttpResponse(junit_xml(run), content_type="application/xml")
    response["Content-Disposition"] = f'attachment; filename="ptd-run-{run.id}.xml"'
    return response


@router.post("/{run_id}/cancel", response={200: RunCreated, 403: Detail, 404: Detail, 409: Detail})
def cancel_run(request, run_id: int):
    run = get_run(run_id)
    if not permissions.can_cancel(request.auth, run):
        raise HttpError(403, f"run {run.id} is not yours: staff or its launcher may cancel it")
    if not environment.current().cancel(run):
        raise HttpError(409, f"run {run.id} has already finished ({run.status})")
    run.refresh_from_db()
    return {"id": run.id, "status": run.status, "url": run.get_absolute_url()}
