"""runner.options: the launch options a run may override, declared once."""

from __future__ import annotations

import argparse

import pytest

from runner import options
from runner.client import cli


def test_every_option_is_declared_once_and_the_cli_offers_each():
    assert options.NAMES == (
        "workers",
        "engine",
        "dist",
        "repeat",
        "reruns",
        "timeout",
        "keyword",
        "markers",
        "capture_passed",
        "mode",
        "users",
        "spawn_rate",
        "duration",
        "iterations",
        "think_time",
        "thresholds",
        "machines",
        "queue",
    )
    args = cli.build_parser().parse_args(
        ["run", "--suite", "s", "--workers", "auto", "--engine", "xdist", "--dist", "loadgroup"]
        + ["--repeat", "2", "--reruns", "1", "--timeout", "60", "-k", "a", "-m", "b"]
        + ["--capture-passed"]
        + ["--load", "--users", "100", "--spawn-rate", "2.5", "--duration", "30"]
        + ["--iterations", "5", "--think-time", "0.5"]
        + ["--threshold", "p95<300ms", "--threshold", "errors<1%"]
        + ["--machines", "all", "--queue", "ci"]
    )
    assert {name: getattr(args, name) for name in options.NAMES} == {
        "workers": "auto",
        "engine": "xdist",
        "dist": "loadgroup",
        "repeat": 2,
        "reruns": 1,
        "timeout": 60,
        "keyword": "a",
        "markers": "b",
        "capture_passed": True,
        "mode": "load",
        "users": 100,
        "spawn_rate": 2.5,
        "duration": 30,
        "iterations": 5,
        "think_time": 0.5,
        "thresholds": ["p95<300ms", "errors<1%"],
        "machines": "all",
        "queue": "ci",
    }
    # A flag left out means "as configured" (None), not off.
    assert cli.build_parser().parse_args(["run", "--suite", "s"]).capture_passed is None


@pytest.mark.parametrize(
    ("name", "value", "stored"),
    [
        ("workers", "auto", options.AUTO_WORKERS),
        ("machines", "all", options.ALL_MACHINES),
        ("machines", 3, 3),
        ("queue", "ci-linux", "ci-linux"),
        ("workers", "8", 8),
        ("engine", "fork", "fork"),
        ("dist", "loadscope", "loadscope"),
        ("reruns", 0, 0),
        ("timeout", 3600, 3600),
        ("keyword", "not slow", "not slow"),
        ("mode", "load", "load"),
        ("users", "1000", 1000),
        ("spawn_rate", "0.5", 0.5),
        ("think_time", 0, 0.0),
        ("thresholds", ["p95<300ms", " rps>200 ", ""], ["p95<300ms", "rps>200"]),
        ("thresholds", "p99<1s", ["p99<1s"]),
    ],
)
def test_clean_keeps_valid_values(name, value, stored):
    assert options.clean(name, value) == stored


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("workers", 0, "workers must be between 1 and 64, got 0"),
        ("workers", "many", "workers must be a whole number, got 'many'"),
        ("repeat", 1.5, "repeat must be a whole number, got 1.5"),
        ("engine", "threads", "engine must be one of fork, xdist"),
        ("dist", "each", "dist must be one of load, loadscope, loadfile, loadgroup"),
        ("color", "yes", "unknown option 'color'"),
        ("mode", "soak", "mode must be one of tests, load"),
        ("users", 1001, "users must be between 1 and 1000, got 1001"),
        ("spawn_rate", 0, "spawn_rate must be between 0.01 and 10000, got 0"),
        ("spawn_rate", "fast", "spawn_rate must be a number, got 'fast'"),
        ("spawn_rate", "nan", "spawn_rate must be between 0.01 and 10000, got nan"),
        ("think_time", -1, "think_time must be between 0 and 3600, got -1"),
        ("thresholds", [3], "thresholds must be a list of strings"),
        ("thresholds", ["p95<1s\nx"], "thresholds: each one line of at most 200 characters"),
        ("thresholds", ["a"] * 21, "thresholds: at most 20, got 21"),
        ("machines", 0, "machines must be between 1 and 64, got 0"),
        ("queue", "a b", "queue: letters, digits, '.', '_' or '-' (at most 40), got 'a b'"),
    ],
)
def test_clean_refuses_with_one_line(name, value, message):
    with pytest.raises(ValueError) as caught:
        options.clean(name, value)
    assert str(caught.value) == message


def test_a_bad_choice_is_a_usage_error_on_the_command_line(capsys):
    parser = argparse.ArgumentParser(prog="x")
    options.add_arguments(parser)
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["--engine", "threads"])
    assert caught.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_ptd_run_load_reports_thresholds_and_exits_as_the_server_decided(capsys):
    load = {"users": 10, "iterations": 500, "failures": 2, "rps": 49.5, "p95_ms": 230.0,
            "thresholds": [{"expr": "p95<300ms", "value": 230.0, "passed": True},
                           {"expr": "errors<0.1%", "value": 0.4, "passed": False}]}  # fmt: skip
    assert cli.report({"id": 7, "status": "failed", "load": load}) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "load of 10 users, 500 iterations, 2 failures (rps 49.5, p95_ms 230.0)" in err
    assert "p95<300ms: passed" in err and "errors<0.1%: FAILED (value 0.4)" in err
    assert cli.report({"id": 8, "status": "passed", "load": load}) == cli.EXIT_PASSED
