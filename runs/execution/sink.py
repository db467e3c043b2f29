"""The runner's sink: persists event batches, keeps worker figures live, publishes, finishes.

Called from the pool's threads. Each batch is one transaction with bulk writes, then one
websocket message; the run's final metrics come from runner.metrics over the stored results.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from django.db import close_old_connections, connection, transaction
from django.db.models import Case, F, Max, TextField, Value, When
from django.db.models.functions import Concat, Length
from django.db.models.lookups import LessThan
from django.utils import timezone

from runner import metrics
from runner.pool import RunOutcome
from runs.execution.load_sink import LOAD_EVENTS, LoadSinkMixin
from runs.execution.store import (
    COLLECT_WORKER,
    COUNT_COLUMNS,
    WORKER_MAX,
    ResultRow,
    WorkerDelta,
    add_counts,
    add_to_workers,
    insert_results,
    result_from_event,
)
from runs.execution.timing import add_marks, time_breakdown
from runs.execution.verdict import measured_speedup, status_for
from runs.flaky.quarantine import apply_quarantine
from runs.flaky.recorder import HistoryRecorder, record_run_safely
from runs.live.publish import chunked
from runs.load.verdict import load_status
from runs.models import Run, TestResult, WorkerStat

log = logging.getLogger(__name__)
BATCH_WARNINGS = 50  # distinct warnings kept from one batch of events
WARNINGS_MAX = 64 * 1024  # characters of a run's warnings past which no more are kept

# The events a run's process sends (_ptd_inrun.reporter, the load engine): what the sink
# stores, and what it knows to pass over (session_finish: the run's end comes from its
# process). Ingestion says how many of a batch were of another type (a newer client's).
EVENT_TYPES = frozenset({
    "session_start", "collected", "test", "collect_error", "warning", "internal_error",
    "worker_up", "worker_down", "session_finish", *LOAD_EVENTS,
})  # fmt: skip

# runner.metrics.summarize's figures stored as they are on the Run.
SUMMARY_FIGURES = (
    "wall_seconds", "serial_seconds", "speedup", "efficiency", "balance", "flakiness_rate",
)  # fmt: skip


class DbSink(LoadSinkMixin):
    """Implements runner.pool.Sink on top of the models and the environment's publisher."""

    history_fold = "now"  # finish_run's ``fold``: a run this process ran folds as it ends

    def __init__(self, env):
        self.publisher = env.publisher
        self.history = env.history
        self.env = env
        self.shutting_down = False
        self.loads = {}  # run id -> LoadAggregator of the running load runs

    def run_started(self, run_id: int, pid: int, started_at: float) -> None:
        close_old_connections()
        Run.objects.filter(pk=run_id).update(
            status=Run.Status.RUNNING,
            started_at=datetime.fromtimestamp(started_at, tz=UTC),
        )
        self.publisher.publish(run_id, {"type": "status", "status": Run.Status.RUNNING})

    def events_done(self, run_id: int) -> None:
        """The run's event-reader thread ends: close its database connection now. Left to the
        garbage collector (a connection object is in reference cycles), it stays open for a
        while: a PostgreSQL slot per finished run, and a test database that cannot be dropped."""
        connection.close()

    def handle_events(self, run_id: int, events: list[dict]) -> None:
        """Store a batch: results inserted, worker figures and the run's counts added to in
        the database (no counts in memory), and the batch published once it is committed."""
        began = time.monotonic()
        results: list[ResultRow] = []
        deltas: dict[str, WorkerDelta] = {}
        run_fields: dict = {}
        warnings: list[str] = []
        marks: dict[str, float] = {}  # moments for the run's time breakdown
        for event in events:
            kind = event.get("type")
            if kind in ("session_start", "collected"):
                marks.setdefault(kind, event.get("time"))
            if kind == "test":
                result = result_from_event(run_id, event)
                results.append(result)
                deltas.setdefault(result.worker, WorkerDelta()).add(result)
            elif kind == "collect_error":  # a module that failed to import: show it as an error
                results.append(
                    result_from_event(
                        run_id,
                        {**event, "outcome": "error", "when": "collect", "worker": COLLECT_WORKER},
                    )
                )
            elif kind == "collected":
                run_fields["collected"] = int(event.get("count") or 0)
            elif kind == "session_start" and event.get("workers"):
                run_fields["workers"] = int(event["workers"])
            elif kind == "load_start" and event.get("processes"):
                # A load run's workers are its load processes: its session_start (after it,
                # never later) speaks for the controller alone and says 1.
                run_fields["workers"] = int(event["processes"])
            elif kind in ("warning", "internal_error"):  # degraded, or an event lost: say it
                line = " ".join(str(event.get("message") or "").split())[:1000] + "\n"
                if line not in warnings and len(warnings) < BATCH_WARNINGS:
                    log.warning("run %s: %s", run_id, line.rstrip())
                    warnings.append(line)
            elif kind in ("worker_up", "worker_down"):
                deltas.setdefault(str(event.get("worker"))[:WORKER_MAX], WorkerDelta())
        # The run's counts so far, as finish_run counts them at the end (which overwrites them).
        counts = metrics.count_outcomes([{"outcome": r.outcome} for r in results])
        stats: list[WorkerStat] = []
        # The workers alone are not progress: a load run's load_start publishes its "load" only.
        news = results or deltas or run_fields.keys() - {"workers"}
        publishing = bool(news) and self.publisher.reachable(run_id)
        with transaction.atomic():
            if results:
                insert_results(results)
                add_counts(run_id, counts)
            if deltas:
                stats = add_to_workers(run_id, deltas, read_back=publishing)
            if warnings:  # appended in the database: ingested runs come in several requests
                run_fields["warnings"] = Case(  # each viewer gets them all: not without end
                    When(
                        LessThan(Length("warnings"), WARNINGS_MAX),
                        then=Concat(F("warnings"), Value("".join(warnings))),
                    ),
                    default=F("warnings"),
                    output_field=TextField(),
                )
            if run_fields:
                Run.objects.filter(pk=run_id).update(**run_fields)
            if marks:
                add_marks(run_id, marks)
            if publishing:
                progress = Run.objects.values(*COUNT_COLUMNS.values(), "collected").get(pk=run_id)
                # After the commit (of an outer transaction too: ingestion's): a client that
                # reloads on a message must find what it announces.
                transaction.on_commit(
                    lambda: self.publish_batch(run_id, results, stats, progress), robust=True
                )
        log.debug(
            "run %s: %d events stored in %.1f ms",
            run_id,
            len(events),
            (time.monotonic() - began) * 1000,
        )
        self.batch_stored(counts, deltas, run_fields.get("collected"))
        if any(event.get("type") in LOAD_EVENTS for event in events):
            self.handle_load(run_id, events)

    def batch_stored(self, counts: dict, deltas: dict[str, WorkerDelta], collected) -> None:
        """What a batch added (runner.metrics.count_outcomes, the workers' deltas), for a sink
        that shows progress (run_suite's); the database sink has stored it all already."""

    def run_finished(self, run_id: int, outcome: RunOutcome) -> None:
        try:
            self.finish_load(run_id)
            run = finish_run(
                run_id,
                outcome,
                history=self.history,
                interrupted=self.shutting_down,
                fold=self.history_fold,
            )
            if self.publisher.reachable(run_id):
                self.publisher.publish(run_id, {"type": "finished", "run": run.to_dict()})
        except Exception:
            log.exception("could not finish run %s", run_id)
            Run.objects.filter(pk=run_id, status=Run.Status.RUNNING).update(
                status=Run.Status.ERROR,
                finished_at=timezone.now(),
                message="The dashboard failed to store this run's results (see the server log).",
            )
        finally:
            connection.close()

    def publish_batch(self, run_id: int, results: list[ResultRow], stats: list, progress: dict):
        first, *rest = chunked([live_result(r) for r in results])
        self.publisher.publish(
            run_id,
            {
                "type": "results",
                "results": first,
                "workers": [s.live_dict() for s in stats],
                "progress": {
                    "done": progress["tests_total"],
                    "failed": progress["tests_failed"] + progress["tests_errors"],
                    "collected": progress["collected"],
                },
                "sent_at": time.time(),  # lets clients measure report -> page latency
            },
        )
        for chunk in rest:  # a huge batch (many long tracebacks) in several messages
            self.publisher.publish(
                run_id, {"type": "results", "results": chunk, "sent_at": time.time()}
            )


