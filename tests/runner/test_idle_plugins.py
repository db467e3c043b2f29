"""A plugin whose end-of-session hooks would import an unused library is dropped at the end.

hypothesis's terminal summary imports hypothesis (~0.9 s of CPU) even when no test used it;
the in-run plugin unregisters it then, and leaves it alone when the suite does use it.
The suites run in the "latest" suite venv (tests/compat_venvs.py), which has hypothesis:
PTD's own test extras do not.
"""

from __future__ import annotations

import pytest

from tests.runner.compat_cases import interpreter

suite_python = interpreter("latest")

PROBE = """
    import sys
    from pathlib import Path

    def pytest_unconfigure(config):
        imported = "hypothesis" in sys.modules
        Path(config.rootpath, "probe.txt").write_text(str(imported))
"""

ENGINES = pytest.mark.parametrize(
    "engine", [[], ["--ptd-workers", "2"], ["-n", "2"]], ids=["serial", "fork", "xdist"]
)


@ENGINES
def test_unused_hypothesis_is_never_imported(suite, tmp_path, engine):
    run = suite(
        {"conftest.py": PROBE, "test_a.py": "def test_a():\n    pass\n"},
        "-p",
        "hypothesispytest",
        *engine,
    )
    assert run.returncode == 0, run.output
    assert (tmp_path / "suite0" / "probe.txt").read_text() == "False"


@ENGINES
def test_a_suite_using_hypothesis_keeps_its_summary(suite, engine):
    run = suite(
        {
            "test_h.py": """
                from hypothesis import given, settings, strategies as st

                @settings(max_examples=5, database=None)
                @given(st.integers())
                def test_ints(x):
                    assert isinstance(x, int)
            """
        },
        "-p",
        "hypothesispytest",
        "--hypothesis-show-statistics",
        *engine,
    )
    assert run.returncode == 0, run.output
    assert "Hypothesis Statistics" in run.output
