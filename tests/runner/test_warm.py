"""runner.warm: runs forked from a kept interpreter behave as cold ones, and fall back."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runner import warm
from runner.command import PLUGIN_MODULE
from runner.pool import Pool, RunSpec
from tests.runner.test_runner_pool import WAIT, Recorder, assert_group_gone, wait_file

pytestmark = pytest.mark.skipif(not warm.supported(), reason="warm starts need Linux pidfds")

# Each run records who it is, who started it and what it was given.
PROBE = """
    import json, os, sys
    from pathlib import Path

    def test_probe():
        run = os.path.basename(os.environ["PTD_DURATIONS_FILE"])
        Path(os.environ["PROBE_DIR"], run + ".json").write_text(json.dumps({
            "pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "cwd": os.getcwd(),
            "argv": sys.argv, "orig_argv": sys.orig_argv,
            "durations": os.environ.get("PTD_DURATIONS_FILE"), "hash": hash("the same string"),
            "events_fd": os.environ.get("PTD_EVENTS_FD"),
        }))
        assert not Path("fail").exists()
"""


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def warm_pool(recorder):
    pool = Pool(recorder, warm_start=True)
    yield pool
    pool.shutdown(timeout=WAIT)


def write(root: Path, name: str, text: str) -> None:
    (root / name).write_text(textwrap.dedent(text))


def run(pool, tmp_path, run_id, cmd, suite, **fields):
    """Start a run; the environment differs from run to run only where the pool's does."""
    argv, env = cmd
    per_run = {"PTD_DURATIONS_FILE": f"/d{run_id}"}
    spec = RunSpec(
        run_id=run_id,
        argv=argv,
        cwd=str(suite),
        env={**env, "PROBE_DIR": str(tmp_path), **per_run},
        timeout=None,
        log_path=str(tmp_path / f"run{run_id}.log"),
        **fields,
    )
    pool.submit(spec)
    return spec


def finish(pool, run_id):
    outcome = pool.wait(run_id, WAIT)
    assert outcome is not None, "the run did not finish"
    return outcome


def probe_run(pool, tmp_path, run_id, cmd, suite, **fields):
    run(pool, tmp_path, run_id, cmd, suite, **fields)
    outcome = finish(pool, run_id)
    return outcome, json.loads((tmp_path / f"d{run_id}.json").read_text())


def held_zygote(pool, timeout=WAIT):
    """The zygote the pool started for the next run (one key in these tests), ready or not:
    it is started in the pool's thread as the run ends, so its appearance is polled for."""
    deadline = time.monotonic() + timeout
    while not pool._zygotes._by_key:
        assert time.monotonic() < deadline, "no zygote was started for the next run"
        time.sleep(0.01)
    (zygote,) = pool._zygotes._by_key.values()
    return zygote


def ready_zygote(pool, timeout=WAIT):
    """The zygote the pool holds ready for the next run."""
    zygote = held_zygote(pool, timeout)
    assert zygote._ready.wait(timeout) and not zygote.dead
    return zygote


