"""The in-process runner pool: FIFO under the limit, cancel, interrupted runs, refusals."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from runs.execution import launch
from runs.execution.environment import Environment, install, installed
from runs.models import Run, RunConfig, Suite
from tests.factories import write_suite

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(predicate, timeout=60.0, interval=0.05):
    """A bounded wait on a condition (not a sleep-and-hope: it returns as soon as it holds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture
def suite(tmp_path):
    path = write_suite(
        tmp_path / "quick",
        {"test_quick.py": "import time\n\ndef test_a(): time.sleep(0.2)\ndef test_b(): pass\n"},
    )
    suite = Suite.objects.create(name="quick", path=str(path))
    RunConfig.objects.create(suite=suite, name="default", is_default=True, workers=1)
    return suite


@pytest.fixture
def running_dispatcher():
    """This process's environment, serving as `serve` does: one run at a time."""
    with installed(Environment()) as env:
        yield env.start_dispatcher(max_concurrent=1, poll=0.1)


def test_queued_runs_execute_in_order_one_at_a_time(suite, running_dispatcher):
    runs = [launch.launch(suite, trigger="api") for _ in range(2)]
    ids = [r.id for r in runs]
    wait_until(lambda: not Run.objects.filter(id__in=ids, status__in=Run.ACTIVE).exists())
    done = list(Run.objects.filter(id__in=ids).order_by("started_at"))
    assert [r.id for r in done] == ids
    assert all(r.status == "passed" and r.tests_passed == 2 for r in done)
    for earlier, later in zip(done, done[1:], strict=False):
        assert later.started_at >= earlier.finished_at  # never two at once under limit 1


def test_cancel_a_running_run_kills_it(tmp_path, running_dispatcher):
    path = write_suite(
        tmp_path / "slow", {"test_slow.py": "import time\n\ndef test_long(): time.sleep(60)\n"}
    )
    suite = Suite.objects.create(name="slow", path=str(path))
    RunConfig.objects.create(suite=suite, name="default", is_default=True, workers=1)
    run = launch.launch(suite)
    wait_until(lambda: run.id in running_dispatcher.pool.running())
    run.refresh_from_db()
    assert running_dispatcher.env.cancel(run)
    wait_until(lambda: Run.objects.get(pk=run.pk).status == "cancelled", timeout=30)
    assert not running_dispatcher.env.cancel(Run.objects.get(pk=run.pk))


STUBBORN = """\
import pathlib, signal, threading


def test_stubborn():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pathlib.Path(__file__).with_name("started").touch()
    threading.Event().wait(120)  # stuck where only a stack can say
"""


@pytest.mark.parametrize("engine", ["fork", "xdist"])
def test_a_run_that_will_not_stop_leaves_its_stacks_in_the_log(tmp_path, engine):
    """Cancelled, it ignores SIGTERM for the pool's whole grace: before SIGKILL each process
    writes where it was (all threads) to the run's log, for whoever must find out why."""
    path = write_suite(tmp_path / "stubborn", {"test_stubborn.py": STUBBORN})
    suite = Suite.objects.create(name="stubborn", path=str(path))
    RunConfig.objects.create(suite=suite, name="default", is_default=True, workers=1)
    with installed(Environment()) as env:
        dispatcher = env.start_dispatcher(max_concurrent=1, poll=0.1)
        dispatcher.pool.grace = 1.0
        run = launch.launch(suite, overrides={"engine": engine})
        log = launch.log_path(run)
        wait_until((path / "started").exists, 120)  # SIGTERM is ignored from now on
        assert env.cancel(Run.objects.get(pk=run.pk))
        wait_until(lambda: Run.objects.get(pk=run.pk).status == "cancelled", timeout=30)
    text = log.read_text()
    assert "most recent call first" in text, text[-3000:]
    assert "line 7 in test_stubborn" in text, text[-3000:]


def test_runs_whose_process_is_gone_become_interrupted(suite):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stale = Run.objects.create(
            suite=suite, status="running", runner_host=launch.HOST, runner_pid=dead.pid
        )
        owned = Run.objects.create(
            suite=suite, status="running", runner_host=launch.HOST, runner_pid=alive.pid
        )
        elsewhere = Run.objects.create(
            suite=suite, status="running", runner_host="other-host", runner_pid=dead.pid
        )
        assert launch.mark_interrupted() == 1
        statuses = dict(Run.objects.values_list("id", "status"))
        assert statuses[stale.id] == "interrupted"
        assert statuses[owned.id] == "running"
        assert statuses[elsewhere.id] == "running"
    finally:
        alive.kill()
        alive.wait()


def test_interpreter_without_the_plugins_is_refused_up_front(suite, tmp_path):
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")],
        check=True,
        timeout=60,
    )
    suite.python = str(tmp_path / "bare" / "bin" / "python")
    suite.save()
    with pytest.raises(launch.LaunchError) as err:
        launch.launch(suite, overrides={"workers": 2})
    assert "pytest" in err.value.message
    assert not Run.objects.exists()


