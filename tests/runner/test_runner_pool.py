"""runner.pool: queueing, limits, cancel, timeout, spawn failure, no orphans left."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time

import pytest

from runner.command import build_env
from runner.pool import Pool, RunOutcome, RunSpec

WAIT = 30.0  # upper bound for anything to happen; tests normally take far less


class Recorder:
    """A Sink that remembers every call, in order."""

    def __init__(self, fail: bool = False):
        self.calls: list[tuple] = []
        self.fail = fail
        self.cond = threading.Condition()

    def _add(self, *call):
        with self.cond:
            self.calls.append(call)
            self.cond.notify_all()
        if self.fail:
            raise RuntimeError("sink is broken")

    def run_started(self, run_id, pid, started_at):
        self._add("started", run_id, pid)

    def handle_events(self, run_id, events):
        self._add("events", run_id, list(events))

    def run_finished(self, run_id, outcome):
        self._add("finished", run_id, outcome)

    def wait_for(self, pred, timeout=WAIT):
        with self.cond:
            assert self.cond.wait_for(lambda: any(pred(c) for c in self.calls), timeout), self.calls
            return next(c for c in self.calls if pred(c))

    def pid(self, run_id):
        return self.wait_for(lambda c: c[:2] == ("started", run_id))[2]

    def events(self, run_id):
        return [e for c in self.calls if c[:2] == ("events", run_id) for e in c[2]]

    def order(self):
        return [(c[0], c[1]) for c in self.calls if c[0] != "events"]


def script_spec(tmp_path, run_id, code, timeout=None):
    code = "import os, sys, time, json, subprocess, signal\n" + textwrap.dedent(code)
    return RunSpec(
        run_id=run_id,
        argv=[sys.executable, "-c", code],
        cwd=str(tmp_path),
        env=build_env(os.environ, {"GATE": str(tmp_path / f"gate{run_id}")}, None, None),
        timeout=timeout,
        log_path=str(tmp_path / "logs" / f"run{run_id}.log"),
    )


EMIT = """
def emit(**e):
    os.write(int(os.environ["PTD_EVENTS_FD"]), (json.dumps(e) + "\\n").encode())
"""
WAIT_GATE = """
deadline = time.time() + 30
while not os.path.exists(os.environ["GATE"]) and time.time() < deadline:
    time.sleep(0.01)
