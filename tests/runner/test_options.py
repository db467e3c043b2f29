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
        "machines",
        "queue",
    )
    args = cli.build_parser().parse_args(
        ["run", "--suite", "s", "--workers", "auto", "--engine", "xdist", "--dist", "loadgroup"]
        + ["--repeat", "2", "--reruns", "1", "--timeout", "60", "-k", "a", "-m", "b"]
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
        "machines": "all",
        "queue": "ci",
    }


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
