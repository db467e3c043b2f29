"""The sink's load-mode part (issue #16): a load run's ticks merged and stored as they come
(runs.load.aggregate), the seconds written published to the live page, and the run stopped when
an ``abort`` threshold fails."""

from __future__ import annotations

import logging
import time

from runs.load.aggregate import LOAD_EVENTS, LoadAggregator
from runs.models import Run

log = logging.getLogger(__name__)

__all__ = ["LOAD_EVENTS", "LoadSinkMixin"]


class LoadSinkMixin:
    """Mixed into DbSink, which gives ``publisher``, ``env`` and ``loads`` (run id ->
    LoadAggregator, one per running load run, used from that run's threads in turn)."""

    loads: dict[int, LoadAggregator]

    def handle_load(self, run_id: int, events: list[dict]) -> None:
        """Merge a load run's ticks (runs.load.aggregate), publish the seconds written, and stop
        the run when an ``abort`` threshold failed (the engine ends gracefully on SIGTERM)."""
        aggregator = self.loads.get(run_id)
        if aggregator is None:
            aggregator = self.loads[run_id] = LoadAggregator.for_run(Run.objects.get(pk=run_id))
        aborting = aggregator.abort is None
        messages = aggregator.feed(events)
        self.publish_load(run_id, messages)
        if aborting and aggregator.abort is not None:
            expr = aggregator.abort["expr"]
            text = f"Stopping early: the abort threshold {expr} failed."
            log.warning("run %s: %s", run_id, text)
            Run.objects.filter(pk=run_id, status=Run.Status.RUNNING).update(message=text)
            self.publisher.publish(run_id, {"type": "message", "message": text})
            pool = getattr(self.env, "pool", None)
            if pool is not None:
                pool.cancel(run_id)

    def publish_load(self, run_id: int, messages: list[dict]) -> None:
        if messages and self.publisher.reachable(run_id):
            for message in messages:
                self.publisher.publish(run_id, {**message, "sent_at": time.time()})

    def finish_load(self, run_id: int) -> None:
        """The load run's process ended: its last seconds and final thresholds are stored
        before finish_run reads them for the run's status."""
        aggregator = self.loads.pop(run_id, None)
        if aggregator is not None:
            self.publish_load(run_id, aggregator.finish())
