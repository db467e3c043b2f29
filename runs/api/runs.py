"""The HTTP API (DESIGN.md section 5), typed with django-ninja; schema at /api/openapi.json.

Auth: `Authorization: Bearer <token>` or the browser session (with CSRF). Errors are JSON
`{"detail": ...}` with a 4xx status.
"""

import json
from datetime import datetime
from functools import wraps
from typing import Literal

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig
from django.db import DataError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from ninja import Field, NinjaAPI, Query, Router, Schema, Status
from ninja.errors import HttpError
from ninja.openapi.docs import Swagger
from ninja.pagination import LimitOffsetPagination, paginate
from ninja.security import HttpBearer, SessionAuth

from runs import permissions
from runs.api import intake as ingest
from runs.api.flaky import router as flaky_router
from runs.api.junit import junit_xml
from runs.execution import environment
from runs.execution import launch as services
from runs.models import MAX_WORKERS, ApiToken, Run, Suite


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        found = ApiToken.objects.authenticate(token)
        if found is None or not permissions.can_view(found.user):
            return None
        found.touch()
        request.user = found.user
        return found.user


class ActiveSession(SessionAuth):
    def _get_key(self, request: HttpRequest):
        # No session cookie: nothing to check CSRF for; a bad or missing token stays a 401.
        if self.param_name not in request.COOKIES:
            return None
        return super()._get_key(request)

    def authenticate(self, request: HttpRequest, key):
        user = super().authenticate(request, key)
        return user if permissions.can_view(user) else None


