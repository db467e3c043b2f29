"""Shared hooks. Test settings live in tests/settings.py (see pyproject's pytest options)."""


def pytest_sessionfinish(session, exitstatus):
    from tests.servers import drop_isolated_databases

    drop_isolated_databases()
