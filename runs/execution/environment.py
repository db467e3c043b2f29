"""One process's wiring: the pool, the dispatcher, the sink, the publisher and the history thread.

`serve` builds one with a dispatcher and binds the server loop, `run_suite` builds one around its
own progress sink, and tests build their own; nothing else holds these objects in module globals.
Pages and API views reach the one of their process through `current()` (set by `install()`;
without one, a plain environment that runs nothing: a request can still queue and cancel).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from runner import procs
from runner.pool import Pool, RunOutcome
from runner.warm import Zygotes
from runs.execution.sink import DbSink, finish_run
from runs.flaky.recorder import HistoryRecorder
from runs.live.publish import Publisher
from runs.models import Run


class Environment:
    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        sink: Callable[[Environment], DbSink] | None = None,
        publisher: Publisher | None = None,
    ):
        self.publisher = publisher or Publisher(loop)
        self.history = HistoryRecorder()
        # Set whenever a run is queued (after its commit) or a slot frees: the dispatcher wakes.
        self.run_queued = threading.Event()
        self.sink: DbSink = (sink or DbSink)(self)
        self.pool: Pool | None = None
        self.dispatcher = None

    def start_pool(
        self,
        max_concurrent: int | None = None,
        warm_start: bool | None = None,
        zygotes: Zygotes | None = None,
    ) -> Pool:
        self.pool = Pool(
            self.sink,
            max_concurrent=max_concurrent or settings.PTD_MAX_CONCURRENT_RUNS,
            warm_start=settings.PTD_WARM_START if warm_start is None else warm_start,
            zygotes=zygotes,
            # Woken once the slot is free (not when the sink is done: the pool frees the slot
            # after that, and a dispatcher woken in between saw no room and slept a poll).
            on_slot_free=self.run_queued.set,
        )
        return self.pool

    def start_dispatcher(self, max_concurrent: int | None = None, poll: float | None = None):
        """Serve's runner: runs left running by a dead server end, then queued runs start here."""
        from runs.execution import launch
        from runs.execution.dispatcher import Dispatcher

        launch.mark_interrupted(self.history)
        # What the runs of a server that died left running (their cookie's owner is gone) ends
        # now: a cold run's children, anything a warm run's zygote could not reach.
        procs.end_orphans()
        self.start_pool(max_concurrent)
        self.dispatcher = Dispatcher(self, poll).start()
        return self.dispatcher

    def cancel(self, run: Run) -> bool:
        """Cancel a queued or running run (its processes, when this process runs it)."""
        from runs.execution.dispatcher import cancel

        return cancel(run, self.pool)

    def finish_external(
        self, run_id: int, returncode: int, wall: float, message: str
    ) -> Run | None:
        """An outside run's end (ingestion's /finish), finished like one run here. The CI job
        waits on this answer: the flakiness summary folds on the history thread.

        None when the run is no longer running: the run is claimed first (its ``finished_at``
        set while still running, in one conditional UPDATE), so two /finish calls at once, or
        /finish and the silent-run sweeper (``close_interrupted`` claims the same way), never
        both finish it, and its tests never fold into the flakiness summary twice."""
        running = Run.objects.filter(pk=run_id, status=Run.Status.RUNNING)
        if not running.filter(finished_at__isnull=True).update(finished_at=timezone.now()):
            return None
        outcome = RunOutcome(run_id, returncode, wall, reason=None, message=message)
        try:
            run = finish_run(run_id, outcome, history=self.history, fold="background")
        except BaseException:
            running.update(finished_at=None)  # unclaimed: the sweeper can still close it
            raise
        if self.publisher.reachable(run_id):
            finished = {"type": "finished", "run": run.to_dict()}
            transaction.on_commit(lambda: self.publisher.publish(run_id, finished))
        return run

    def stop(self) -> None:
        """Stop the dispatcher and the pool (their runs become interrupted), then the history."""
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None
        elif self.pool is not None:
            self.pool.shutdown(cancel_running=True)
        self.pool = None
        self.publisher.bind_loop(None)
        self.history.shutdown()


_installed: Environment | None = None
_install_lock = threading.Lock()


def current() -> Environment:
    """This process's environment (a plain one, made on first use, when none was installed)."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = Environment()
        return _installed


def install(env: Environment | None) -> Environment | None:
    """Make ``env`` this process's environment; returns the one it replaces."""
    global _installed
    with _install_lock:
        previous, _installed = _installed, env
    return previous


@contextlib.contextmanager
def installed(env: Environment) -> Iterator[Environment]:
    """``with installed(Environment(...)) as env:`` this process's for the block, then stopped."""
    previous = install(env)
    try:
        yield env
    finally:
        install(previous)
        env.stop()
