"""Build the argv and environment of a run's pytest process (lists, never shell strings)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from . import inrun

INRUN_PATH = inrun.PATH
PLUGIN_MODULE = "_ptd_inrun.plugin"

# The only variables of the dashboard's own environment a run inherits.
_ENV_ALLOW = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "LANGUAGE",
        "TMPDIR",
        "TEMP",
        "TMP",
        "USER",
        "LOGNAME",
        "TERM",
        "SHELL",
        "TZ",
        "SYSTEMROOT",
        "COMSPEC",
        "PYENV_VERSION",
        "PYENV_ROOT",
        "VIRTUAL_ENV",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
    }
)
# Never handed to user code, even when the suite's own env lists them.
_ENV_DENY = frozenset({"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"})
_PLUGIN_PACKAGES = {
    "xdist": "pytest-xdist",
    "pytest_repeat": "pytest-repeat",
    "pytest_rerunfailures": "pytest-rerunfailures",
}


def resolve_workers(workers: int | str) -> int:
    """``"auto"`` -> the number of CPUs; anything else must be a positive int."""
    if workers == "auto":
        return os.cpu_count() or 1
    n = int(workers)
    if n < 1:
        raise ValueError(f"workers must be >= 1 or 'auto', got {workers!r}")
    return n


def build_argv(
    python: str,
    *,
    workers: int | str,
    dist: str = "load",
    repeat: int = 1,
    reruns: int = 0,
    keyword: str = "",
    markers: str = "",
    junit_path: str | None = None,
    extra_args: list[str] | None = None,
    engine: str = "xdist",
    mode: str = "tests",
    users: int | None = None,
    spawn_rate: float | None = None,
    duration: int | None = None,
    iterations: int | None = None,
    think_time: float | None = None,
) -> list[str]:
    """The run's pytest command line.

    ``mode="load"`` runs the selected tests as ``users`` concurrent users in ``workers`` load
    processes (at most one per user) instead of once each: the load engine of the in-run
    plugin (``_ptd_inrun.load``); ``engine``, ``dist``, ``repeat`` and ``reruns`` do not apply.
    """
    from .options import DIST_MODES, ENGINES, MODES  # not at import: prestart's path

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if dist not in DIST_MODES:
        raise ValueError(f"unknown dist {dist!r}; expected one of {', '.join(DIST_MODES)}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    argv = [
        python,
        "-m",
        "pytest",
        "-p",
        PLUGIN_MODULE,
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfE",
        "--color=no",
    ]
    n = resolve_workers(workers)
    if mode == "load":
        argv += load_args(n, users, spawn_rate, duration, iterations, think_time)
    elif (workers == "auto" or n != 1) and engine == "fork":
        # The fork engine lives in our plugin (loaded above): collect once, fork N workers.
        argv += ["--ptd-workers", str(n), "--ptd-dist", dist]
    elif workers == "auto" or n != 1:
        # "auto" is resolved here so the dashboard and the run agree on N.
        argv += ["-n", str(n), "--dist", dist]
    if repeat and repeat > 1 and mode != "load":
        argv += ["--count", str(int(repeat))]
    if reruns and reruns > 0 and mode != "load":
        argv += ["--reruns", str(int(reruns))]
    if keyword:
        argv += ["-k", keyword]
    if markers:
        argv += ["-m", markers]
    if junit_path:
        argv.append(f"--junitxml={junit_path}")
    argv += list(extra_args or [])
    return argv


def load_args(
    processes: int,
    users: int | None,
    spawn_rate: float | None,
    duration: int | None,
    iterations: int | None,
    think_time: float | None,
) -> list[str]:
    """The load engine's options (``_ptd_inrun.load.options``); values already checked by
    ``runner.options.clean``, turned to numbers again here so argv never carries text."""
    if not users or int(users) < 1:
        raise ValueError("load mode needs users >= 1")
    if not duration and not iterations:
        raise ValueError("load mode needs a duration or a number of iterations")
    users = int(users)
    argv = ["--ptd-load-users", str(users), "--ptd-load-processes", str(min(processes, users))]
    if spawn_rate:
        argv += ["--ptd-load-spawn-rate", repr(float(spawn_rate))]
    if duration:
        argv += ["--ptd-load-duration", str(int(duration))]
    if iterations:
        argv += ["--ptd-load-iterations", str(int(iterations))]
    if think_time:
        argv += ["--ptd-load-think-time", repr(float(think_time))]
    return argv


def build_env(
    base_env: Mapping[str, str],
    suite_env: Mapping[str, str] | None,
    events_fd: int | None,
    durations_file: str | None,
    pycache_dir: str | None = None,
) -> dict[str, str]:
    """A clean environment for user code: an allowlist of ``base_env`` plus the suite's own.

    Bytecode, and the test modules and plugins pytest rewrites for its assert messages, is
    cached in ``pycache_dir`` (``PYTHONPYCACHEPREFIX``) rather than in ``__pycache__``
    folders of the suite's directory; without one, nothing is written (each run then
    rewrites every test module again). A suite's own setting of either variable wins.
    """
    env = {k: v for k, v in base_env.items() if k in _ENV_ALLOW or k.startswith("LC_")}
    for key, value in (suite_env or {}).items():
        if key in _ENV_DENY:
            continue
        env[str(key)] = str(value)
    # Only the pool decides where events go and which history the scheduler reads;
    # PTD_SCHEDULER=xdist in the suite's env is honoured (stock xdist scheduling).
    env.pop("PTD_EVENTS_FD", None)
    env.pop("PTD_DURATIONS_FILE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (INRUN_PATH, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if not {"PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE"} & env.keys():
        if pycache_dir:
            env["PYTHONPYCACHEPREFIX"] = pycache_dir
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
    if events_fd is not None:
        env["PTD_EVENTS_FD"] = str(int(events_fd))
    if durations_file:
        env["PTD_DURATIONS_FILE"] = durations_file
    return env


def required_modules(
    workers: int | str, repeat: int, reruns: int, engine: str = "xdist", mode: str = "tests"
) -> list[str]:
    mods = ["pytest"]
    if mode == "load":  # the load engine is ours: forks, threads, no plugin
        return mods
    if engine != "fork" and (workers == "auto" or int(workers) != 1):
        mods.append("xdist")
    if repeat and repeat > 1:
        mods.append("pytest_repeat")
    if reruns and reruns > 0:
        mods.append("pytest_rerunfailures")
    return mods


ANSWER = "ptd-check"  # how check_plugins' code starts its answer: a Python ran it


def check_plugins(
    python: str,
    workers: int | str,
    repeat: int,
    reruns: int,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    engine: str = "xdist",
    mode: str = "tests",
) -> str | None:
    """Ask the suite's interpreter whether it has what the configuration needs.

    Returns None when it does, else one human-readable line naming what is missing.
    """
    mods = required_modules(workers, repeat, reruns, engine, mode)
    code = (
        "import importlib.util,sys\n"
        f"m=[n for n in {mods!r} if importlib.util.find_spec(n) is None]\n"
        f"print({ANSWER!r}, *m)"
    )
    try:
        proc = subprocess.run(
            [python, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else build_env(os.environ, None, None, None),
        )
    except FileNotFoundError:
        return f"python interpreter not found: {python}"
    except PermissionError:
        return f"python interpreter is not executable: {python}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run python interpreter {python}: {exc}"
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"python interpreter {python} failed: {err}"
    lines = proc.stdout.strip().splitlines()  # a sitecustomize may print before it
    answer = lines[-1].split() if lines else []
    if answer[:1] != [ANSWER]:  # /usr/bin/true answers nothing and exits 0
        return f"{python} is not a Python interpreter (it did not run the check it was given)"
    missing = answer[1:]
    if not missing:
        return None
    names = [_PLUGIN_PACKAGES.get(m, m) for m in missing]
    return (
        f"the suite's python ({python}) lacks {', '.join(names)}, needed by this "
        f"configuration; install it there: {python} -m pip install {' '.join(names)}"
    )
