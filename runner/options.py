"""The launch options a run may override (the API's body, the launch form, ``run_suite``'s and
``ptd run``'s flags): each declared once here, with its type, bounds and help.

Plain Python. ``clean`` checks a value against its declaration and raises ValueError with a
one-line message; ``keyword`` and ``markers`` come back unchanged, their pytest syntax being
for the caller to check. ``add_arguments`` puts the options on an argparse parser.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

from _ptd_inrun.scheduling.core import MODES

ENGINES = ("fork", "xdist")
DIST_MODES = MODES
MAX_WORKERS = 64
AUTO_WORKERS = 0  # how "auto" (one worker per CPU core, like -n auto) is stored
MAX_MACHINES = 64
ALL_MACHINES = 0  # how "all" (every idle agent of the queue) is stored
QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


@dataclass(frozen=True)
class Option:
    name: str
    kind: str  # "workers", "machines", "int", "choice", "queue" or "expression"
    help: str
    flags: tuple[str, ...]
    low: int = 0
    high: int = 0
    choices: tuple[str, ...] = ()


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


def clean(name: str, value: Any) -> Any:
    """The value to store for option ``name``; ValueError (one line) when it is not valid."""
    option = BY_NAME.get(name)
    if option is None:
        raise ValueError(f"unknown option {name!r}")
    if option.kind == "workers":
        if str(value).strip().lower() == "auto":
            return AUTO_WORKERS
        return _whole(name, value, option.low, option.high)
    if option.kind == "machines":
        if str(value).strip().lower() == "all":
            return ALL_MACHINES
        return _whole(name, value, option.low, option.high)
    if option.kind == "queue":
        if not isinstance(value, str) or not QUEUE_NAME.match(value):
            raise ValueError(
                f"{name}: letters, digits, '.', '_' or '-' (at most 40), got {value!r}"
            )
        return value
    if option.kind == "int":
        return _whole(name, value, option.low, option.high)
    if option.kind == "choice":
        if value not in option.choices:
            raise ValueError(f"{name} must be one of {', '.join(option.choices)}")
        return value
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options as flags; values are sent as typed (the server checks them with ``clean``)."""
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": option.name, "help": option.help}
        if option.kind == "int":
            kwargs["type"] = int
        elif option.kind == "choice":
            kwargs["choices"] = option.choices
        parser.add_argument(*option.flags, **kwargs)
