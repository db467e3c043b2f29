"""Flakiness detection and the per-test summary (README: Comparing runs, CI).

Rules:
- within a run, a test (its base node id: pytest-repeat's ``[i-N]`` and loadgroup's ``@name``
  stripped) is flaky when it has both a passing and a failing attempt (``rerun`` attempts of
  pytest-rerunfailures are failing attempts);
- across runs, it is flaky when it passed in one run and failed in another on the same commit;
- a test that only ever fails is failing, not flaky; skips and xfails are neither.

``record_run`` folds one finished run into the suite's TestStat rows with a fixed number of
queries (one read, one bulk upsert), whatever the number of tests. A finished run that is not
folded at once carries ``Run.history_pending`` until ``catch_up`` folds it: ``run_suite`` (a
one-shot command in a CI job, which waits for it to exit) leaves its run to a serving process,
whose dispatcher catches up within a second of seeing it (README: Running a suite from a
terminal).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from runner.metrics import FAILING, PASSING, base_nodeid
from runs.models import Run, Suite, TestResult, TestStat

log = logging.getLogger(__name__)

MAX_COMMITS = 50  # commits remembered per test for the same-commit rule
# Columns folded by record_run (FKs by their column), written with one raw upsert.
COLUMNS = [
    "runs_seen",
    "runs_failed",
    "runs_flaky",
    "flip_count",
    "first_flaky_at",
    "last_flip_at",
    "last_flip_run_id",
    "first_seen_at",
    "last_seen_at",
    "last_run_id",
    "last_outcome",
    "fail_rate",
    "mean_duration",
    "recent",
    "commits",
    "by_workers",
    "by_worker_id",
]
JSON_COLUMNS = frozenset({"recent", "commits", "by_workers", "by_worker_id"})
DATE_COLUMNS = frozenset({"first_flaky_at", "last_flip_at", "first_seen_at", "last_seen_at"})
PASSED, FAILED, FLAKY, SKIPPED = "passed", "failed", "flaky", "skipped"


# Detection over one run's attempts ---------------------------------------------------------


def aggregate(tests: Iterable[Mapping[str, Any]]) -> dict[str, dict]:
    """Per base node id: attempts, passes, failures, duration, and per-worker attempts/failures.

    Only attempts that passed or failed count; skipped and xfailed attempts are neither.
    """
    out: dict[str, dict] = {}
    for t in tests:
        base = base_nodeid(t["nodeid"])
        entry = out.get(base)
        if entry is None:
            entry = out[base] = {
                "attempts": 0,
                "passes": 0,
                "failures": 0,
                "duration": 0.0,
                "workers": {},
            }
        outcome = t.get("outcome")
        if outcome in PASSING:
            entry["passes"] += 1
        elif outcome in FAILING:
            entry["failures"] += 1
        else:
            continue
        entry["attempts"] += 1
        entry["duration"] += float(t.get("duration") or 0.0)
        worker = t.get("worker") or "gw0"
        counts = entry["workers"].setdefault(worker, [0, 0])
        counts[0] += 1
        counts[1] += outcome in FAILING
    return out


def run_outcome(entry: Mapping[str, int]) -> str:
    if entry["passes"] and entry["failures"]:
        return FLAKY
    if entry["failures"]:
        return FAILED
    if entry["passes"]:
        return PASSED
    return SKIPPED


def _commit_mark(outcome: str) -> str:
    return {PASSED: "p", FAILED: "f", FLAKY: "pf"}[outcome]


def _add(table: dict, key: str, attempts: int, failures: int) -> None:
    a, f = table.get(key, (0, 0))
    table[key] = [a + attempts, f + failures]


def fold(stat: TestStat, run: Run, entry: Mapping[str, Any], when) -> None:
    """Fold one run's attempts of one test into its summary (in memory)."""
    outcome = run_outcome(entry)
    flipped = outcome == FLAKY
    if run.commit and outcome != SKIPPED:
        commits = dict(stat.commits or {})
        seen = commits.pop(run.commit, "")
        mark = _commit_mark(outcome)
        if seen and any(m not in seen for m in mark):
            flipped = True  # passed and failed on the same commit, in different runs
        commits[run.commit] = "".join(m for m in "pf" if m in seen or m in mark)
        while len(commits) > MAX_COMMITS:
            commits.pop(next(iter(commits)))
        stat.commits = commits
    if outcome != SKIPPED:
        previous = stat.runs_seen
        stat.runs_seen = previous + 1
        mean = entry["duration"] / entry["attempts"]
        stat.mean_duration = (
            mean
            if not previous or stat.mean_duration is None
            else (stat.mean_duration * previous + mean) / (previous + 1)
        )
        by_workers = dict(stat.by_workers or {})
        _add(by_workers, str(run.workers or 1), entry["attempts"], entry["failures"])
        stat.by_workers = by_workers
        by_worker_id = dict(stat.by_worker_id or {})
        for worker, (attempts, failures) in entry["workers"].items():
            _add(by_worker_id, worker, attempts, failures)
        stat.by_worker_id = by_worker_id
    stat.runs_failed += outcome in (FAILED, FLAKY)
    stat.runs_flaky += outcome == FLAKY
    if flipped:
        stat.flip_count += 1
        stat.first_flaky_at = stat.first_flaky_at or when
        stat.last_flip_at = when
        stat.last_flip_run_id = run.id
    stat.first_seen_at = stat.first_seen_at or when
    stat.last_seen_at = when
    stat.last_run_id = run.id
    stat.last_outcome = outcome
    recent = list(stat.recent or [])
    recent.append([run.id, outcome, entry["attempts"], entry["failures"], run.workers or 1])
    recent = recent[-TestStat.RECENT_RUNS :]
    stat.recent = recent
    attempts = sum(r[2] for r in recent)
    stat.fail_rate = round(sum(r[3] for r in recent) / attempts, 4) if attempts else None


