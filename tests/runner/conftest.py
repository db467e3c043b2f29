"""Helpers for the runner tests: tiny suites in tmp_path, run for real with our plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runner.command import PLUGIN_MODULE, build_env
from tests.paths import PYCACHE_DIR

# Autoloading every installed plugin (hypothesis, schemathesis, django...) costs ~2 s per
# pytest process; the tiny suites only need these. Loaded by entry-point name, so they are
# registered under their usual names (rerunfailures only handles crashes when "xdist" is).
FAST_PLUGINS = ["-p", "xdist", "-p", "repeat", "-p", "rerunfailures"]
FAST_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


@dataclass
class SuiteRun:
    returncode: int
    output: str
    events: list[dict] = field(default_factory=list)

    def of_type(self, type_: str) -> list[dict]:
        return [e for e in self.events if e["type"] == type_]

    @property
    def tests(self) -> list[dict]:
        return self.of_type("test")

    def by_nodeid(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for t in self.tests:
            out.setdefault(t["nodeid"], []).append(t)
        return out


def _drain(fd: int, chunks: list[bytes]) -> None:
    with os.fdopen(fd, "rb") as fh:
        while chunk := fh.read1(65536):
            chunks.append(chunk)


def write_suite(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def plugin_argv(python: str | None = None) -> list[str]:
    """pytest with the in-run plugin, the fast way (what every runner test starts from)."""
    return [python or sys.executable, "-m", "pytest", "-p", PLUGIN_MODULE, "-p",
            "no:cacheprovider", *FAST_PLUGINS]  # fmt: skip


def run_pytest(
    root: Path,
    *args: str,
    durations: dict | None = None,
    env: dict | None = None,
    timeout: float = 60,
    python: str | None = None,
) -> SuiteRun:
    """Run pytest with the in-run plugin in ``root``; collect every event it emits.

    ``python``: the suite's interpreter (default: this one), as ``Suite.python`` sets it.
    """
    durations_file = None
    if durations is not None:
        durations_file = str(root / "ptd_durations.json")
        Path(durations_file).write_text(json.dumps(durations))
    r, w = os.pipe()
    try:
        run_env = build_env(os.environ, {**FAST_ENV, **(env or {})}, w, durations_file, PYCACHE_DIR)
        argv = [*plugin_argv(python), *args]
        proc = subprocess.Popen(
            argv,
            cwd=root,
            env=run_env,
            pass_fds=(w,),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    finally:
        os.close(w)
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(r, chunks), daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"suite run timed out:\n{out.decode(errors='replace')}")
    reader.join(timeout)
    events = [json.loads(line) for line in b"".join(chunks).decode().splitlines()]
    return SuiteRun(proc.returncode, out.decode(errors="replace"), events)


@pytest.fixture
def suite_python() -> str:
    """The interpreter the ``suite`` fixture runs (test_compat.py: one per supported set)."""
    return sys.executable


@pytest.fixture
def suite(tmp_path, suite_python):
    """``suite(files, *args, ...)`` writes the files into a fresh dir and runs pytest there."""
    counter = iter(range(1000))

    def make(files: dict[str, str], *args: str, **kwargs) -> SuiteRun:
        root = tmp_path / f"suite{next(counter)}"
        root.mkdir()
        write_suite(root, files)
        kwargs.setdefault("python", suite_python)
        return run_pytest(root, *args, **kwargs)

    return make


@pytest.fixture
def fast_pytest_cmd():
    """(argv, env) to run pytest with our plugin, the fast way; the pool adds the fd."""
    return [*plugin_argv(), "-q"], build_env(os.environ, FAST_ENV, None, None, PYCACHE_DIR)