def docs_login_required(view):
    """The schema and docs page are for users too: a session or a valid bearer token (CI tools
    such as schemathesis load the schema with the token). Else the login page, or a 401 for
    the JSON schema."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            header = request.headers.get("Authorization", "")
            scheme, _, raw = header.partition(" ")
            bearer = scheme.lower() == "bearer"
            if not bearer or ApiToken.objects.authenticate(raw.strip()) is None:
                if request.path.endswith(".json"):
                    return JsonResponse({"detail": "Unauthorized"}, status=401)
                return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


class LocalSwagger(Swagger):
    """ninja's Swagger page, always from its local template and static files (settings).

    ninja falls back to a CDN unless "ninja" is in INSTALLED_APPS; it is not, because importing
    it there would cost every command (run_suite in CI above all) ~0.3 s of start-up.
    """

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs) -> HttpResponse:
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        context = {
            "swagger_settings": json.dumps(self.settings, indent=1),
            "api": api,
            "add_csrf": True,  # session auth is one of the API's authentications
        }
        return render(request, self.template, context)


# operationIds are part of the published schema (clients name their methods after them): each keeps
# the prefix of the module its resource was first declared in, wherever the module lives now.
OPERATION_PREFIX = {
    "runs.api.runs": "runs_api",
    "runs.api.suites": "runs_api",
    "runs.api.intake": "runs_ingest",
    "runs.api.flaky": "runs_flaky_api",
}


class PtdAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation) -> str:
        view = operation.view_func
        return f"{OPERATION_PREFIX[view.__module__]}_{view.__name__}"


api = PtdAPI(
    title="Parallel Test Dashboard API",
    version="1",
    auth=[BearerToken(), ActiveSession()],
    urls_namespace="api",
    docs=LocalSwagger(),
    docs_decorator=docs_login_required,
)


class Pages(LimitOffsetPagination):
    """limit/offset paging with bounds the database can take (no 500 on a huge limit)."""

    class Input(Schema):
        limit: int = Field(100, ge=1, le=1000)
        offset: int = Field(0, ge=0, le=1_000_000_000)


# Schemas -------------------------------------------------------------------------------------


class SuiteOut(Schema):
    id: int
    name: str
    path: str
    python: str
    pytest_args: list[str]
    env: list[str] = Field(description="names of the suite's environment variables")
    description: str
    created_at: datetime


class SuiteIn(Schema):
    name: str = Field(max_length=100)
    path: str = Field(max_length=1000)
    python: str = Field("", max_length=1000)
    pytest_args: list[str] = []
    env: dict[str, str] = {}
    description: str = ""
    workers: int = Field(4, ge=0, le=MAX_WORKERS)


class RunIn(Schema):
    suite: str | int
    workers: int | str | None = None
    engine: str | None = None
    dist: str | None = None
    repeat: int | None = None
    reruns: int | None = None
    timeout: int | None = None
    keyword: str | None = Field(None, max_length=500)
    markers: str | None = Field(None, max_length=500)
    commit: str = Field("", max_length=64)
    branch: str = Field("", max_length=200)
    ci_url: str = Field("", max_length=1000)


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


class RunOut(Schema):
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
    collected: int | None
    wall_seconds: float | None
    serial_seconds: float | None
    speedup: float | None
    speedup_measured: float | None
    efficiency: float | None
    balance: float | None
    flakiness_rate: float | None
    tests: TestsOut
    per_worker: list[WorkerOut]
    url: str


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


class Detail(Schema):
    detail: str


class RunFilters(Schema):
    suite: str | None = Field(None, description="suite name")
    status: Literal[tuple(Run.Status.values)] | None = None  # type: ignore[valid-type]
    trigger: Literal[tuple(Run.Trigger.values)] | None = None  # type: ignore[valid-type]
    branch: str | None = None
    commit: str | None = Field(None, description="a commit SHA or its prefix")


class LazyRuns:
    """A queryset paginated lazily: only the requested page becomes dicts."""

    def __init__(self, qs):
        self.qs = qs

    def __len__(self) -> int:
        return self.qs.count()

    def __getitem__(self, page: slice) -> list[dict]:
        return [run.to_dict() for run in self.qs[page]]


# Suites ----------------------------------------------------------------------------------------

suites = Router(tags=["suites"])


@suites.get("", response=list[SuiteOut])
@paginate(Pages)
def list_suites(request):
    return [s.to_dict() for s in Suite.objects.all()]


@suites.post("", response={201: SuiteOut, 400: Detail, 403: Detail})
def create_suite(request, payload: SuiteIn):
    if not permissions.can_edit_suite(request.auth):
        raise HttpError(403, "Only staff can create suites: suites execute code.")
    data = payload.dict()
    workers = data.pop("workers")
    if Suite.objects.filter(name=data["name"]).exists():
        raise HttpError(400, f"a suite named {data['name']!r} already exists")
    suite = Suite(**data, created_by=request.auth)
    try:
        suite.full_clean()
    except Exception as exc:  # ValidationError: name the fields
        messages = getattr(exc, "message_dict", {"suite": [str(exc)]})
        raise HttpError(
            400, "; ".join(f"{k}: {' '.join(v)}" for k, v in messages.items())
        ) from None
    suite.save()
    config = suite.default_config()
    config.workers = workers
    config.save()
    return Status(201, suite.to_dict())


# Runs ------------------------------------------------------------------------------------------

runs = Router(tags=["runs"])


def find_suite(ref: str | int) -> Suite:
    suite = Suite.objects.find(ref)
    if suite is None:
        raise HttpError(404, f"no suite {ref!r}")
    return suite


@runs.post("", response={201: RunCreated, 400: Detail, 403: Detail, 404: Detail})
def create_run(request, payload: RunIn):
    if not permissions.can_launch(request.auth):
        raise HttpError(403, "you may not launch runs")
    suite = find_suite(payload.suite)
    data = payload.dict()
    overrides = {k: data[k] for k in services.OVERRIDABLE if data.get(k) is not None}
    try:
        run = services.launch(
            suite,
            trigger=Run.Trigger.API,
            user=request.auth,
            overrides=overrides,
            commit=payload.commit,
            branch=payload.branch,
            ci_url=payload.ci_url,
        )
    except services.LaunchError as exc:
        field = f"{exc.field}: " if exc.field else ""
        raise HttpError(400, f"{field}{exc.message}") from None
    return Status(201, {"id": run.id, "status": run.status, "url": run.get_absolute_url()})


@runs.get("", response=list[RunOut])
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


def get_run(run_id: int) -> Run:
    return get_object_or_404(Run.objects.select_related("suite"), pk=run_id)


@runs.get("/{run_id}", response={200: RunOut, 404: Detail})
def run_detail(request, run_id: int):
    return get_run(run_id).to_dict()


@runs.get("/{run_id}/results", response=list[ResultOut])
@paginate(Pages)
def run_results(request, run_id: int, outcome: str | None = None):
    qs = get_run(run_id).results.order_by("id")
    if outcome:
        qs = qs.filter(outcome=outcome)
    return qs.values(*ResultOut.model_fields)


@runs.get("/{run_id}/junit.xml", response={200: None, 404: Detail})
def run_junit(request, run_id: int):
    run = get_run(run_id)
    response = HttpResponse(junit_xml(run), content_type="application/xml")
    response["Content-Disposition"] = f'attachment; filename="ptd-run-{run.id}.xml"'
    return response


@runs.post("/{run_id}/cancel", response={200: RunCreated, 403: Detail, 404: Detail, 409: Detail})
def cancel_run(request, run_id: int):
    run = get_run(run_id)
    if not permissions.can_cancel(request.auth, run):
        raise HttpError(403, f"run {run.id} is not yours: staff or its launcher may cancel it")
    if not environment.current().cancel(run):
        raise HttpError(409, f"run {run.id} has already finished ({run.status})")
    run.refresh_from_db()
    return {"id": run.id, "status": run.status, "url": run.get_absolute_url()}


api.add_router("/suites", suites)
api.add_router("/runs", runs)
api.add_router("/", flaky_router)  # issue #6: flaky, trends, test history
api.add_router("/ingest", ingest.router)


@api.exception_handler(HttpError)
def http_error(request, exc: HttpError):
    return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)


@api.exception_handler(RequestDataTooBig)
def too_big(request, exc: RequestDataTooBig):
    """Over DATA_UPLOAD_MAX_MEMORY_SIZE: JSON like every API error, not Django's HTML 400."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return api.create_response(
        request, {"detail": f"request body over {limit} bytes: send it in parts"}, status=413
    )


@api.exception_handler(DataError)
def data_error(request, exc: DataError):
    """A value the database cannot hold (e.g. NUL in text on PostgreSQL): the client's fault."""
    return api.create_response(request, {"detail": f"invalid value: {exc}"}, status=400)
