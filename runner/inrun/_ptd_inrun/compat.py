"""What PTD uses of pytest's and plugins' private parts, checked once per run, out loud.

The in-run plugin and the fork engine run in the *suite's* interpreter, with whatever pytest,
xdist, rerunfailures and pytest-cov it pins (README: supported versions). A few things they
need have no public API. Each is used with a fallback, and ``gaps`` lists those this run's
versions lack, so the controller can say so (``reporter.warn``: the run's log and page)
before the fork engine relies on them, instead of degrading silently.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest


def _has(obj: Any, *names: str) -> bool:
    return all(hasattr(obj, name) for name in names)


def _importable(module: str, name: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


def terminal_gaps(config: pytest.Config) -> list[str]:
    """What silencing a worker's terminal (terminal.py, both engines) uses."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return []
    if _importable("_pytest._io", "TerminalWriter") and _has(reporter, "_tw"):
        return []
    return [
        "pytest's TerminalWriter / TerminalReporter._tw are missing: workers print, and run "
        "terminal summaries, that no one sees"
    ]


def fork_gaps(config: pytest.Config, session: pytest.Session) -> list[str]:
    """What the fork engine's workers use; each entry says what goes wrong without it."""
    gaps = []
    pm = config.pluginmanager
    if pm.get_plugin("tmpdir") is not None:
        factory = getattr(config, "_tmp_path_factory", None)
        if not _has(factory, "_given_basetemp", "_basetemp", "getbasetemp"):
            gaps.append(
                "config._tmp_path_factory (_given_basetemp, _basetemp) is missing: "
                "workers share one tmp_path base directory instead of popen-gwN each"
            )
    capman = pm.get_plugin("capturemanager")
    if capman is not None and not _has(capman, "_global_capturing"):
        gaps.append(
            "CaptureManager._global_capturing is missing: workers share the controller's "
            "capture files, so captured output may mix between tests"
        )
    if not _has(getattr(session, "_setupstate", None), "teardown_exact"):
        gaps.append(
            "Session._setupstate.teardown_exact is missing: after a stop (-x, --maxfail) a "
            "worker's session and module fixtures are not torn down"
        )
    if getattr(config.option, "xmlpath", None) and not _importable("_pytest.junitxml", "xml_key"):
        gaps.append("_pytest.junitxml.xml_key is missing: workers keep a junitxml plugin copy")
    gaps += _rerunfailures_gaps(config)
    gaps += _cov_gaps(config)
    return gaps


def _rerunfailures_gaps(config: pytest.Config) -> list[str]:
    module = sys.modules.get("pytest_rerunfailures")
    server = getattr(module, "ServerStatusDB", None)
    db = getattr(config, "failures_db", None)
    if server is None or not isinstance(db, server):
        return []  # not installed, or no xdist: crashes are not rerun anyway
    if _has(db, "run_connection", "sock_port", "sock") and _has(module, "ClientStatusDB"):
        return []
    return [
        f"pytest-rerunfailures {_version('pytest-rerunfailures')} lacks the status db parts "
        "(run_connection, sock_port, ClientStatusDB) the fork engine uses: a test that crashes "
        "its worker is not rerun"
    ]


def _cov_gaps(config: pytest.Config) -> list[str]:
    plugin = config.pluginmanager.get_plugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    engine = sys.modules.get("pytest_cov.engine")
    if controller is None or engine is None or not isinstance(controller, engine.Central):
        return []
    if _has(controller, "cov", "topdir"):
        return []
    return [
        f"pytest-cov {_version('pytest-cov')} has no Central.cov / topdir: what the fork "
        "workers measure is not saved"
    ]


def xdist_gaps() -> list[str]:
    """What PTD's xdist scheduler imports from xdist's internals (scheduling.xdist)."""
    missing = []
    if not _importable("xdist.report", "report_collection_diff"):
        missing.append("report_collection_diff")
    if not (
        _importable("xdist.workermanage", "parse_tx_spec_config")
        or _importable("xdist.workermanage", "parse_spec_config")  # its name before 3.6
    ):
        missing.append("parse_tx_spec_config")
    if not missing:
        return []
    return [
        f"pytest-xdist {_version('pytest-xdist')} lacks {', '.join(missing)}: PTD's "
        "scheduler counts workers from --tx and reports different collections briefly"
    ]


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(unknown version)"
