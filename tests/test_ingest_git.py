"""An ingested run off CI says which code ran: the plugin reads the commit and branch of the git
checkout (a real `git init` here) when no CI variable names them, so a test that failed on one
machine and passed on another on the same commit is flaky, not "stable, 0 flips"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
import requests

from runner.client.ingestion import _CI_VARS, ci_metadata, git_metadata
from tests.factories import write_suite
from tests.servers import ROOT, ServeProcess
from tests.test_ingest import plugin_args

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
# The test flips its outcome on an environment variable: the same code, failing then passing.
SUITE = {
    "tests/test_app.py": (
        "import os\n"
        "def test_steady(): pass\n"
        "def test_shaky(): assert os.environ.get('SHAKY') != 'fail'\n"
    )
}
CI_NAMES = {name for names in _CI_VARS.values() for name in names} | {"GITHUB_RUN_ID"}


def git(cwd, *args) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd, capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return done.stdout.strip()


def checkout(path, branch="feature/compare") -> tuple:
    write_suite(path, SUITE)
    git(path, "init", "-q", "-b", branch)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return git(path, "rev-parse", "HEAD"), branch


def pytest_off_ci(suite, *args, **env_extra):
    """pytest with the plugin, as on a laptop: none of the CI variables set."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PTD_", "PYTEST_", "GIT_")) and k not in CI_NAMES
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(PYTHONPATH=str(ROOT), **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *plugin_args(), *args],
        cwd=suite, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    serve = ServeProcess(tmp_path_factory.mktemp("ingest-git") / "data").start()
    try:
        serve.token = serve.create_token()
        yield serve
    finally:
        serve.stop()


def api(server, path):
    headers = {"Authorization": f"Bearer {server.token}"}
    response = requests.get(server.url + path, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def run_id_of(out) -> int:
    text = out.stdout
    assert "ptd: run " in text, text + out.stderr
    url = text.split("ptd: run ")[1].split(": ", 1)[1].split()[0]
    return int(url.rstrip("/").rsplit("/", 1)[1])


def test_the_checkout_names_the_code_and_the_flip_is_seen(server, tmp_path):
    suite = tmp_path / "repo"
    commit, branch = checkout(suite)
    args = ["--ptd-url", server.url, "--ptd-token", server.token, "--ptd-suite", "demo"]
    failed = pytest_off_ci(suite, *args, SHAKY="fail")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    passed = pytest_off_ci(suite, *args)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    for out in (failed, passed):
        run = api(server, f"/api/runs/{run_id_of(out)}")
        assert (run["commit"], run["branch"]) == (commit, branch)
    # The same commit failed once and passed once: flaky across runs (folded in the background).
    suites = api(server, "/api/suites")
    suites = suites["items"] if isinstance(suites, dict) else suites
    demo = next(s["id"] for s in suites if s["name"] == "demo")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        flaky = api(server, f"/api/suites/{demo}/flaky")
        items = flaky["items"] if isinstance(flaky, dict) else flaky
        shaky = [t for t in items if t["nodeid"] == "tests/test_app.py::test_shaky"]
        if shaky:
            break
        time.sleep(0.2)
    assert shaky and shaky[0]["flip_count"] == 1, flaky


def test_ci_variables_win_and_a_plain_directory_sends_none(tmp_path):
    commit, branch = checkout(tmp_path / "repo", branch="main")
    assert git_metadata(tmp_path / "repo") == {"commit": commit, "branch": branch}
    env = {"GITHUB_SHA": "c1" * 20}
    assert ci_metadata(env, git_dir=tmp_path / "repo")["commit"] == "c1" * 20
    assert ci_metadata(env, git_dir=tmp_path / "repo")["branch"] == "main"  # not in the env
    assert ci_metadata({})["commit"] == ""  # the CLI's use: no git look-up asked
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_metadata(plain) == {"commit": "", "branch": ""}
    assert git_metadata(tmp_path / "missing") == {"commit": "", "branch": ""}
    git(tmp_path / "repo", "checkout", "-q", "--detach")
    assert git_metadata(tmp_path / "repo") == {"commit": commit, "branch": ""}
