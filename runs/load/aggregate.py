"""Merging a load run's events into its stored statistics, as they arrive.

Each engine process sends a ``load_tick`` at most once a second with what happened since its
previous one (per test and per endpoint, ``runner.loadstats.Entry`` dicts). ``LoadAggregator``
(one per running load run, fed by the sink from the run's event-reader thread) merges the ticks
of every process into one bucket per run-second and into cumulative per-test / per-endpoint
entries. A second is written once every process had time to report it (``LAG`` seconds after
the newest second seen) or when the load ends; a tick later still is merged into its stored
row. A second every process has ticked for (``processes`` of ``load_start``) is written at
once. Each written second re-evaluates the thresholds on the cumulative figures, and a failed
``abort`` threshold is reported to the caller, which stops the run.

What ``feed`` returns is the list of websocket messages for the live page, one ``load``
message per batch of written seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from runner.loadstats import Entry
from runs.load import thresholds as th
from runs.load.queries import errors_of, stats_of
from runs.models import LoadEntry, LoadError, LoadSecond, LoadSummary, Run
from runs.models.load import ERROR_MAX, NAME_MAX, TRACEBACK_MAX

LAG = 2  # seconds a second stays open for the other processes' ticks
MAX_SECOND = 10**8  # over three years of load: what an integer column holds everywhere
MAX_GAP = 60  # seconds a process may skip and still be counted through (LoadAggregator.tick)
LOAD_EVENTS = ("load_start", "load_tick", "load_error", "load_stop")


@dataclass
class Bucket:
    """One run-second being merged: each process's users, and its iterations and requests."""

    users: dict[str, int] = field(default_factory=dict)
    ticked_at: float = 0.0  # the latest tick's time (engine clock): the page's delay from it
    tests: Entry = field(default_factory=Entry)
    requests: Entry = field(default_factory=Entry)

    def fill(self, row: LoadSecond) -> LoadSecond:
        row.users = sum(self.users.values())
        row.iterations = self.tests.count
        row.failures = self.tests.failures + self.tests.exceptions
        row.requests = self.requests.count
        row.request_failures = self.requests.failures + self.requests.exceptions
        row.total_ms = self.tests.total_ms
        row.set_histogram(self.tests.histogram)
        return row


