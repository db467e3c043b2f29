"""What every resource of the API shares: the one error schema, the text type, paging,
finding a suite."""

from typing import Annotated

from ninja import Field, Schema
from ninja.errors import HttpError
from ninja.pagination import LimitOffsetPagination
from pydantic import AfterValidator, ConfigDict

from runs.models import Suite


# Every 4xx answer: {"detail": "what was wrong"} (no docstring: it would change the schema).
class Detail(Schema):
    detail: str


def _storable(value: str) -> str:
    """Text the database can store: PostgreSQL refuses NUL, and a lone surrogate ("\\ud800",
    valid in JSON) cannot be encoded as UTF-8 by any database driver."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be text that can be encoded as UTF-8 (no lone surrogates)") from None
    return value


# Every text field of an API input (body or query): a 422 {"detail": ...} otherwise.
Text = Annotated[str, AfterValidator(_storable)]


class StrictIn(Schema):
    """A request body a user writes: strict JSON types (`true` is not suite 1 nor a worker
    count) and no unknown field (a misspelt option, "worker": 8, is a 422 naming it, never
    silently a run as configured). Bodies our own plugins and agents send stay lenient, so an
    older dashboard takes a newer client's extra fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


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
