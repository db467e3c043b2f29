"""/api/suites: list and register suites."""

from datetime import datetime

from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError
from ninja.pagination import paginate

from runs import permissions
from runs.api.common import Detail, Pages, StrictIn, Text
from runs.models import MAX_WORKERS, Suite


class SuiteOut(Schema):
    id: int
    name: str
    path: str
    python: str
    pytest_args: list[str]
    env: list[str] = Field(description="names of the suite's environment variables")
    description: str
    created_at: datetime


class SuiteIn(StrictIn):
    name: Text = Field(max_length=100)
    path: Text = Field(max_length=1000)
    python: Text = Field("", max_length=1000)
    pytest_args: list[Text] = []
    env: dict[Text, Text] = {}
    description: Text = ""
    workers: int = Field(4, ge=0, le=MAX_WORKERS)


router = Router(tags=["suites"])


@router.get("", response=list[SuiteOut])
@paginate(Pages)
def list_suites(request):
    return [s.to_dict() for s in Suite.objects.all()]


@router.post("", response={201: SuiteOut, 400: Detail, 403: Detail})
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