"""
SPAWN_SLEEPER = """
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
open(os.environ["GATE"] + ".pid", "w").write(str(child.pid))
"""


def open_gate(tmp_path, run_id):
    (tmp_path / f"gate{run_id}").write_text("go")


def wait_file(path, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not (text := _read(path)):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return text


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


def assert_group_gone(pgid, *pids):
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def pool(recorder):
    p = Pool(recorder, max_concurrent=1, batch_interval=0.05, grace=0.5)
    yield p
    p.shutdown(cancel_running=True, timeout=WAIT)


def test_a_real_pytest_run_streams_its_events(tmp_path, pool, recorder, fast_pytest_cmd):
    (tmp_path / "test_ok.py").write_text("def test_a(): pass\ndef test_b(): assert 0\n")
    argv, env = fast_pytest_cmd
    spec = RunSpec(1, argv, str(tmp_path), env, None, str(tmp_path / "run.log"))
    pool.submit(spec)
    outcome = pool.wait(1, WAIT)
    assert outcome == RunOutcome(1, 1, outcome.wall_seconds, None, "")
    assert outcome.wall_seconds > 0
    assert recorder.order() == [("started", 1), ("finished", 1)]
    events = recorder.events(1)
    assert events[0]["type"] == "session_start" and events[-1]["type"] == "session_finish"
    assert sorted((e["nodeid"], e["outcome"]) for e in events if e["type"] == "test") == [
        ("test_ok.py::test_a", "passed"),
        ("test_ok.py::test_b", "failed"),
    ]
    assert "1 failed, 1 passed" in (tmp_path / "run.log").read_text()


class ThreadRecorder(Recorder):
    """Also notes which thread delivers events, and takes the optional events_done."""

    def handle_events(self, run_id, events):
        self._add("events", run_id, list(events), threading.get_ident())

    def events_done(self, run_id):
        self._add("events_done", run_id, threading.get_ident())


def test_the_event_reader_thread_ends_with_events_done_in_that_thread(tmp_path):
    recorder = ThreadRecorder()
    pool = Pool(recorder, max_concurrent=1, batch_interval=0.05, grace=0.5)
    try:
        code = EMIT + "emit(type='session_start')\nemit(type='session_finish', exitstatus=0)\n"
        pool.submit(script_spec(tmp_path, 1, code))
        assert pool.wait(1, WAIT).reason is None
        done = recorder.wait_for(lambda c: c[0] == "events_done")
        deliveries = [c for c in recorder.calls if c[0] in ("events", "events_done")]
        assert deliveries[-1] == done  # after the last batch
        assert {c[-1] for c in deliveries} == {done[2]}  # the same (reader) thread
    finally:
        pool.shutdown(cancel_running=True, timeout=WAIT)


def test_limit_one_runs_in_fifo_order(tmp_path, pool, recorder):
    code = EMIT + WAIT_GATE + "emit(type='session_finish', exitstatus=0)\n"
    for run_id in (1, 2, 3):
        pool.submit(script_spec(tmp_path, run_id, code))
    recorder.pid(1)
    assert pool.running() == [1] and pool.queued() == [2, 3] and pool.free_slots() == 0
    for run_id in (1, 2, 3):
        open_gate(tmp_path, run_id)
    for run_id in (1, 2, 3):
        assert pool.wait(run_id, WAIT).reason is None
    assert recorder.order() == [
        ("started", 1),
        ("finished", 1),
        ("started", 2),
        ("finished", 2),
        ("started", 3),
        ("finished", 3),
    ]
    assert pool.running() == [] and pool.free_slots() == 1


def test_two_slots_run_together(tmp_path, recorder):
    pool = Pool(recorder, max_concurrent=2, batch_interval=0.05, grace=0.5)
    try:
        code = EMIT + WAIT_GATE + "emit(type='session_finish', exitstatus=0)\n"
        for run_id in (1, 2, 3):
            pool.submit(script_spec(tmp_path, run_id, code))
        recorder.pid(1)
        recorder.pid(2)
        assert sorted(pool.running()) == [1, 2] and pool.queued() == [3]
        for run_id in (1, 2, 3):
            open_gate(tmp_path, run_id)
        assert all(pool.wait(r, WAIT).reason is None for r in (1, 2, 3))
    finally:
        pool.shutdown(timeout=WAIT)


def test_cancel_queued_run(tmp_path, pool, recorder):
    code = EMIT + WAIT_GATE + "emit(type='session_finish', exitstatus=0)\n"
    pool.submit(script_spec(tmp_path, 1, code))
    pool.submit(script_spec(tmp_path, 2, code))
    assert pool.cancel(2) is True
    outcome = pool.wait(2, WAIT)
    assert outcome.reason == "cancelled" and outcome.returncode is None
    open_gate(tmp_path, 1)
    assert pool.wait(1, WAIT).reason is None
    assert ("started", 2) not in recorder.order()
    assert pool.cancel(2) is False and pool.cancel(99) is False


def test_cancel_running_ends_the_whole_group(tmp_path, pool, recorder):
    code = EMIT + SPAWN_SLEEPER + "emit(type='session_start', workers=1)\ntime.sleep(60)\n"
    pool.submit(script_spec(tmp_path, 1, code))
    pgid = recorder.pid(1)
    grandchild = int(wait_file(str(tmp_path / "gate1.pid")))
    assert pool.cancel(1) is True
    outcome = pool.wait(1, WAIT)
    assert outcome.reason == "cancelled"
    assert outcome.returncode is not None and outcome.returncode < 0
    assert_group_gone(pgid, grandchild)
    assert recorder.events(1)[0]["type"] == "session_start"


def test_timeout_of_a_pytest_run_with_a_grandchild(tmp_path, pool, recorder, fast_pytest_cmd):
    (tmp_path / "test_slow.py").write_text(
        textwrap.dedent("""
        import os, signal, subprocess, sys, time

        def test_hangs():
            child = subprocess.Popen([sys.executable, "-c",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "time.sleep(60)"])
            with open("grandchild.pid", "w") as fh:
                fh.write(str(child.pid))
            time.sleep(60)
    """)
    )
    argv, env = fast_pytest_cmd
    spec = RunSpec(7, argv, str(tmp_path), env, 3.0, str(tmp_path / "run.log"))
    pool.submit(spec)
    pgid = recorder.pid(7)
    grandchild = int(wait_file(str(tmp_path / "grandchild.pid")))
    outcome = pool.wait(7, WAIT)
    assert outcome.reason == "timeout", outcome
    assert "timed out after 3 s" in outcome.message
    assert 3.0 <= outcome.wall_seconds < 3.0 + WAIT
    assert_group_gone(pgid, grandchild)
    assert recorder.order()[-1] == ("finished", 7)


def test_leftovers_of_a_finished_run_are_ended(tmp_path, pool, recorder):
    code = EMIT + SPAWN_SLEEPER + "emit(type='session_finish', exitstatus=0)\n"
    pool.submit(script_spec(tmp_path, 1, code))
    pgid = recorder.pid(1)
    outcome = pool.wait(1, WAIT)
    assert outcome.reason is None and outcome.returncode == 0
    grandchild = int(wait_file(str(tmp_path / "gate1.pid")))
    assert_group_gone(pgid, grandchild)


def test_exit_without_session_finish_is_a_crash(tmp_path, pool, recorder):
    code = (
        EMIT + "emit(type='session_start', workers=1)\nprint('fatal: out of cheese')\nsys.exit(3)\n"
    )
    pool.submit(script_spec(tmp_path, 1, code))
    outcome = pool.wait(1, WAIT)
    assert outcome.reason == "crashed" and outcome.returncode == 3
    assert outcome.message == (
        "pytest exited with code 3 (internal error) before finishing the session\n"
        "The run's log has the details."
    )
    # what the run printed stays in its log (staff's to read), out of the public message
    assert "out of cheese" in (tmp_path / "logs" / "run1.log").read_text()


@pytest.mark.parametrize("collected", [False, True], ids=["before-collection", "after"])
def test_a_usage_error_says_pytest_s_own_words_only_before_any_test_ran(
    tmp_path, pool, recorder, collected
):
    code = EMIT + textwrap.dedent(f"""
        if {collected}:
            emit(type='collected', count=1)
        print('token=hunter2')
        print('ERROR: usage: python -m pytest [options] [file_or_dir] [file_or_dir] [...]')
        print('python -m pytest: error: unrecognized arguments: --nosuch')
        print('  rootdir: /somewhere')
        sys.exit(4)
    """)
    pool.submit(script_spec(tmp_path, 1, code))
    outcome = pool.wait(1, WAIT)
    assert outcome.reason == "crashed" and outcome.returncode == 4
    head = "pytest exited with code 4 (usage error) before finishing the session\n"
    if collected:  # a test's code may have printed that line: the log has it, not the message
        assert outcome.message == head + "The run's log has the details."
    else:
        assert outcome.message == head + (
            "ERROR: usage: python -m pytest [options] [file_or_dir] [file_or_dir] [...]\n"
            "python -m pytest: error: unrecognized arguments: --nosuch"
        )


@pytest.mark.parametrize("bad", ["python", "cwd"])
def test_spawn_failure(tmp_path, pool, recorder, bad):
    spec = script_spec(tmp_path, 1, "pass")
    if bad == "python":
        spec.argv[0] = str(tmp_path / "no" / "python")
    else:
        spec.cwd = str(tmp_path / "missing")
    pool.submit(spec)
    outcome = pool.wait(1, WAIT)
    assert outcome.reason == "spawn_failed" and outcome.returncode is None
    assert ("does not exist" if bad == "cwd" else "not found") in outcome.message
    assert recorder.order() == [("finished", 1)]
    # the pool goes on
    pool.submit(script_spec(tmp_path, 2, EMIT + "emit(type='session_finish', exitstatus=0)"))
    assert pool.wait(2, WAIT).reason is None


def test_a_failing_sink_does_not_break_the_pool(tmp_path):
    sink = Recorder(fail=True)
    pool = Pool(sink, batch_interval=0.01, grace=0.5)
    try:
        code = (
            EMIT + "emit(type='session_start', workers=1)\n"
            "emit(type='session_finish', exitstatus=0)\n"
        )
        pool.submit(script_spec(tmp_path, 1, code))
        pool.submit(script_spec(tmp_path, 2, code))
        assert pool.wait(1, WAIT).reason is None
        assert pool.wait(2, WAIT).reason is None
        assert sink.order() == [("started", 1), ("finished", 1), ("started", 2), ("finished", 2)]
    finally:
        pool.shutdown(timeout=WAIT)


def test_shutdown_cancels_queue_and_running(tmp_path, recorder):
    pool = Pool(recorder, batch_interval=0.05, grace=0.5)
    code = EMIT + WAIT_GATE
    pool.submit(script_spec(tmp_path, 1, code))
    pool.submit(script_spec(tmp_path, 2, code))
    pgid = recorder.pid(1)
    pool.shutdown(cancel_running=True, timeout=WAIT)
    assert pool.wait(1, 0).reason == "cancelled"
    assert pool.wait(2, 0).reason == "cancelled"
    assert_group_gone(pgid)
    with pytest.raises(RuntimeError):
        pool.submit(script_spec(tmp_path, 3, code))