class LoadAggregator:
    def __init__(self, run_id: int, texts: list[str] | None = None):
        self.run_id = run_id
        self.thresholds = th.parse_all(texts or [])
        self.summary = LoadSummary(run_id=run_id)
        self.open: dict[int, Bucket] = {}
        self.written: set[int] = set()
        self.newest = -1
        self.process_newest: dict[str, int] = {}  # each process's latest second ticked
        self.process_users: dict[str, int] = {}  # each process's users at its latest tick
        self.total = Entry()
        self.entries: dict[tuple[str, str], Entry] = {}
        self.errors: dict[tuple[str, str], dict] = {}
        self.evaluated: list[dict] = []
        self.abort: dict | None = None  # the failed abort threshold, once

    @classmethod
    def for_run(cls, run: Run) -> LoadAggregator:
        return cls(run.pk, run.config_snapshot.get("thresholds") or [])

    # -- events ------------------------------------------------------------------------------

    def feed(self, events: list[dict]) -> list[dict]:
        """Merge a batch of events (others are ignored); store what is due; return the live
        messages to publish after the commit."""
        stopping = False
        for event in events:
            kind = event.get("type")
            if kind == "load_start":
                self.start(event)
            elif kind == "load_tick":
                self.tick(event)
            elif kind == "load_error":
                self.error(event)
            elif kind == "load_stop":
                self.summary.stop_reason = str(event.get("reason") or "")[:20]
                self.summary.stopped = _float(event.get("time"), self.summary.stopped)
                stopping = True
        # A second is complete once every process ticked for it (or later): written at once,
        # so the page is at most a tick behind; a process that stays silent holds it LAG s.
        heard = self.summary.processes and len(self.process_newest) >= self.summary.processes
        complete = min(self.process_newest.values()) if heard else -1
        due = sorted(s for s in self.open if stopping or s <= complete or s <= self.newest - LAG)
        return self.store(due)

    def start(self, event: dict) -> None:
        self.summary.users = _int(event.get("users"))
        self.summary.processes = _int(event.get("processes"))
        self.summary.started = _float(event.get("time"), None)

    def tick(self, event: dict) -> None:
        second = min(max(0, _int(event.get("second"))), MAX_SECOND)
        process = str(event.get("process") or "p0")
        previous = self.process_newest.get(process, -1)
        if 0 <= previous < second - 1 <= previous + MAX_GAP:
            # Its ticker was starved of CPU past a whole second (the tick is dated a second
            # later): its users were there all the same in the seconds it skipped, and a
            # second no process ticked for is no hole in the series. A longer gap is a clock
            # that jumped, not seconds to make up.
            for skipped in range(previous + 1, second):
                gap = self.open.setdefault(skipped, Bucket())
                gap.users.setdefault(process, self.process_users.get(process, 0))
        bucket = self.open.setdefault(second, Bucket())
        bucket.users[process] = self.process_users[process] = _int(event.get("users"))
        bucket.ticked_at = max(bucket.ticked_at, _float(event.get("time"), 0.0))
        for kind, key, into in (
            ("test", "tests", bucket.tests),
            ("endpoint", "requests", bucket.requests),
        ):
            for name, data in (event.get(key) or {}).items():
                entry = Entry.from_dict(data)
                into.merge(entry)
                self.entries.setdefault((kind, str(name)[:NAME_MAX]), Entry()).merge(entry)
                if kind == "test":
                    self.total.merge(entry)
        self.newest = max(self.newest, second)
        self.process_newest[process] = max(self.process_newest.get(process, -1), second)
        if self.summary.started is not None:
            self.summary.stopped = max(self.summary.stopped or 0.0, _float(event.get("time"), 0.0))

    def error(self, event: dict) -> None:
        key = (str(event.get("name") or "")[:NAME_MAX], str(event.get("error") or "")[:ERROR_MAX])
        known = self.errors.setdefault(
            key,
            {
                "kind": str(event.get("kind") or "exception")[:10],
                "count": 0,
                "traceback": str(event.get("traceback") or "")[:TRACEBACK_MAX],
            },
        )
        known["count"] += max(0, _int(event.get("count"), 1))

    # -- storing -----------------------------------------------------------------------------

    def store(self, due: list[int]) -> list[dict]:
        if not due and not self.errors:
            return []
        buckets = [self.open.pop(second) for second in due]
        ticked_at = max((b.ticked_at for b in buckets), default=None)
        rows = [self.second_row(second, b) for second, b in zip(due, buckets, strict=True)]
        errors, self.errors = self.errors, {}
        with transaction.atomic():
            if rows:
                LoadSecond.objects.bulk_create(
                    rows,
                    update_conflicts=True,
                    unique_fields=["run", "second"],
                    update_fields=[
                        f.name
                        for f in LoadSecond._meta.concrete_fields
                        if f.name not in ("id", "run", "second")
                    ],
                )
                self.written.update(due)
                self.evaluate()
                self.save_entries()
            self.save_errors(errors)
        return [{**self.message(rows, errors), "ticked_at": ticked_at}]

    def second_row(self, second: int, bucket: Bucket) -> LoadSecond:
        if second in self.written:  # a tick later than LAG: merge into the stored row
            row = LoadSecond.objects.filter(run_id=self.run_id, second=second).first()
            if row is not None:
                bucket.tests.merge(
                    Entry.from_dict(
                        {
                            "count": row.iterations,
                            "failures": row.failures,
                            "total_ms": row.total_ms,
                            "hist": row.hist,
                        }
                    )
                )
                bucket.requests.merge(Entry(count=row.requests, failures=row.request_failures))
                bucket.users["stored"] = row.users
        return bucket.fill(LoadSecond(run_id=self.run_id, second=second))

    def seconds(self) -> float:
        if self.summary.duration_seconds:
            return self.summary.duration_seconds
        return float(max(self.written, default=0) + 1)

    def figures_of(self, target: str) -> dict | None:
        if not target:
            return self.total.figures() if self.total.count else None
        for kind in ("test", "endpoint"):
            entry = self.entries.get((kind, target))
            if entry is not None:
                return entry.figures()
        return None

    def evaluate(self, final: bool = False) -> list[dict]:
        seconds = self.seconds()
        self.evaluated = th.evaluate(self.thresholds, self.figures_of, seconds)
        if not final and self.abort is None:
            for threshold, result in zip(self.thresholds, self.evaluated, strict=True):
                if not result["passed"] and threshold.may_abort_with(
                    self.figures_of(threshold.target)
                ):
                    self.abort = result
                    self.summary.aborted_by = result["expr"][:400]
                    break
        self.summary.thresholds = self.evaluated
        return self.evaluated

    def save_entries(self) -> None:
        rows = [LoadEntry(run_id=self.run_id, kind="total", name="", data=self.total.to_dict())]
        rows += [
            LoadEntry(run_id=self.run_id, kind=kind, name=name, data=entry.to_dict())
            for (kind, name), entry in self.entries.items()
        ]
        LoadEntry.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["run", "kind", "name"],
            update_fields=["data"],
        )
        self.save_summary()

    def save_summary(self) -> None:
        summary = self.summary
        values = {
            f.name: getattr(summary, f.name)
            for f in LoadSummary._meta.concrete_fields
            if f.name not in ("id", "run")
        }
        LoadSummary.objects.update_or_create(run_id=self.run_id, defaults=values)

    def save_errors(self, errors: dict) -> None:
        for (name, error), data in errors.items():
            row, created = LoadError.objects.get_or_create(
                run_id=self.run_id,
                name=name,
                error=error,
                defaults={
                    "kind": data["kind"],
                    "count": data["count"],
                    "traceback": data["traceback"],
                },
            )
            if not created:
                LoadError.objects.filter(pk=row.pk).update(count=row.count + data["count"])

    def finish(self) -> list[dict]:
        """The load is over (the run's process ended): every open second, the entries and the
        thresholds as finally evaluated. Safe to call once after any number of ``feed``."""
        messages = self.store(sorted(self.open))
        with transaction.atomic():
            self.evaluate(final=True)
            self.save_entries()
        return messages

    def message(self, rows: list[LoadSecond], errors: dict) -> dict:
        """The live page's ``load`` message: the new seconds, the stats and thresholds so far,
        and the errors when some grew."""
        message = {
            "type": "load",
            "seconds": [row.to_dict() for row in rows],
            "stats": stats_of(self.total, self.entries, self.seconds()),
            "thresholds": self.evaluated,
        }
        if errors:  # their totals, as stored
            message["errors"] = errors_of(self.run_id)
        return message


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value, default):
    try:
        return float(value)
    except (TypeError, ValueError):
        return default
