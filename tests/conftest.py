"""Shared hooks. Test settings live in tests/settings.py (see pyproject's pytest options)."""

import os


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): two workers per core, ``--maxprocesses`` at most.

    Most of PTD's tests wait on the processes they start (servers, runs, agents, browsers)
    rather than compute: on 2 cores, 4 workers ran the suite in 155-169 s against 196 s for 2.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 * (cores or 1)


def pytest_sessionfinish(session, exitstatus):
    from tests.servers import drop_isolated_databases

    drop_isolated_databases()
