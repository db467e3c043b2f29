"""Where PTD relies on pytest's or plugins' private parts, a version lacking them is reported."""

from __future__ import annotations

from tests.runner.test_fork import parallel

# What an older or newer pytest could look like to the fork engine: a tmp_path factory without
# the attributes it sets to give each worker its own popen-gwN base directory.
OTHER_TMP_FACTORY = {
    "conftest.py": """
        import types

        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            config._tmp_path_factory = types.SimpleNamespace(_basetemp=None)
    """,
    "test_a.py": "def test_a(): pass\ndef test_b(): pass\n",
}


def test_a_missing_private_attribute_is_a_warning_in_the_log_and_the_events(suite):
    run = suite(OTHER_TMP_FACTORY, *parallel("fork"))
    assert run.returncode == 0, run.output  # degraded, not broken
    [warning] = run.of_type("warning")
    assert "_tmp_path_factory" in warning["message"]
    assert "workers share one tmp_path base directory" in warning["message"]
    assert "ptd warning: config._tmp_path_factory" in run.output
    assert [t["outcome"] for t in run.tests] == ["passed", "passed"]


def test_the_versions_in_use_raise_no_warning(suite):
    files = {"test_a.py": "def test_a(tmp_path): pass\ndef test_b(): pass\n"}
    for engine in ("fork", "xdist"):
        run = suite(files, *parallel(engine), "--reruns", "1", "-p", "pytest_cov", "--cov")
        assert run.returncode == 0, run.output
        assert run.of_type("warning") == [], engine
