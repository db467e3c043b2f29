"""The load engine's options, and whether this run is a load (``configure``).

``pytest -p _ptd_inrun.plugin --ptd-load-users N [--ptd-load-processes P]
[--ptd-load-spawn-rate R] [--ptd-load-duration S] [--ptd-load-iterations K]
[--ptd-load-think-time T] [--ptd-load-stop-grace G]`` (``runner.command.load_args`` writes them).
"""

from __future__ import annotations

import argparse
import os
import sys

import pytest

from .controller import LoadEngine
from .process import Settings

PLUGIN_NAME = "ptd-load"
DEFAULT_STOP_GRACE = 10.0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _not_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ptd-load", "Parallel Test Dashboard load mode")
    add = group.addoption
    add("--ptd-load-users", dest="ptd_load_users", type=int, default=None, metavar="N",
        help="load mode: run the selected tests as N concurrent users")  # fmt: skip
    add("--ptd-load-processes", dest="ptd_load_processes", type=int, default=None, metavar="P",
        help="load processes forked after collection (default: 1 per CPU, at most N)")  # fmt: skip
    add("--ptd-load-spawn-rate", dest="ptd_load_spawn_rate", type=_positive, default=None,
        metavar="R", help="users started per second (default: all at once)")  # fmt: skip
    add("--ptd-load-duration", dest="ptd_load_duration", type=_positive, default=None,
        metavar="S", help="stop starting iterations S seconds after the load started")  # fmt: skip
    add("--ptd-load-iterations", dest="ptd_load_iterations", type=int, default=None,
        metavar="K", help="passes over the selected tests per user")  # fmt: skip
    add("--ptd-load-think-time", dest="ptd_load_think_time", type=_not_negative, default=0.0,
        metavar="T", help="seconds a user waits after each test")  # fmt: skip
    add("--ptd-load-stop-grace", dest="ptd_load_stop_grace", type=_not_negative,
        default=DEFAULT_STOP_GRACE, metavar="G",
        help="on SIGTERM, seconds running iterations get to finish")  # fmt: skip


def configure(config: pytest.Config) -> LoadEngine | None:
    """Set the engine up when ``--ptd-load-users`` asks for it; None otherwise."""
    users = config.getoption("ptd_load_users", None)
    if users is None:
        return None
    if users < 1:
        raise pytest.UsageError(f"--ptd-load-users must be >= 1, got {users}")
    duration = config.getoption("ptd_load_duration", None)
    iterations = config.getoption("ptd_load_iterations", None)
    if iterations is not None and iterations < 1:
        raise pytest.UsageError(f"--ptd-load-iterations must be >= 1, got {iterations}")
    if duration is None and iterations is None:
        raise pytest.UsageError("load mode needs --ptd-load-duration or --ptd-load-iterations")
    if not (sys.platform.startswith("linux") and hasattr(os, "fork")):
        raise pytest.UsageError("load mode needs os.fork (Linux)")
    for other in ("ptd_workers", "numprocesses"):
        if config.getoption(other, None):
            raise pytest.UsageError("load mode runs its own processes: drop -n / --ptd-workers")
    processes = config.getoption("ptd_load_processes", None) or os.cpu_count() or 1
    if processes < 1:
        raise pytest.UsageError(f"--ptd-load-processes must be >= 1, got {processes}")
    if config.getoption("collectonly", False):
        return None
    settings = Settings(
        users=users,
        processes=min(processes, users),
        spawn_rate=config.getoption("ptd_load_spawn_rate", None),
        duration=duration,
        iterations=iterations,
        think_time=config.getoption("ptd_load_think_time", 0.0) or 0.0,
        stop_grace=config.getoption("ptd_load_stop_grace", DEFAULT_STOP_GRACE),
    )
    engine = LoadEngine(config, settings)
    config.pluginmanager.register(engine, PLUGIN_NAME)
    return engine
