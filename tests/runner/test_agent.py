"""The agent's own pieces, without a dashboard: options, path maps, the commit check, the
shard's pytest command line (tests/test_agents.py runs real agents end to end)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runner.agent import app as agent_app
from runner.agent.main import main
from runner.agent.shard import AgentOptions, ShardJob, map_path, parse_path_map

ENV = {"PTD_SERVER": "http://127.0.0.1:9", "PTD_TOKEN": "t", "PTD_BROKER_URL": "redis://x"}


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--name", "a b"], ENV, "--name: use up to 40 letters"),
        (["--name", "a", "--workers", "0"], ENV, "--workers: between 1 and 64, got 0"),
        (["--name", "a", "--workers", "many"], ENV, "--workers: N or 'auto', got 'many'"),
        (["--name", "a", "--path-map", "rel=/x"], ENV, "both paths must be absolute"),
        (["--name", "a", "--path-map", "/x"], ENV, "expected FROM=TO"),
        (["--name", "a"], {}, "set PTD_SERVER and PTD_TOKEN"),
        (["--name", "a"], {"PTD_SERVER": "http://x", "PTD_TOKEN": "t"}, "set PTD_BROKER_URL"),
        ([], ENV, "the following arguments are required: --name"),
    ],
)
def test_bad_usage_is_exit_2_with_one_line(capsys, argv, env, message):
    assert main(argv, env) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_an_unreachable_dashboard_is_exit_2(capsys, monkeypatch):
    monkeypatch.setattr("runner.agent.main.time.sleep", lambda s: None)
    assert main(["--name", "a"], ENV) == 2
    assert "dashboard unreachable" in capsys.readouterr().err


def test_path_maps_take_the_first_that_contains_the_path():
    maps = [parse_path_map("/srv/suites/=/home/ci/checkout"), parse_path_map("/srv=/data")]
    assert map_path("/srv/suites", maps) == "/home/ci/checkout"
    assert map_path("/srv/suites/api/tests", maps) == "/home/ci/checkout/api/tests"
    assert map_path("/srv/other", maps) == "/data/other"
    assert map_path("/srvx", maps) == "/srvx"  # a folder's name, not a prefix of one


def test_time_limits_follow_the_run_timeout():
    assert agent_app.time_limits(600) == (630, 660)
    soft, hard = agent_app.time_limits(None)
    assert soft < hard and hard < agent_app.VISIBILITY_TIMEOUT


def job(tmp_path, **spec) -> ShardJob:
    options = AgentOptions("m1", "http://127.0.0.1:9", "tok", workers=3)
    base = {"shard_id": 7, "suite_path": str(tmp_path), "python": ""}
    return ShardJob({**base, **spec}, options)


def test_a_checkout_at_another_commit_is_refused(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    (tmp_path / "test_a.py").write_text("def test_a(): pass\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    head = subprocess.run(
        [*git[:3], "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert job(tmp_path, commit=head).prepare()[0] == ""
    problem = job(tmp_path, commit="f" * 40).prepare()[0]
    assert "machine m1" in problem and head[:12] in problem and "refusing" in problem
    assert job(tmp_path / "gone").prepare()[0].endswith("does not exist here")


def test_the_shard_runs_the_fork_engine_with_the_run_options(tmp_path):
    argv, env = job(tmp_path, workers=0, dist="loadfile", keyword="not slow").argv_env(
        str(tmp_path), sys.executable
    )
    assert argv[argv.index("--ptd-workers") + 1] == "3"  # the run said auto: the agent's N
    assert argv[argv.index("--ptd-dist") + 1] == "loadfile" and "-n" not in argv
    assert argv[argv.index("-k") + 1] == "not slow"
    assert env["PTD_SHARD_URL"] == "http://127.0.0.1:9/api/shards/7"
    assert env["PTD_SHARD_TOKEN"] != "tok"  # the shard's own key, never the agent's token
    one, _ = job(tmp_path, workers=1).argv_env(str(tmp_path), sys.executable)
    assert one[one.index("--ptd-workers") + 1] == "1"  # one worker still pulls from the queue