def record_run(run: Run, tests: Iterable[Mapping[str, Any]] | None = None) -> int:
    """Fold a finished run into its suite's per-test summary now; returns the rows written.

    Runs that did not complete (error, cancelled...) are not counted; a run already folded
    in is not counted twice. The run's ``history_pending`` is cleared in the same transaction.
    """
    if run.status not in Run.COMPLETE:
        return 0
    with transaction.atomic():
        Run.objects.filter(pk=run.id, history_pending=True).update(history_pending=False)
        return _fold(run, tests)


def catch_up(suite_id: int | None = None, tests: Mapping[int, list] | None = None) -> int:
    """Fold the runs waiting for it (``history_pending``), oldest first, each in a transaction
    of its own; ``tests``: results already in memory, by run id. Returns the runs folded.

    Every fold goes through here (or ``record_run``), so a suite's runs fold in the order they
    were made whoever folds them: the last outcome, the recent runs and the commits stay right.
    A run is claimed by clearing its flag inside its transaction: two processes catching up at
    once never fold one run twice (the second finds it claimed, or waits on the first's lock).
    """
    pending = Run.objects.filter(history_pending=True)
    if suite_id is not None:
        pending = pending.filter(suite_id=suite_id)
    folded = 0
    for run_id in pending.order_by("created_at", "id").values_list("id", flat=True):
        try:
            with transaction.atomic():
                if not Run.objects.filter(pk=run_id, history_pending=True).update(
                    history_pending=False
                ):
                    continue  # another process folded it meanwhile
                run = Run.objects.get(pk=run_id)
                _fold(run, (tests or {}).get(run_id))
                folded += 1
        except Exception:
            # Rolled back, so still waiting: a fold that fails would fail again at every
            # dispatcher tick. Said once and let go; the flaky page's Rebuild recomputes all.
            log.exception("could not fold run %s into the flakiness summary", run_id)
            Run.objects.filter(pk=run_id).update(history_pending=False)
    return folded


def pending_runs(suite: Suite) -> int:
    """How many of a suite's finished runs the summary does not hold yet (for the pages)."""
    return Run.objects.filter(suite=suite, history_pending=True).count()


def _fold(run: Run, tests: Iterable[Mapping[str, Any]] | None) -> int:
    if run.status not in Run.COMPLETE:
        return 0
    if tests is None:
        tests = (
            TestResult.objects.filter(run_id=run.id)
            .order_by()
            .values("nodeid", "worker", "outcome", "duration")
        )
    per_test = aggregate(tests)
    if not per_test:
        return 0
    when = run.finished_at or run.created_at or timezone.now()
    # Plain rows, not model instances: building and saving 10,000 models costs seconds.
    stats = read_rows(run.suite_id, list(per_test) if len(per_test) <= 500 else None)
    rows = []
    for nodeid, entry in per_test.items():
        stat = stats.get(nodeid)
        if stat is None:
            stat = SimpleNamespace(**dict.fromkeys(COLUMNS), nodeid=nodeid)
            stat.runs_seen = stat.runs_failed = stat.runs_flaky = stat.flip_count = 0
        elif stat.recent and any(r[0] == run.id for r in stat.recent):
            continue  # already folded in
        fold(stat, run, entry, when)
        rows.append(stat)
    upsert(run.suite_id, rows)
    return len(rows)


