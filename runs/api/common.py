"""What every resource of the API shares: the one error schema, paging, finding a suite."""

from ninja import Field, Schema
from ninja.errors import HttpError
from ninja.pagination import LimitOffsetPagination

from runs.models import Suite


# Every 4xx answer: {"detail": "what was wrong"} (no docstring: it would change the schema).
class Detail(Schema):
    detail: str


class Pages(LimitOffsetPagination):
    """limit/offset paging with bounds the database can take (no 500 on a huge limit)."""

    class Input(Schema):
        limit: int = Field(100, ge=1, le=1000)
        offset: int = Field(0, ge=0, le=1_000_000_000)


def find_suite(ref: str | int, field: str = "") -> Suite:
    """The suite a client means by id or name, or a 404 (naming ``field`` when given)."""
    suite = Suite.objects.find(ref)
    if suite is None:
        raise HttpError(404, f"{field}: no suite {ref!r}" if field else f"no suite {ref!r}")
    return suite
