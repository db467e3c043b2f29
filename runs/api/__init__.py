"""The HTTP API under /api/, typed with django-ninja; schema at /api/openapi.json.

One NinjaAPI (`api`, mounted by dashboard/urls.py) with its auth (`auth`), its one error schema
(`common.Detail`: every 4xx is JSON ``{"detail": ...}``) and one module per resource: `suites`,
`runs` (with the `junit` export, and `compare`: two runs side by side), `flaky` (flakiness,
trends, a test's history) and `intake` (runs made on CI machines, sent by the ingestion plugin).
tests/data keeps the reviewed schema.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DataError
from ninja import NinjaAPI
from ninja.errors import HttpError

from runs.api import (  # noqa: F401 - compare: on runs' router
    compare,
    flaky,
    intake,
    runs,
    scaling,
    shards,
    suites,
)
from runs.api.auth import ActiveSession, BearerToken, LocalSwagger, docs_login_required

# operationIds are part of the published schema (clients name their methods after them): each keeps
# the prefix of the module its resource was first declared in, wherever the module lives now.
OPERATION_PREFIX = {
    "runs.api.runs": "runs_api",
    "runs.api.compare": "runs_api",
    "runs.api.suites": "runs_api",
    "runs.api.intake": "runs_ingest",
    "runs.api.flaky": "runs_flaky_api",
    "runs.api.scaling": "runs_scaling_api",
    "runs.api.shards": "runs_agents_api",
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


api.add_router("/suites", suites.router)
api.add_router("/runs", runs.router)
api.add_router("/", flaky.router)  # issue #6: flaky, trends, test history
api.add_router("/ingest", intake.router)
api.add_router("/", scaling.router)  # issue #17: sweeps and the speedup curve
api.add_router("/", shards.router)  # issue #15: agents and their shards


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
