"""The HTTP API under /api/: one NinjaAPI (`api`, mounted by dashboard/urls.py), its auth and error
schema, and one module per resource (suites, runs, flaky/trends/history, intake of outside runs,
JUnit export). Schema at /api/openapi.json; tests/data keeps the reviewed copy."""

from runs.api.runs import api  # noqa: F401