def _table() -> str:
    return connection.ops.quote_name(TestStat._meta.db_table)


def _json(value):
    return json.loads(value) if isinstance(value, str | bytes) else value


def read_rows(suite_id: int, nodeids: list[str] | None) -> dict[str, SimpleNamespace]:
    """A suite's summaries as plain rows, locked (PostgreSQL) until the transaction ends.

    Dates stay in the database's own representation and are written back as they came.
    """
    qn = connection.ops.quote_name
    # Only constant, quoted identifiers are formatted in; values are parameters.
    sql = f"SELECT {', '.join(qn(c) for c in ['nodeid', *COLUMNS])} FROM {_table()} WHERE "  # noqa: S608
    sql += f"{qn('suite_id')} = %s"
    params: list = [suite_id]
    if nodeids is not None:
        sql += f" AND {qn('nodeid')} IN ({', '.join(['%s'] * len(nodeids))})"
        params += nodeids
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    out = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for values in cursor.fetchall():
            stat = SimpleNamespace(nodeid=values[0], **dict(zip(COLUMNS, values[1:], strict=True)))
            for column in JSON_COLUMNS:
                setattr(stat, column, _json(getattr(stat, column)))
            out[stat.nodeid] = stat
    return out


def upsert(suite_id: int, rows: list) -> None:
    """INSERT ... ON CONFLICT (suite, nodeid) DO UPDATE, with executemany (SQLite, PostgreSQL).

    Raw SQL on purpose: tests/benchmarks/bench_flaky.py (10,000 tests, budget 1 s) measured
    0.49-0.55 s of CPU (first run) and 0.63-0.67 s (update) this way, against 1.37-1.43 s and
    1.78-1.92 s with TestStat instances and bulk_create(update_conflicts=True) (SQLite, 2 cores).
    """
    if not rows:
        return
    qn = connection.ops.quote_name
    json_cast = "::jsonb" if connection.vendor == "postgresql" else ""
    columns = ["suite_id", "nodeid", "quarantined", "quarantine_reason", *COLUMNS]
    marks = ", ".join("%s" + (json_cast if c in JSON_COLUMNS else "") for c in columns)
    updates = ", ".join(f"{qn(c)} = EXCLUDED.{qn(c)}" for c in COLUMNS)
    sql = (
        f"INSERT INTO {_table()} ({', '.join(qn(c) for c in columns)}) VALUES ({marks}) "  # noqa: S608
        f"ON CONFLICT ({qn('suite_id')}, {qn('nodeid')}) DO UPDATE SET {updates}"
    )
    adapt = connection.ops.adapt_datetimefield_value
    adapted: dict = {}

    def date(v):
        if not isinstance(v, datetime):
            return v  # None, or the database's own value read back unchanged
        if v not in adapted:
            adapted[v] = adapt(v)
        return adapted[v]

    dumps = json.dumps
    params = [
        (
            suite_id,
            s.nodeid,
            False,
            "",
            s.runs_seen,
            s.runs_failed,
            s.runs_flaky,
            s.flip_count,
            date(s.first_flaky_at),
            date(s.last_flip_at),
            s.last_flip_run_id,
            date(s.first_seen_at),
            date(s.last_seen_at),
            s.last_run_id,
            s.last_outcome,
            s.fail_rate,
            s.mean_duration,
            dumps(s.recent or []),
            dumps(s.commits or {}),
            dumps(s.by_workers or {}),
            dumps(s.by_worker_id or {}),
        )  # fmt: skip
        for s in rows
    ]
    with connection.cursor() as cursor:
        for start in range(0, len(params), 2000):
            cursor.executemany(sql, params[start : start + 2000])


def rebuild(suite: Suite) -> int:
    """Recompute a suite's summary from every stored run, oldest first; keeps quarantines."""
    with transaction.atomic():
        TestStat.objects.filter(suite=suite, quarantined=False).delete()
        # Every folded column back to its model default: an empty summary, quarantine kept.
        fields = {f.attname: f for f in TestStat._meta.concrete_fields}
        TestStat.objects.filter(suite=suite).update(**{c: fields[c].get_default() for c in COLUMNS})
        Run.objects.filter(suite=suite, status__in=Run.COMPLETE).update(history_pending=True)
        catch_up(suite.id)
    return TestStat.objects.filter(suite=suite).count()
