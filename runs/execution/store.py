"""A batch's SQL: results inserted, worker and run figures added to, in a few statements.

The sink (``runs.execution.sink``) stores every batch of events through these: one
``executemany`` for the results, one for the workers' rows, one UPDATE of the run's counts.
Raw SQL where the ORM cost more than the statement (measured per batch of ~100 results on
SQLite: the ORM's updates with F/Least/Coalesce expressions took 4-6 ms of CPU to build, the
statements themselves well under 1 ms), with identifiers quoted by the backend and every
value a parameter.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

from _ptd_inrun.output import cut, storable
from django.conf import settings
from django.db import connection

from runs.models import Run, TestResult, WorkerStat

LONGREPR_MAX = 4000
OUTPUT_MAX = 2 * settings.PTD_MAX_OUTPUT_PER_TEST + 200  # characters of a stream (cap: bytes)
WORKER_MAX = 64  # TestResult.worker: "AGENT/gwN" on runs over several machines
COLLECT_WORKER = "-"  # the "worker" of a collection error: none
# runner.metrics.count_outcomes' keys -> the Run columns holding them.
COUNT_COLUMNS = {
    "total": "tests_total",
    "passed": "tests_passed",
    "failed": "tests_failed",
    "skipped": "tests_skipped",
    "errors": "tests_errors",
}


# The NOT NULL columns of a new worker row, at their model defaults (the database has none).
NEW_WORKER_DEFAULTS = {
    name: WorkerStat._meta.get_field(name).get_default()
    for name in ("tests", "busy_seconds", "crashed", "current_test")
}


# TestResult's columns are plain text and numbers (tests/test_models.py checks it), so rows go
# to the database as they are, in one executemany: bulk_create compiled SQL for every 500 rows
# and prepared each value through its field, 0.34 s of CPU per 10,000 results against 0.08 s.
RESULT_COLUMNS = [f for f in TestResult._meta.concrete_fields if not f.primary_key]


# A result on its way to the database: the values of RESULT_COLUMNS, in their order (its run,
# then TestResult.FIELDS). A model instance per result (its __init__ and pre/post_init signals)
# cost more than the INSERT itself on a 10,000-test run.
ResultRow = namedtuple("ResultRow", ["run_id", *TestResult.FIELDS])


assert ResultRow._fields == tuple(f.attname for f in RESULT_COLUMNS), "TestResult changed"


def insert_results(results: list[ResultRow]) -> None:
    qn = connection.ops.quote_name
    sql = (
        f"INSERT INTO {qn(TestResult._meta.db_table)} "  # noqa: S608 - constant identifiers
        f"({', '.join(qn(f.column) for f in RESULT_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(RESULT_COLUMNS))})"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, results)


def result_from_event(run_id: int, event: dict) -> ResultRow:
    return ResultRow(
        run_id=run_id,
        nodeid=str(event.get("nodeid", ""))[:1000],
        worker=str(event.get("worker") or "gw0")[:WORKER_MAX],
        outcome=event.get("outcome", "failed"),
        attempt=event.get("attempt") or 0,
        when=event.get("when") or "",
        start=event.get("start"),
        stop=event.get("stop"),
        duration=event.get("duration") or 0.0,
        longrepr=(event.get("longrepr") or "")[:LONGREPR_MAX],
        group=str(event.get("group") or "")[:200],
        # Cut in the run already (_ptd_inrun/output.py); here for what ingestion sends (a CI
        # job may set larger caps): cut the same way, head and tail (the error is at the end).
        **{key: _kept_output(event.get(key)) for key in ("stdout", "stderr", "log")},
    )


def _kept_output(value) -> str:
    text = storable(str(value or ""))
    if len(text) <= OUTPUT_MAX:
        return text
    return cut(text, settings.PTD_MAX_OUTPUT_PER_TEST)


@dataclass
class WorkerDelta:
    """What one batch adds to a worker's figures (added to its row in one UPDATE)."""

    tests: int = 0
    busy_seconds: float = 0.0
    first_start: float | None = None
    last_stop: float | None = None
    crashed: int = 0
    current_test: str = ""

    def add(self, result: ResultRow) -> None:
        self.tests += 1
        self.busy_seconds += result.duration
        if result.start is not None:
            self.first_start = min(self.first_start or result.start, result.start)
        if result.stop is not None:
            self.last_stop = max(self.last_stop or result.stop, result.stop)
        self.current_test = result.nodeid
        self.crashed += result.outcome == "crashed"


