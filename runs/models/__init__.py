"""The database records of the `runs` app (app label `runs`; migrations import names from here).

`suites` holds what to run (Suite, RunConfig), `runs` what ran (Run, WorkerStat, TestResult),
`tokens` who may call the API (ApiToken and the token helpers); the flakiness summary (TestStat)
lives with the rest of flakiness in `runs.flaky.models` and is re-exported here so Django finds it.
"""

from runs.flaky.models import TestStat  # noqa: F401
from runs.models.runs import *  # noqa: F403
from runs.models.runs import (  # noqa: F401  (names other modules and migrations import)
    DIST_MODES,
    ENGINES,
    ENV_NAME,
    MAX_WORKERS,
    PYTEST_USAGE_ERROR,
    REDACTED,
    RESERVED_SUITE_NAMES,
    TOKEN_RE,
    ApiToken,
    ApiTokenQuerySet,
    Run,
    RunConfig,
    RunQuerySet,
    Suite,
    SuiteQuerySet,
    TestResult,
    WorkerStat,
    hash_token,
    redact_tokens,
    validate_suite_name,
)
