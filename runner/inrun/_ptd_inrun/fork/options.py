"""The fork engine's options, and whether this run uses it (``configure``).

``pytest -p _ptd_inrun.plugin --ptd-workers N [--ptd-dist load|loadscope|loadfile|loadgroup]``
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from ..reporter import FORK_PLUGIN
from ..scheduling.core import MODES
from . import safety
from .controller import ForkEngine

# Imported when pytest loads the plugin (-p), before any conftest or test module: the
# sockets open now are not user code's, so fork workers leave them alone (fork.safety).
safety.record_baseline()

PLUGIN_NAME = FORK_PLUGIN


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ptd", "Parallel Test Dashboard fork engine")
    group.addoption(
        "--ptd-workers",
        dest="ptd_workers",
        default=None,
        metavar="N",
        help="collect once, then run the tests on N forked workers (N or 'auto'; Linux only)",
    )
    group.addoption(
        "--ptd-dist",
        dest="ptd_dist",
        default=None,
        choices=MODES,
        help="grouping for --ptd-workers (default: --dist when it names one of these, else load)",
    )
    group.addoption(
        "--ptd-max-restarts",
        dest="ptd_max_restarts",
        default=None,
        type=int,
        metavar="K",
        help="replace at most K crashed workers (default 4 x N)",
    )


def fork_supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _xdist_plugin(config: pytest.Config) -> Any:
    module = sys.modules.get("xdist.plugin")
    pm = config.pluginmanager
    return module if module is not None and pm.is_registered(module) else None


def configure(config: pytest.Config) -> ForkEngine | None:
    """Set the engine up when ``--ptd-workers`` asks for it; None otherwise."""
    raw = config.getoption("ptd_workers", None)
    if raw in (None, "", "0"):
        return None
    try:
        workers = (os.cpu_count() or 1) if raw == "auto" else int(raw)
    except ValueError:
        raise pytest.UsageError(f"--ptd-workers: expected N or 'auto', got {raw!r}") from None
    if workers < 1:
        return None
    mode = config.getoption("ptd_dist", None)
    if mode is None:
        dist = config.getoption("dist", None)
        mode = dist if dist in MODES else "load"
    if config.getoption("numprocesses", None) or config.getoption("tx", None):
        raise pytest.UsageError("--ptd-workers and -n/--tx are alternatives; use one")
    if config.getoption("usepdb", False):
        raise pytest.UsageError("--pdb is incompatible with --ptd-workers")
    xdist = _xdist_plugin(config)
    if not fork_supported():
        if xdist is not None:  # the same run on xdist: same options, same scheduler
            config.option.numprocesses = workers
            config.option.tx = ["popen"] * workers
            config.option.dist = mode
            config.option.loadgroup = mode == "loadgroup"
            return None
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                "--ptd-workers needs os.fork (Linux) or pytest-xdist; running the tests serially"
            ),
            stacklevel=2,
        )
        return None
    if config.getoption("collectonly", False):
        return None
    if xdist is None:
        from . import compat

        config.pluginmanager.register(compat, "ptd-fork-compat")
    if os.environ.get("PTD_SHARD_URL"):  # a shard of a run over several machines
        from .remote import RemoteForkEngine

        engine: ForkEngine = RemoteForkEngine(config, workers, mode)
    else:
        engine = ForkEngine(config, workers, mode)
    config.pluginmanager.register(engine, PLUGIN_NAME)
    return engine
