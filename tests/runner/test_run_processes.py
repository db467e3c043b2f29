"""Every process a run starts is gone when the run ends, and runs die with their server.

Real processes, checked in /proc: a test's child that leaves the run's process group
(``setsid``), one that also drops its environment (only a cgroup finds it), and a server
SIGKILLed in the middle of a cold and of a warm run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _ptd_inrun import lifeline

from runner import procs
from runner import warm as warm_starts
from runner.pool import Pool, RunSpec
from tests.runner.test_runner_pool import WAIT, Recorder, wait_file
from tests.runner.test_warm import ready_zygote

ROOT = Path(__file__).resolve().parents[2]
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A test whose child leaves the run's session, shrugs off SIGTERM and sleeps; the test
# itself passes at once. ``ENV`` is the child's environment ({} drops the cookie too).
CHILD = """
import os, signal, sys, time
os.setsid()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
cookie = os.environ.get("PTD_RUN_COOKIE", "")
open(sys.argv[1] + ".tmp", "w").write(f"{os.getpid()} {cookie}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(120)
"""
ESCAPING_TEST = """
    import os, subprocess, sys, time
    from pathlib import Path

    def test_escapes():
        if Path("run_pid").exists():
            Path("run_pid").write_text(str(os.getpid()))
        if not Path("escape").exists():
            return
        subprocess.Popen([sys.executable, "-c", {child!r}, {out!r}], env={env})
        deadline = time.monotonic() + 30
        while not Path({out!r}).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if Path("hang").exists():
            time.sleep(120)
"""


def gone(pid: int) -> bool:
    """Not running any more (a zombie waiting for its parent counts as gone)."""
    state = procs._state(pid)
    return state is None or state[0] in ("Z", "X")


def wait_gone(*pids: int, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not all(gone(p) for p in pids):
        assert time.monotonic() < deadline, [p for p in pids if not gone(p)]
        time.sleep(0.02)


def kill_left(*pids: int) -> None:
    for pid in pids:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def escaping_suite(root: Path, out: Path, env: str = "None") -> Path:
    root.mkdir(exist_ok=True)
    text = ESCAPING_TEST.format(child=CHILD, out=str(out), env=env)
    (root / "test_escape.py").write_text(textwrap.dedent(text))
    return root


def submit(pool, tmp_path, run_id, cmd, suite) -> None:
    argv, env = cmd
    pool.submit(RunSpec(run_id, argv, str(suite), env, None, str(tmp_path / f"run{run_id}.log")))


@pytest.fixture(params=[True, False], ids=["cgroup", "cookie-only"])
def cgroups(request, monkeypatch):
    if request.param and procs.cgroup_base() is None:
        pytest.skip("cgroup v2 cannot be used here")
    monkeypatch.setattr(procs, "USE_CGROUPS", request.param)
    return request.param


@linux
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_a_child_that_left_the_run_s_session_is_ended_with_the_run(
    tmp_path, fast_pytest_cmd, cgroups, warm
):
    if warm and not warm_starts.supported():
        pytest.skip("warm starts need Linux pidfds")
    pool = Pool(Recorder(), batch_interval=0.05, grace=0.5, warm_start=warm)
    try:
        suite = escaping_suite(tmp_path / "suite", tmp_path / "child")
        if warm:  # a first run, so that the second is forked by a zygote
            submit(pool, tmp_path, 1, fast_pytest_cmd, suite)
            assert pool.wait(1, WAIT).returncode == 0
            ready = ready_zygote(pool)
        (suite / "escape").touch()
        submit(pool, tmp_path, 2, fast_pytest_cmd, suite)
        child, cookie = wait_file(tmp_path / "child").split()
        outcome = pool.wait(2, WAIT)
        assert (outcome.returncode, outcome.reason) == (0, None), outcome
        assert cookie.startswith(f"{os.getpid()}.")  # owned by this (the pool's) process
        if warm:
            assert cookie == ready.cookie
        assert gone(int(child)), f"the escaped child {child} outlived its run"
        assert cookie not in lifeline.carriers().values()
    finally:
        pool.shutdown(timeout=WAIT)
        if (tmp_path / "child").exists():
            kill_left(int((tmp_path / "child").read_text().split()[0]))
    ours = f"{procs.CGROUP_PREFIX}{os.getpid()}."
    assert not [n for n in os.listdir(procs.cgroup_base() or tmp_path) if n.startswith(ours)]


def zombies_of_this_process() -> set[int]:
    """Every <defunct> process whose parent is this process, from /proc."""
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        fields = lifeline.stat_fields(int(entry)) if entry.isdigit() else None
        if fields is not None and fields[0] == "Z" and int(fields[1]) == me:
            found.add(int(entry))
    return found


@linux
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_a_child_that_left_the_run_s_session_leaves_no_zombie_under_the_server(
    tmp_path, fast_pytest_cmd, cgroups, warm
):
    """Finding L5: the pool ends a test's setsid child (reparented to this subreaper when the
    run's pytest exits), and reaps it too: no <defunct> entry is left under the server."""
    if warm and not warm_starts.supported():
        pytest.skip("warm starts need Linux pidfds")
    pool = Pool(Recorder(), batch_interval=0.05, grace=0.5, warm_start=warm)
    try:
        suite = escaping_suite(tmp_path / "suite", tmp_path / "child")
        if warm:
            submit(pool, tmp_path, 1, fast_pytest_cmd, suite)
            assert pool.wait(1, WAIT).returncode == 0
            ready_zygote(pool)
        before = zombies_of_this_process()
        (suite / "escape").touch()
        submit(pool, tmp_path, 2, fast_pytest_cmd, suite)
        child = int(wait_file(tmp_path / "child").split()[0])
        assert pool.wait(2, WAIT).returncode == 0
        assert procs._state(child) is None, f"{child} is left as {procs._state(child)}"
        assert zombies_of_this_process() <= before
    finally:
        pool.shutdown(timeout=WAIT)
        if (tmp_path / "child").exists():
            kill_left(int((tmp_path / "child").read_text().split()[0]))


@linux
def test_a_child_that_dropped_its_environment_too_is_ended_by_the_cgroup(tmp_path, fast_pytest_cmd):
    if procs.cgroup_base() is None:
        pytest.skip("cgroup v2 cannot be used here: only the cookie marks a run's processes")
    pool = Pool(Recorder(), batch_interval=0.05, grace=0.5)
    try:
        suite = escaping_suite(tmp_path / "suite", tmp_path / "child", env="{}")
        (suite / "escape").touch()
        submit(pool, tmp_path, 1, fast_pytest_cmd, suite)
        child, *cookie = wait_file(tmp_path / "child").split()
        assert cookie == []  # no cookie to find it by
        assert pool.wait(1, WAIT).returncode == 0
        assert gone(int(child))
    finally:
        pool.shutdown(timeout=WAIT)
        kill_left(int(wait_file(tmp_path / "child").split()[0]))


# A server in miniature: a pool in a process of its own, which the test SIGKILLs mid-run.
SUPERVISOR = """
import json, os, sys, time
from runner.pool import Pool, RunSpec

class Sink:
    def run_started(self, run_id, pid, started_at):
        print(json.dumps({"started": run_id, "pid": pid}), flush=True)
    def handle_events(self, run_id, events): pass
    def run_finished(self, run_id, outcome):
        print(json.dumps({"finished": run_id, "code": outcome.returncode}), flush=True)

argv, env, suite, logs, warm = json.loads(sys.argv[1])
pool = Pool(Sink(), warm_start=warm)
def run(run_id):
    pool.submit(RunSpec(run_id, argv, suite, env, None, f"{logs}/run{run_id}.log"))
if warm:  # the first run of a suite is cold; the next one is forked by a zygote
    run(1)
    pool.wait(1)
    while not pool._zygotes._by_key:
        time.sleep(0.01)
    (ready,) = pool._zygotes._by_key.values()
    ready._ready.wait(60)
    print(json.dumps({"zygote": ready.proc.pid}), flush=True)
for name in ("hang", "escape", "run_pid"):
    open(os.path.join(suite, name), "w").close()
run(2)
time.sleep(300)
"""


@linux
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_a_run_dies_with_its_server(tmp_path, fast_pytest_cmd, warm):
    """The server is SIGKILLed mid-run: no process of the run goes on without it (the
    server's watchdog ends them; a cold run's own process has a parent-death signal too, a
    warm one's zygote ends its run too)."""
    if warm and not warm_starts.supported():
        pytest.skip("warm starts need Linux pidfds")
    suite = escaping_suite(tmp_path / "suite", tmp_path / "child")
    argv, env = fast_pytest_cmd
    args = json.dumps([argv, env, str(suite), str(tmp_path), warm])
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
    )
    child = None
    try:
        run_pid = int(wait_file(suite / "run_pid"))
        child = int(wait_file(tmp_path / "child").split()[0])
        assert not gone(run_pid) and not gone(child)
        supervisor.kill()
        supervisor.wait()
        began = time.monotonic()
        wait_gone(run_pid, timeout=10)  # no timer is left to end it: it must die now
        wait_gone(child, timeout=10)  # and all it started, even what left its session
        assert time.monotonic() - began < 10
    finally:
        supervisor.kill()
        supervisor.wait()
        if child:
            kill_left(child)


def test_an_exited_run_keeps_its_pid_until_its_group_is_swept():
    """wait_exited leaves the leader a zombie: its pid, the id of the group the pool sweeps
    next, cannot go to an unrelated process before proc.wait() reaps it."""
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], start_new_session=True)
    procs.wait_exited(proc)
    assert lifeline.stat_fields(proc.pid)[0] == "Z"
    assert not procs.group_alive(proc.pid, exclude=proc.pid)  # a zombie is not running
    assert lifeline.stat_fields(proc.pid)[0] == "Z"  # and the sweep did not reap it
    assert proc.wait(timeout=5) == 3
    assert lifeline.stat_fields(proc.pid) is None
