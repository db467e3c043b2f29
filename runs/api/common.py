"""What every resource of the API shares: the one error schema, the text types, paging,
finding a suite."""

from typing import Annotated

from _ptd_inrun.output import printable
from ninja import Field, Schema
from ninja.errors import HttpError
from ninja.pagination import LimitOffsetPagination
from pydantic import AfterValidator, ConfigDict

from runs.execution.pytest_input import one_line_problem
from runs.models import Run, RunConfig, Suite, redact_tokens


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


def _one_line(value: str) -> str:
    """A name shown on one line (pytest_input.one_line_problem). A token pasted into it by
    mistake is redacted: it is never stored."""
    problem = one_line_problem(value)
    if problem:
        raise ValueError(problem)
    return redact_tokens(value)


def _web_link(value: str) -> str:
    if value and not value.lower().startswith(("https://", "http://")):
        raise ValueError("must be an http(s):// address")
    return value


# A run's metadata: its commit, branch and host (Line), the CI job's address (WebLink).
Line = Annotated[Text, AfterValidator(_one_line)]
WebLink = Annotated[Line, AfterValidator(_web_link)]

# Lines of text shown as they are (output.printable: no terminal sequence, no other control
# character but tab and newline). Cleaned, not refused: a message comes with a run's end,
# which must not be lost for a stray colour code in pytest's summary.
Message = Annotated[Text, AfterValidator(printable)]


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


def find_config(suite: Suite, ref: str | int | None) -> RunConfig:
    """The suite's configuration a client names (Suite.find_config), or a 404 naming it."""
    config = suite.find_config(ref)
    if config is None:
        raise HttpError(404, f"config: suite {suite.name} has no configuration {ref!r}")
    return config


def get_run(run_id: int) -> Run:
    """The run, or a 404 naming it (ptd status shows the detail: 'Not Found' said nothing)."""
    run = None
    if 0 < run_id < 2**63:  # past the database's integers: no such run
        run = Run.objects.select_related("suite").filter(pk=run_id).first()
    if run is None:
        raise HttpError(404, f"no run {run_id}")
    return run
