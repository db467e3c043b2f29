"""The dispatcher of a serving process: picks queued runs up and feeds them to its pool.

Runs are queued in the database (from the UI, the API or another process); the dispatcher
claims them atomically in FIFO order as the pool has room, so no run is lost or run twice.
Each tick it also hands the runs other processes left unfolded (``run_suite``'s) to the history
thread, which folds them into the flakiness summary.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from runner.pool import Pool
from runs.execution import launch
from runs.execution.fleet import FleetRunner
from runs.models import Run

log = logging.getLogger(__name__)
SWEEP_SECONDS = 60.0  # how often silent outside runs are looked for
FLEET_POLL = 0.25  # seconds between ticks while runs over several machines are going


class Dispatcher:
    """Claims queued runs while the environment's pool has room; stops cancelled ones."""

    def __init__(self, env, poll: float | None = None):
        self.env = env
        self.pool = env.pool
        self.poll = poll if poll is not None else settings.PTD_SERVE_POLL_SECONDS
        self._stop = threading.Event()
        self._last_sweep = float("-inf")
        self.fleet = FleetRunner(env)
        self._fleet_active = False
        self._thread = threading.Thread(target=self._loop, name="ptd-dispatcher", daemon=True)

    def start(self) -> Dispatcher:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.env.run_queued.wait(
                min(self.poll, FLEET_POLL) if self._fleet_active else self.poll
            )
            self.env.run_queued.clear()
            if self._stop.is_set():
                break
            try:
                close_old_connections()
                self.dispatch()
                self.cancel_requested()
                self._fleet_active = self.fleet.tick()
                if Run.objects.filter(history_pending=True).exists():
                    self.env.history.catch_up_in_background()
                if time.monotonic() - self._last_sweep > SWEEP_SECONDS:
                    self._last_sweep = time.monotonic()
                    launch.expire_silent_external_runs(history=self.env.history)
            except Exception:
                log.exception("dispatcher loop failed; retrying")
        connection.close()

    def dispatch(self) -> int:
        started = 0
        while self.pool.free_slots() > 0 and not self._stop.is_set():
            run = launch.claim_next()
            if run is None:
                break
            self.start_run(self.pool, run)
            started += 1
        return started

    def cancel_requested(self) -> None:
        """Runs cancelled in the database by another process: stop their processes here."""
        for run_id in self.pool.running():
            status = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
            if status == Run.Status.CANCELLED:
                self.pool.cancel(run_id)

    @staticmethod
    def start_run(pool: Pool, run: Run) -> None:
        if run.config_snapshot.get("fleet"):  # over several machines: the fleet tick runs it
            return
        try:
            spec = launch.build_spec(run)
        except Exception as exc:
            log.exception("could not prepare run %s", run.id)
            Run.objects.filter(pk=run.pk).update(
                status=Run.Status.ERROR,
                finished_at=timezone.now(),
                message=f"Could not prepare the run: {exc}",
            )
            return
        pool.submit(spec)

    def stop(self) -> None:
        self._stop.set()
        self.env.run_queued.set()
        self.env.sink.shutting_down = True
        self.pool.shutdown(cancel_running=True)
        self._thread.join(timeout=10)


def cancel(run: Run, pool: Pool | None = None) -> bool:
    """Cancel a queued or running run. Returns False when it had already finished."""
    if run.status == Run.Status.QUEUED:
        done = Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
            status=Run.Status.CANCELLED, finished_at=timezone.now(), message="Cancelled."
        )
        if done:
            return True
        run.refresh_from_db()
    if run.status != Run.Status.RUNNING:
        return False
    if pool is not None and pool.cancel(run.id):
        # Its processes end within the pool's grace period: answer with the final state
        # (a CI's `ptd cancel` then sees "cancelled", not "running").
        pool.wait(run.id, timeout=pool.grace + 5.0)
        return True
    # Owned by another process (or an external CI run): mark it; a dispatcher owning the
    # process stops it on its next tick, and its finishing figures then complete the row.
    return bool(
        Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).update(
            status=Run.Status.CANCELLED, message="Cancelled.", finished_at=timezone.now()
        )
    )
