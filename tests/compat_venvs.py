"""Suite interpreters with the pytest / plugin versions PTD supports (README: "Supported versions").

The in-run plugin and the fork engine run in the suite's interpreter, with whatever versions
it pins. ``venv_python(name)`` builds a venv per set of pinned versions (no system
site-packages: only what is pinned, and what pip resolves for it), once, under
``$PTD_COMPAT_CACHE`` (default ``~/.cache/ptd-compat``), keyed by the Python version and the
pins, so a fresh machine builds them and later sessions reuse them. Concurrent test processes
build each one once (a lock file); a venv is used only once its build is complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# The oldest versions declared in pyproject.toml, and today's latest; pytest 8.4 with today's
# xdist is the last pytest whose node ids xdist's loadgroup can still rewrite.
MATRIX: dict[str, dict[str, str]] = {
    "lowest": {
        "pytest": "8.0.2",
        "pytest-xdist": "3.5.0",
        "pytest-rerunfailures": "14.0",
        "pytest-repeat": "0.9.3",
        "pytest-cov": "5.0.0",
        "requests": "2.31.0",  # the ingestion plugin's (pyproject's bound)
    },
    "pytest84": {
        "pytest": "8.4.2",
        "pytest-xdist": "3.8.0",
        "pytest-rerunfailures": "16.7",
        "pytest-repeat": "0.9.4",
        "pytest-cov": "7.1.0",
    },
    "latest": {
        "pytest": "9.2.0",
        "pytest-xdist": "3.8.0",
        "pytest-rerunfailures": "16.7",
        "pytest-repeat": "0.9.4",
        "pytest-cov": "7.1.0",
        "hypothesis": "6.170.17",  # its plugin's summary is what test_idle_plugins is about
        "requests": "2.34.2",  # the ingestion plugin's
    },
}
BUILD_TIMEOUT = 600
DONE = "ptd-compat-complete"


class BuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("PTD_COMPAT_CACHE") or Path.home() / ".cache" / "ptd-compat")


def venv_dir(name: str) -> Path:
    pins = MATRIX[name]
    key = json.dumps([list(sys.version_info[:2]), sorted(pins.items())])
    return cache_dir() / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


_failed: dict[str, BuildError] = {}  # in this process: a build is tried once


def venv_python(name: str) -> str:
    """The interpreter of the ``name`` set of versions, built first if needed."""
    if name in _failed:
        raise _failed[name]
    try:
        return _venv_python(name)
    except BuildError as exc:
        _failed[name] = exc
        raise


def _venv_python(name: str) -> str:
    target = venv_dir(name)
    python = target / "bin" / "python"
    if (target / DONE).exists():
        return str(python)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be building it
        if not (target / DONE).exists():
            _build(target, MATRIX[name])
    return str(python)


def _build(target: Path, pins: dict[str, str]) -> None:
    shutil.rmtree(target, ignore_errors=True)  # a build that was cut short
    steps = [
        [sys.executable, "-m", "venv", str(target)],
        [str(target / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", *(f"{n}=={v}" for n, v in pins.items())],
    ]  # fmt: skip
    for argv in steps:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BuildError(f"{' '.join(argv[:4])}: {exc}") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise BuildError(f"{' '.join(argv[:4])} failed:\n" + "\n".join(tail))
    (target / DONE).write_text(json.dumps(versions(str(target / "bin" / "python"))))


def versions(python: str) -> dict[str, str]:
    """``{distribution: version}`` of what an interpreter has installed."""
    code = (
        "import importlib.metadata as m, json\n"
        "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    with contextlib.suppress(ValueError):
        return json.loads(out.stdout)
    return {}


if __name__ == "__main__":  # build them all now (CI does, before the tests run)
    for name in MATRIX:
        print(name, venv_python(name), flush=True)