def test_each_run_forks_from_an_interpreter_made_ready_before_it(
    tmp_path, warm_pool, recorder, fast_pytest_cmd
):
    suite = tmp_path / "suite"
    suite.mkdir()
    write(suite, "test_probe.py", PROBE)
    first, a = probe_run(warm_pool, tmp_path, 1, fast_pytest_cmd, suite)
    assert a["ppid"] == os.getpid()  # the first run of a suite starts cold
    ready = ready_zygote(warm_pool)  # started when the first run was over
    (suite / "fail").write_text("")
    second, b = probe_run(warm_pool, tmp_path, 2, fast_pytest_cmd, suite)
    assert b["ppid"] == ready.proc.pid
    ready = ready_zygote(warm_pool)
    _, c = probe_run(warm_pool, tmp_path, 3, fast_pytest_cmd, suite)
    assert c["ppid"] == ready.proc.pid != b["ppid"]
    assert len({a["hash"], b["hash"], c["hash"]}) == 3  # each its own hash seed, as cold runs
    assert a["pid"] != b["pid"] and a["sid"] == a["pid"] and b["sid"] == b["pid"]
    assert a["cwd"] == str(suite) and a["argv"][0].endswith(os.path.join("pytest", "__main__.py"))
    assert b["argv"] == a["argv"] and b["orig_argv"] == a["orig_argv"]  # as if started cold
    assert (a["durations"], b["durations"]) == ("/d1", "/d2")  # per-run variables are the run's
    assert a["events_fd"] is None  # taken by our plugin, as in a cold run
    assert (first.returncode, first.reason) == (0, None)
    assert (second.returncode, second.reason) == (1, None)
    events = [e for c in recorder.calls if c[:2] == ("events", 2) for e in c[2]]
    assert [e["outcome"] for e in events if e["type"] == "test"] == ["failed"]
    log = (tmp_path / "run2.log").read_text()
    assert "1 failed" in log and "assert not True" in log  # a rewritten assert


def test_a_warm_first_run_starts_warm_from_its_first_time(
    tmp_path, warm_pool, recorder, fast_pytest_cmd
):
    """A sweep's steps (RunSpec.warm_first): even the first run of a suite forks from a
    zygote, made ready before the run starts, so no step's wall holds a cold start."""
    suite = tmp_path / "suite"
    suite.mkdir()
    write(suite, "test_probe.py", PROBE)
    outcome, probe = probe_run(warm_pool, tmp_path, 1, fast_pytest_cmd, suite, warm_first=True)
    assert outcome.returncode == 0
    assert probe["ppid"] != os.getpid()  # a cold run is this process's child; this one forked