def live_result(result: ResultRow) -> dict:
    return TestResult.live({key: getattr(result, key) for key in TestResult.FIELDS})


# The Run columns finish_run writes.
FINISH_FIELDS = [
    "status",
    "message",
    "exit_code",
    "log_bytes_cut",
    "finished_at",
    *SUMMARY_FIGURES,
    *COUNT_COLUMNS.values(),
    "tests_flaky",
    "speedup_measured",
    "time_breakdown",
    "history_pending",
]


def finish_run(
    run_id: int,
    outcome: RunOutcome,
    *,
    history: HistoryRecorder | None = None,
    interrupted: bool = False,
    fold: str = "now",
) -> Run:
    """The run's final status, figures and worker rows from its stored results; then its tests
    fold into the flakiness summary: ``fold`` "now", "background" (on ``history``'s thread) or
    "later" (it stays ``history_pending`` for a serving process to catch up on)."""
    run = Run.objects.select_related("suite").get(pk=run_id)
    tests = list(
        TestResult.objects.filter(run_id=run_id).values(
            "nodeid", "worker", "outcome", "duration", "start", "stop", "group"
        )
    )
    # Collection errors count as errors but belong to no worker (they would skew balance).
    executed = [t for t in tests if t["worker"] != COLLECT_WORKER]
    summary = metrics.summarize(executed, outcome.wall_seconds, run.workers or 1)
    summary["tests"]["errors"] += len(tests) - len(executed)
    summary["tests"]["total"] += len(tests) - len(executed)
    status, message = status_for(outcome, interrupted)
    status, message = load_status(run, status, message)
    status, message = apply_quarantine(run, tests, status, message)
    run.status = status
    run.message = message[:5000]
    run.exit_code = outcome.returncode
    run.log_bytes_cut = outcome.log_bytes_cut
    run.finished_at = timezone.now()
    for figure in SUMMARY_FIGURES:
        setattr(run, figure, summary[figure])
    for key, column in {**COUNT_COLUMNS, "flaky": "tests_flaky"}.items():
        setattr(run, column, summary["tests"][key])
    run.speedup_measured = measured_speedup(run)
    run.time_breakdown = time_breakdown(run, executed)
    run.withhold_figures()  # cancelled, timed out, errored, no test run: no speedup (README)
    run.history_pending = run.status in Run.COMPLETE  # cleared by the fold, in its transaction
    with transaction.atomic():
        # Only what finishing decides: a batch stored since the row was read above keeps its
        # warnings and the live messages' count (live_seq) is not set back.
        run.save(update_fields=FINISH_FIELDS)
        WorkerStat.objects.bulk_create(
            [
                WorkerStat(
                    run_id=run_id, worker=w["id"], tests=w["tests"], busy_seconds=w["busy_seconds"]
                )
                for w in summary["per_worker"]
            ],
            update_conflicts=True,
            unique_fields=["run", "worker"],
            update_fields=["tests", "busy_seconds"],
        )
        # Nothing is running any more: a page opened later must not show a "current" test.
        WorkerStat.objects.filter(run_id=run_id).exclude(current_test="").update(current_test="")
    if not run.history_pending or fold == "later":
        return run
    if fold == "background" and history is not None:
        history.record_in_background(run, tests)
    else:
        record_run_safely(run, tests)
    return run


def close_interrupted(run_id: int, message: str, now=None, history=None) -> bool:
    """A running run that can never finish (the process running it is gone, or its CI job
    fell silent) becomes interrupted, with the figures of the results stored so far. False
    when it was no longer running."""
    now = now or timezone.now()
    # finished_at is set while running only by a /finish that claimed the run (finish_external).
    claimed = Run.objects.filter(
        pk=run_id, status=Run.Status.RUNNING, finished_at__isnull=True
    ).update(status=Run.Status.INTERRUPTED, finished_at=now, message=message)
    if not claimed:
        return False
    run = Run.objects.get(pk=run_id)
    last_stop = TestResult.objects.filter(run_id=run_id).aggregate(last=Max("stop"))["last"]
    wall = 0.0
    if run.started_at and last_stop:
        wall = max(0.0, last_stop - run.started_at.timestamp())
    outcome = RunOutcome(run_id, None, wall, "interrupted", message)
    finish_run(run_id, outcome, history=history, fold="background")
    return True
