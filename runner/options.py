"""The launch options a run may override (the API's body, the launch form, ``run_suite``'s and
``ptd run``'s flags): each declared once here, with its type, bounds and help.

Plain Python. ``clean`` checks a value against its declaration and raises ValueError with a
one-line message; ``keyword`` and ``markers`` come back unchanged, their pytest syntax being
for the caller to check, and so do ``thresholds`` (a list of short strings such as
``"p95<300ms"``), whose grammar the dashboard owns. ``add_arguments`` puts the options on an
argparse parser.

``mode`` "load" runs the selected tests as ``users`` concurrent users (README "Load mode"):
``spawn_rate``, ``duration``, ``iterations``, ``think_time`` and ``thresholds`` shape that
load (``LOAD_ONLY``): a configuration may keep them while it runs in "tests" mode, but a
launch that asks for one of them in a "tests" run is refused. In a load run ``workers`` is
the number of load processes.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from typing import Any

from _ptd_inrun.scheduling.core import MODES as DIST_MODES

ENGINES = ("fork", "xdist")
MAX_WORKERS = 64
AUTO_WORKERS = 0  # how "auto" (one worker per CPU core, like -n auto) is stored
MODES = ("tests", "load")  # a run's mode: each test once, or as a load (issue #16)
MAX_USERS = 1000
MAX_THRESHOLDS = 20
MAX_THRESHOLD_CHARS = 200
MAX_MACHINES = 64
ALL_MACHINES = 0  # how "all" (every idle agent of the queue) is stored
QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


@dataclass(frozen=True)
class Option:
    name: str
    # "workers", "machines", "int", "number", "choice", "queue", "expression", "flag" or "list"
    kind: str
    help: str
    flags: tuple[str, ...]
    low: float = 0
    high: float = 0
    choices: tuple[str, ...] = ()
    load_only: bool = False  # shapes a load: asking for it in a "tests" run is a mistake


OPTIONS: tuple[Option, ...] = (
    Option("workers", "workers", "number of workers, or 'auto'", ("--workers",), 1, MAX_WORKERS),
    Option(
        "engine",
        "choice",
        "fork (collect once) or xdist",
        ("--engine",),
        choices=ENGINES,
    ),
    Option("dist", "choice", "how tests are grouped on workers", ("--dist",), choices=DIST_MODES),
    Option("repeat", "int", "run each test N times", ("--repeat",), 1, 1000),
    Option("reruns", "int", "rerun a failing test up to N times", ("--reruns",), 0, 20),
    Option("timeout", "int", "the run's timeout, seconds", ("--timeout",), 1, 7 * 24 * 3600),
    Option("keyword", "expression", "pytest -k expression", ("-k", "--keyword")),
    Option("markers", "expression", "pytest -m expression", ("-m", "--markers")),
    Option(
        "capture_passed",
        "flag",
        "keep what passing tests print too, like -rP (failing tests' output is always kept)",
        ("--capture-passed",),
    ),
    Option("mode", "choice", "run the tests once (tests) or as a load", ("--mode",), choices=MODES),
    Option("users", "int", "load: concurrent users", ("--users",), 1, MAX_USERS, load_only=True),
    Option(
        "spawn_rate",
        "number",
        "load: users started per second",
        ("--spawn-rate",),
        0.01,
        1e4,
        load_only=True,
    ),
    Option(
        "duration",
        "int",
        "load: seconds to hold the load",
        ("--duration",),
        1,
        7 * 24 * 3600,
        load_only=True,
    ),
    Option(
        "iterations",
        "int",
        "load: passes over the tests per user",
        ("--iterations",),
        1,
        10**7,
        load_only=True,
    ),
    Option(
        "think_time",
        "number",
        "load: seconds a user waits between tests",
        ("--think-time",),
        0,
        3600,
        load_only=True,
    ),
    Option(
        "thresholds",
        "list",
        "load: a pass/fail criterion such as p95<300ms (repeatable)",
        ("--threshold",),
        load_only=True,
    ),
    Option(
        "machines",
        "machines",
        "machines (agents) the run is spread over, or 'all' idle agents of the queue",
        ("--machines",),
        1,
        MAX_MACHINES,
    ),
    Option("queue", "queue", "the agents' queue a run over machines draws from", ("--queue",)),
)
BY_NAME = {option.name: option for option in OPTIONS}
NAMES = tuple(BY_NAME)
LOAD_ONLY = tuple(option.name for option in OPTIONS if option.load_only)


def _whole(name: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if isinstance(value, float) and value != number:
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {number}")
    return number


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not low <= number <= high:  # NaN fails both comparisons
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value}")
    return number


def _strings(name: str, value: Any) -> list[str]:
    """A short list of short one-line strings (their grammar is the dashboard's to check)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    items = [v.strip() for v in value if v.strip()]
    if len(items) > MAX_THRESHOLDS:
        raise ValueError(f"{name}: at most {MAX_THRESHOLDS}, got {len(items)}")
    for item in items:
        if len(item) > MAX_THRESHOLD_CHARS or "\n" in item or "\r" in item:
            raise ValueError(f"{name}: each one line of at most {MAX_THRESHOLD_CHARS} characters")
    return items


def as_given(name: str, value: Any) -> Any:
    """A stored value as a user gives it: the 0 stored for workers and machines is "auto" and
    "all" (which ``clean`` takes back to 0); anything else is as it is."""
    if name == "workers" and value == AUTO_WORKERS:
        return "auto"
    if name == "machines" and value == ALL_MACHINES:
        return "all"
    return value


def clean(name: str, value: Any) -> Any:
    """The value to store for option ``name``; ValueError (one line) when it is not valid."""
    option = BY_NAME.get(name)
    if option is None:
        raise ValueError(f"unknown option {name!r}")
    if option.kind == "workers":
        if str(value).strip().lower() == "auto":
            return AUTO_WORKERS
        return _whole(name, value, int(option.low), int(option.high))
    if option.kind == "machines":
        if str(value).strip().lower() == "all":
            return ALL_MACHINES
        return _whole(name, value, int(option.low), int(option.high))
    if option.kind == "queue":
        if not isinstance(value, str) or not QUEUE_NAME.match(value):
            raise ValueError(
                f"{name}: letters, digits, '.', '_' or '-' (at most 40), got {value!r}"
            )
        return value
    if option.kind == "int":
        return _whole(name, value, int(option.low), int(option.high))
    if option.kind == "number":
        return _number(name, value, option.low, option.high)
    if option.kind == "list":
        return _strings(name, value)
    if option.kind == "choice":
        if value not in option.choices:
            raise ValueError(f"{name} must be one of {', '.join(option.choices)}")
        return value
    if option.kind == "flag":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def number(text: str) -> float:
    """A command-line number: finite (``float`` takes "nan" and "inf", which no option means
    and JSON cannot carry to the server)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options as flags; values are sent as typed (the server checks them with ``clean``)."""
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": option.name, "help": option.help}
        if option.kind == "int":
            kwargs["type"] = int
        elif option.kind == "number":
            kwargs["type"] = number
        elif option.kind == "list":
            kwargs["action"] = "append"
        elif option.kind == "choice":
            kwargs["choices"] = option.choices
        elif option.kind == "flag":  # absent: as configured (None), present: on
            kwargs.update(action="store_const", const=True, default=None)
        parser.add_argument(*option.flags, **kwargs)