def test_plugins_are_imported_through_pytest_assert_rewriting(tmp_path, warm_pool, fast_pytest_cmd):
    """Installed plugins are preloaded then forgotten: each run imports them as pytest does."""
    suite = tmp_path / "suite"
    suite.mkdir()
    write(suite, "test_probe.py", PROBE)
    _, env = fast_pytest_cmd
    env = {k: v for k, v in env.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    argv = [sys.executable, "-m", "pytest", "-p", PLUGIN_MODULE, "-p", "no:cacheprovider", "-q"]
    cmd = (argv, env)
    probe_run(warm_pool, tmp_path, 1, cmd, suite)
    ready = ready_zygote(warm_pool)
    outcome, probe = probe_run(warm_pool, tmp_path, 2, cmd, suite)
    log = (tmp_path / "run2.log").read_text()
    assert outcome.returncode == 0 and probe["ppid"] == ready.proc.pid, log
    assert "PytestAssertRewriteWarning" not in log


def test_a_changed_import_path_gets_a_fresh_interpreter(tmp_path, warm_pool, fast_pytest_cmd):
    suite, lib = tmp_path / "suite", tmp_path / "lib"
    suite.mkdir()
    lib.mkdir()
    write(suite, "test_probe.py", PROBE)
    argv, env = fast_pytest_cmd
    missing = tmp_path / "not_yet"
    path = os.pathsep.join([env["PYTHONPATH"], str(lib), str(missing)])
    cmd = (argv, {**env, "PYTHONPATH": path})
    probe_run(warm_pool, tmp_path, 1, cmd, suite)
    stale = ready_zygote(warm_pool)
    (lib / "newly_installed.py").write_text("")  # as pip install would change the folder
    outcome, b = probe_run(warm_pool, tmp_path, 2, cmd, suite)
    assert outcome.returncode == 0 and b["ppid"] == os.getpid()  # started cold instead
    assert stale.dead
    # A folder of the import path that appears is a change too.
    stale = ready_zygote(warm_pool)
    missing.mkdir()
    outcome, c = probe_run(warm_pool, tmp_path, 3, cmd, suite)
    assert outcome.returncode == 0 and c["ppid"] == os.getpid() and stale.dead
    fresh = ready_zygote(warm_pool)
    _, d = probe_run(warm_pool, tmp_path, 4, cmd, suite)
    assert d["ppid"] == fresh.proc.pid


def test_a_run_cancelled_as_it_starts_leaves_nothing(tmp_path, warm_pool, fast_pytest_cmd):
    suite = suite_with_probe(tmp_path)
    pids = tmp_path / "pids"
    write(
        suite,
        "test_hang.py",
        f"""
        import os, time
        from pathlib import Path

        def test_hangs():
            if Path("hang").exists():
                Path({str(pids)!r}).write_text(str(os.getpid()))
                time.sleep(60)
        """,
    )
    probe_run(warm_pool, tmp_path, 1, fast_pytest_cmd, suite)  # so the next one is warm
    ready_zygote(warm_pool)
    (suite / "hang").write_text("")
    run(warm_pool, tmp_path, 2, fast_pytest_cmd, suite)
    assert warm_pool.cancel(2)
    outcome = finish(warm_pool, 2)
    assert outcome.reason == "cancelled"
    if pids.exists():  # it got as far as the test: it must be gone all the same
        assert_group_gone(int(pids.read_text()), int(pids.read_text()))


def test_cancel_ends_a_warm_run_and_all_it_started(tmp_path, warm_pool, recorder, fast_pytest_cmd):
    suite = tmp_path / "suite"
    suite.mkdir()
    write(
        suite,
        "test_hang.py",
        f"""
        import os, subprocess, sys, time
        from pathlib import Path

        def test_hangs():
            if not Path("hang").exists():
                return
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            Path({str(tmp_path / "pids")!r}).write_text(f"{{os.getpid()}} {{child.pid}}")
            time.sleep(60)
        """,
    )
    probe_run(warm_pool, tmp_path, 0, fast_pytest_cmd, suite_with_probe(tmp_path, suite))
    ready = ready_zygote(warm_pool)
    (suite / "hang").write_text("")
    run(warm_pool, tmp_path, 1, fast_pytest_cmd, suite)
    pids = [int(p) for p in wait_file(tmp_path / "pids").split()]
    assert os.getpgid(pids[0]) == pids[0] and ready.proc.pid != os.getpid()
    assert warm_pool.cancel(1)
    outcome = finish(warm_pool, 1)
    assert outcome.reason == "cancelled"
    assert_group_gone(pids[0], *pids)


def test_a_run_outlives_its_zygote(tmp_path, warm_pool, fast_pytest_cmd):
    """The zygote dies mid-run: the run goes on and its exit status is still known."""
    suite = tmp_path / "suite"
    suite.mkdir()
    gate, started = tmp_path / "gate", tmp_path / "started"
    write(
        suite,
        "test_wait.py",
        f"""
        import os, time
        from pathlib import Path

        def test_waits():
            if not Path("wait").exists():
                return
            Path({str(started)!r}).write_text(str(os.getppid()))
            deadline = time.monotonic() + 30
            while not Path({str(gate)!r}).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert Path({str(gate)!r}).exists()
        """,
    )
    probe_run(warm_pool, tmp_path, 0, fast_pytest_cmd, suite_with_probe(tmp_path, suite))
    ready = ready_zygote(warm_pool)
    (suite / "wait").write_text("")
    run(warm_pool, tmp_path, 1, fast_pytest_cmd, suite)
    zygote_pid = int(wait_file(started))
    assert zygote_pid == ready.proc.pid
    os.kill(zygote_pid, signal.SIGKILL)
    gate.write_text("go")
    began = time.monotonic()
    outcome = finish(warm_pool, 1)
    assert (outcome.returncode, outcome.reason) == (0, None), outcome
    assert time.monotonic() - began < warm.REPORT_TIMEOUT
    # The next run starts from a new zygote.
    (suite / "wait").unlink()
    ready = ready_zygote(warm_pool)
    _, probe = probe_run(warm_pool, tmp_path, 2, fast_pytest_cmd, suite)
    assert probe["ppid"] == ready.proc.pid != zygote_pid


def suite_with_probe(tmp_path, suite=None):
    suite = suite or tmp_path / "probe_suite"
    suite.mkdir(exist_ok=True)
    write(suite, "test_probe.py", PROBE)
    return suite


def test_without_warm_start_runs_are_children_of_the_pool(tmp_path, recorder, fast_pytest_cmd):
    pool = Pool(recorder)
    try:
        _, probe = probe_run(pool, tmp_path, 1, fast_pytest_cmd, suite_with_probe(tmp_path))
    finally:
        pool.shutdown(timeout=WAIT)
    assert probe["ppid"] == os.getpid()


def test_only_python_dash_m_pytest_is_warm_started(tmp_path):
    zygotes = warm.Zygotes()
    assert zygotes.spawn([sys.executable, "-c", "pass"], str(tmp_path), {}, 1, 2) is None
    zygotes.close()


def test_shutdown_ends_zygotes_even_preloading_and_starts_no_more(
    tmp_path, recorder, fast_pytest_cmd
):
    """Nothing of the pool goes on writing into its data directory after it shut down."""
    pool = Pool(recorder, warm_start=True)
    suite = tmp_path / "suite"
    suite.mkdir()
    write(suite, "test_probe.py", PROBE)
    probe_run(pool, tmp_path, 1, fast_pytest_cmd, suite)
    zygote = held_zygote(pool)  # started as the run ended; perhaps still preloading
    pool.shutdown(timeout=WAIT)
    assert zygote.proc.poll() is not None  # ended, not left to finish its preload
    argv, env = fast_pytest_cmd
    pool._zygotes.replenish(argv, str(suite), env)  # a run ending during the shutdown
    assert not pool._zygotes._by_key


def test_an_adopted_zygote_serves_the_first_run_of_its_key_and_no_other_is_started(
    tmp_path, recorder, fast_pytest_cmd
):
    """run_suite's: started before the run existed (runs.execution.prestart), used by it;
    a one-shot pool starts no zygote after its run."""
    argv, env = fast_pytest_cmd
    suite = suite_with_probe(tmp_path)
    zygote = warm.Zygote(argv[0], str(suite), {**env, "PROBE_DIR": str(tmp_path)})
    zygotes = warm.Zygotes(replenish=False)
    zygotes.adopt(zygote)
    pool = Pool(recorder, zygotes=zygotes)
    try:
        outcome, probe = probe_run(pool, tmp_path, 1, fast_pytest_cmd, suite)
        assert outcome.returncode == 0 and probe["ppid"] == zygote.proc.pid
        assert not zygotes._by_key  # used, and none started for a next run
    finally:
        pool.shutdown(timeout=WAIT)


def test_an_adopted_zygote_of_another_environment_is_not_used_and_ends_as_the_run_starts(
    tmp_path, recorder, fast_pytest_cmd
):
    """A suite registered with variables of its own: the zygote run_suite started ahead was
    made without them, so the run starts cold, and the zygote does not take CPU from it."""
    argv, env = fast_pytest_cmd
    suite = suite_with_probe(tmp_path)
    made_for = {**env, "PROBE_DIR": str(tmp_path), "SUITE_TOKEN": "not this run's"}
    zygote = warm.Zygote(argv[0], str(suite), made_for)
    zygotes = warm.Zygotes(replenish=False)
    zygotes.adopt(zygote)
    pool = Pool(recorder, zygotes=zygotes)
    try:
        outcome, probe = probe_run(pool, tmp_path, 1, fast_pytest_cmd, suite)
        assert zygote.proc.poll() is not None  # ended when the run started, not at shutdown
    finally:
        pool.shutdown(timeout=WAIT)
    assert outcome.returncode == 0 and probe["ppid"] == os.getpid()  # cold: the pool's child
