"""The database records of the `runs` app (app label `runs`; migrations import names from here).

`suites` holds what to run (Suite, RunConfig), `runs` what ran (Run, WorkerStat, TestResult),
`tokens` who may call the API (ApiToken and the token helpers); the flakiness summary (TestStat)
lives with the rest of flakiness in `runs.flaky.models` and is re-exported here so Django finds it.
"""

from runs.flaky.models import TestStat
from runs.models.fleet import Agent, RunUnit, Shard
from runs.models.load import LoadEntry, LoadError, LoadSecond, LoadSummary
from runs.models.runs import Run, RunQuerySet, TestResult, WorkerStat
from runs.models.suites import (
    DIST_MODES,
    ENGINES,
    ENV_NAME,
    MAX_WORKERS,
    PYTEST_USAGE_ERROR,
    RESERVED_SUITE_NAMES,
    RunConfig,
    Suite,
    SuiteQuerySet,
    name_validator,
    validate_suite_name,
)
from runs.models.tokens import (
    REDACTED,
    TOKEN_RE,
    ApiToken,
    ApiTokenQuerySet,
    hash_token,
    redact_tokens,
)

__all__ = [
    "DIST_MODES",
    "ENGINES",
    "ENV_NAME",
    "MAX_WORKERS",
    "PYTEST_USAGE_ERROR",
    "REDACTED",
    "RESERVED_SUITE_NAMES",
    "LoadEntry",
    "LoadError",
    "LoadSecond",
    "LoadSummary",
    "TOKEN_RE",
    "Agent",
    "ApiToken",
    "ApiTokenQuerySet",
    "Run",
    "RunConfig",
    "RunQuerySet",
    "RunUnit",
    "Shard",
    "Suite",
    "SuiteQuerySet",
    "TestResult",
    "TestStat",
    "WorkerStat",
    "hash_token",
    "name_validator",
    "redact_tokens",
    "validate_suite_name",
]