def test_dispatcher_thread_stops_cleanly():
    env = Environment()
    current = env.start_dispatcher(max_concurrent=1, poll=0.1)
    env.stop()
    assert not any(t.name == "ptd-dispatcher" and t.is_alive() for t in threading.enumerate())
    assert env.dispatcher is None and env.pool is None and current.pool.running() == []


def test_silent_outside_runs_are_interrupted_live_ones_are_not(suite, settings):
    from datetime import timedelta

    from django.utils import timezone

    from runs.models import TestResult

    settings.PTD_EXTERNAL_TIMEOUT = 600
    now = timezone.now()
    long_ago = now - timedelta(hours=2)

    def external(last_result_age):
        run = Run.objects.create(
            suite=suite, status="running", trigger="external", started_at=long_ago
        )
        if last_result_age is not None:
            stop = (now - timedelta(seconds=last_result_age)).timestamp()
            TestResult.objects.create(
                run=run,
                nodeid="t.py::a",
                worker="gw0",
                outcome="passed",
                start=stop - 1,
                stop=stop,
                duration=1,
            )
        return run

    silent, quiet_for_long, busy = external(None), external(3600), external(30)
    fresh = Run.objects.create(suite=suite, status="running", trigger="external", started_at=now)
    assert launch.expire_silent_external_runs(now) == 2
    statuses = dict(Run.objects.values_list("id", "status"))
    assert statuses[silent.id] == statuses[quiet_for_long.id] == "interrupted"
    assert statuses[busy.id] == statuses[fresh.id] == "running"
    assert "CI job" in Run.objects.get(pk=silent.pk).message


def test_a_queued_run_starts_as_soon_as_the_slot_frees_not_at_the_next_poll(suite):
    """The wake-up for the next queued run comes once the pool has freed the slot: with a
    poll interval of a minute, a wake-up lost to that race would leave run 2 waiting."""
    wakes: list[tuple[str, list[int]]] = []  # (waking thread, runs holding a slot then)

    class Probe(threading.Event):
        def set(self):
            if env.pool is not None:
                wakes.append((threading.current_thread().name, env.pool.running()))
            super().set()

    env = Environment()
    env.run_queued = Probe()
    install(env)
    current = env.start_dispatcher(max_concurrent=1, poll=60.0)
    try:
        first, second = (launch.launch(suite, trigger="api") for _ in range(2))
        ids = [first.id, second.id]
        wait_until(lambda: not Run.objects.filter(id__in=ids, status__in=Run.ACTIVE).exists(), 30)
        first.refresh_from_db()
        second.refresh_from_db()
        gap = (second.started_at - first.finished_at).total_seconds()
        assert 0 <= gap < 1.0, gap
    finally:
        install(None)
        env.stop()
    # The wake that follows run 1's end (from its pool thread) comes once its slot is free.
    after_first = [running for name, running in wakes if name == f"ptd-run-{first.id}"]
    assert after_first and all(first.id not in running for running in after_first), wakes
    assert current.pool.running() == []