def add_to_workers(
    run_id: int, deltas: dict[str, WorkerDelta], read_back: bool = True
) -> list[WorkerStat]:
    """Add a batch's figures to the workers' rows with atomic updates (tests = tests + n):
    the database holds the totals, so any process may store any batch of a run (ingestion
    behind several server processes, or after a restart) without losing counts. The rows as
    they now stand come back if ``read_back`` (for a live page; nobody watching, no query)."""
    rows = [
        (d.tests, d.busy_seconds, d.crashed, d.current_test, d.first_start, d.first_start,
         d.last_stop, d.last_stop, run_id, worker)
        for worker, d in sorted(deltas.items())  # one lock order for every process: no deadlock
        if d.tests
    ]  # fmt: skip
    with connection.cursor() as cursor:
        defaults = list(NEW_WORKER_DEFAULTS.values())
        new_rows = [(run_id, worker, *defaults) for worker in sorted(deltas)]
        cursor.executemany(_new_workers_sql(), new_rows)
        if rows:
            cursor.executemany(_workers_sql(), rows)
    if not read_back:
        return []
    return list(WorkerStat.objects.filter(run_id=run_id, worker__in=deltas).order_by("worker"))


def _new_workers_sql() -> str:
    """A worker's row, unless it has one (its first batch here, or from another process);
    its other columns at their model defaults (``NEW_WORKER_DEFAULTS``)."""
    qn = connection.ops.quote_name
    columns = ", ".join(map(qn, ["run_id", "worker", *NEW_WORKER_DEFAULTS]))
    marks = ", ".join(["%s"] * (2 + len(NEW_WORKER_DEFAULTS)))
    return (
        f"INSERT INTO {qn(WorkerStat._meta.db_table)} ({columns}) VALUES ({marks}) "  # noqa: S608
        f"ON CONFLICT ({qn('run_id')}, {qn('worker')}) DO NOTHING"
    )


def _workers_sql() -> str:
    qn = connection.ops.quote_name
    # The earliest start and latest stop so far; a NULL parameter (no time) keeps the row's.
    least, greatest = ("MIN", "MAX") if connection.vendor == "sqlite" else ("LEAST", "GREATEST")
    first, last = qn("first_start"), qn("last_stop")
    added = ", ".join(f"{qn(c)} = {qn(c)} + %s" for c in ("tests", "busy_seconds", "crashed"))
    return (
        f"UPDATE {qn(WorkerStat._meta.db_table)} SET {added}, {qn('current_test')} = %s, "  # noqa: S608
        f"{first} = COALESCE({least}({first}, %s), {first}, %s), "
        f"{last} = COALESCE({greatest}({last}, %s), {last}, %s) "
        f"WHERE {qn('run_id')} = %s AND {qn('worker')} = %s"
    )


def add_counts(run_id: int, counts: dict[str, int]) -> None:
    """Add a batch's outcome counts (runner.metrics.count_outcomes) to the run's columns."""
    added = {COUNT_COLUMNS[key]: value for key, value in counts.items() if value}
    if not added:
        return
    qn = connection.ops.quote_name
    sets = ", ".join(f"{qn(c)} = {qn(c)} + %s" for c in added)
    sql = f"UPDATE {qn(Run._meta.db_table)} SET {sets} WHERE {qn('id')} = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*added.values(), run_id])
