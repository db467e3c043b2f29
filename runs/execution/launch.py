"""Launching runs: validation, the configuration snapshot, and what the engine is given.

Together with the rest of runs.execution, the only bridge between the web and the engine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from runner import command, options
from runner.pool import RunSpec
from runner.records import LOAD_GRACE
from runs import permissions
from runs.execution import environment, fleet
from runs.execution.pytest_input import (
    LaunchError,
    check_args,
    check_expression,
    check_nodeid,
    one_line_problem,
)
from runs.execution.sink import close_interrupted
from runs.load import thresholds
from runs.models import Run, RunConfig, Suite, TestResult, redact_tokens

# The options a launch may override: declared once, in runner.options (the CLI offers them),
# and load mode's thresholds, which are the dashboard's alone (runs.load.thresholds).
OVERRIDABLE = tuple(dict.fromkeys((*options.NAMES, "thresholds")))
HISTORY_RUNS = 5  # how many recent finished runs feed the scheduler's duration history
HOST = socket.gethostname()


@dataclass
class Overrides:
    values: dict

    @classmethod
    def clean(cls, raw: dict | None) -> Overrides:
        """Validate user-supplied overrides; None or "" means "use the configuration's"."""
        out: dict = {}
        for key, value in (raw or {}).items():
            if value is None or value == "":
                continue
            if key not in OVERRIDABLE:
                raise LaunchError(f"unknown option {key!r}", key)
            out[key] = clean_option(key, value)
        return cls(out)


def clean_option(key: str, value):
    """One option's value as a launch takes it (the run configuration forms check theirs with
    it too: a configuration saved is one that runs). Raises LaunchError naming ``key``."""
    if key == "thresholds":
        try:
            return thresholds.clean(value)
        except thresholds.ThresholdError as exc:
            raise LaunchError(str(exc), key) from None
    try:
        value = options.clean(key, value)
    except ValueError as exc:
        raise LaunchError(str(exc), key) from None
    if key in ("keyword", "markers"):
        check_expression(key, value)
    return value


def snapshot(config: RunConfig, overrides: Overrides) -> dict:
    data = config.to_dict()
    data.update(overrides.values)
    data["extra_args"] = list(config.suite.pytest_args)
    return data


PLUGIN_CHECK_TTL = 600.0  # seconds a passed check of an interpreter's plugins is trusted


def _plugins_missing(suite: Suite, snap: dict) -> str | None:
    """Which pytest plugin the run needs and the suite's interpreter lacks, or None.

    Asking the interpreter costs a process start, so a passed check is remembered in the data
    dir for a few minutes (keyed by the interpreter and its mtime), which every command shares.
    Failed checks are never cached: installing the package fixes the next launch at once.
    """
    python = suite.interpreter
    try:
        stamp = os.stat(python).st_mtime
    except OSError:
        stamp = 0.0
    mode = snap.get("mode", "tests")
    needs = [snap["engine"], snap["workers"] != 1, snap["repeat"] > 1, snap["reruns"] > 0, mode]
    key = json.dumps([python, stamp, *needs])
    cache_file = Path(settings.DATA_DIR) / "plugin-checks.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if time.time() - cache.get(key, 0) < PLUGIN_CHECK_TTL:
        return None
    missing = command.check_plugins(
        python,
        workers=snap["workers"] or "auto",
        repeat=snap["repeat"],
        reruns=snap["reruns"],
        engine=snap["engine"],
        mode=mode,
    )
    if not missing:
        cache[key] = time.time()
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_file)
        except OSError:
            pass  # a cache that cannot be written only costs the next check
    return missing


def check_engine_available(suite: Suite, snap: dict) -> None:
    missing = _plugins_missing(suite, snap)
    if missing:
        raise LaunchError(missing, "python")


def check_selection(snap: dict) -> None:
    """The last gate before argv: what users may choose is checked again (a run queued before
    a rule existed, a configuration saved before the forms checked it as a launch does, or
    written by other code, is refused here rather than run wrong: a timeout of 10^13 s ran
    with none). A load option is checked only in a load run, where it means something."""
    load = snap.get("mode") == "load"
    for key in options.NAMES:
        value = snap.get(key)
        if value in (None, "", []) or (key in options.LOAD_ONLY and not load):
            continue
        clean_option(key, options.as_given(key, value))
    if load and not (snap.get("duration") or snap.get("iterations")):
        raise LaunchError("a load run needs a duration or a number of iterations", "duration")
    if snap.get("rerun_of"):
        check_nodeid(snap["rerun_of"], rerun=True)


def launch(
    config: RunConfig | Suite,
    *,
    trigger: str = Run.Trigger.UI,
    user=None,
    overrides: dict | None = None,
    commit: str = "",
    branch: str = "",
    ci_url: str = "",
    extra_args: list[str] | None = None,
    rerun_of: str = "",
) -> Run:
    """Validate, snapshot the configuration and queue a run. Raises LaunchError.

    ``rerun_of``: a node id, for a run of that one test (repeated) to probe its flakiness:
    it is kept out of the suite's trends and reports, whose figures are about whole runs.
    """
    if isinstance(config, Suite):
        config = config.default_config()
    suite = config.suite
    cleaned = Overrides.clean(overrides)
    snap = snapshot(config, cleaned)
    if snap.get("mode") != "load":
        # Asked for a load (or a CI gate) that would silently not happen: say so rather than
        # run the tests once. A configuration's own load options may rest in "tests" mode.
        for name in options.LOAD_ONLY:
            if cleaned.values.get(name) not in (None, [], ""):
                verb = "apply" if name.endswith("s") else "applies"
                raise LaunchError(f"{name} {verb} to load runs: add mode load (--load)", name)
    # Staff and the operator may add any argument; anyone else only the suite's node ids.
    snap["extra_args"] += check_args(
        extra_args or [], trusted=permissions.can_pass_any_pytest_argument(user)
    )
    if rerun_of:
        snap["extra_args"].append(check_nodeid(rerun_of, rerun=True))
        snap["rerun_of"] = rerun_of
    check_selection(snap)  # the configuration's own expressions too, not only overrides
    if fleet.over_machines(snap):  # the suite lives on the agents (path maps): they check it
        fleet.check_launch(snap)
    else:
        if not Path(suite.path).is_dir():
            raise LaunchError(f"the suite's directory {suite.path} does not exist", "suite")
        check_engine_available(suite, snap)
    for field, value in (("commit", commit), ("branch", branch), ("ci_url", ci_url)):
        problem = one_line_problem(value)
        if problem:
            raise LaunchError(f"{field} {problem}", field)
    if not commit and not branch:
        commit, branch = git_revision(suite.path)
    check_queue_share(user)
    if config.pk is None:  # the suite's first launch saves its default configuration
        config.save()
    run = Run.objects.create(
        suite=suite,
        config=config,
        config_snapshot=snap,
        trigger=trigger,
        user=user if getattr(user, "is_authenticated", False) else None,
        commit=redact_tokens(commit[:64]),
        branch=redact_tokens(branch[:200]),
        ci_url=redact_tokens(ci_url),
        # A run over machines: K x N, known once its shards start (an agent's own N for auto).
        workers=0 if snap.get("fleet") else command.resolve_workers(snap["workers"] or "auto"),
    )
    # The dispatcher of this process (if it serves) starts it at once, not at its next poll.
    transaction.on_commit(environment.current().run_queued.set)
    return run


def check_queue_share(user) -> None:
    """One member cannot fill the shared queue: at most PTD_MAX_QUEUED_PER_USER of their runs
    wait at a time (staff and the operator's commands are not limited). A soft limit: two
    launches at the same instant may both pass it by one."""
    if not getattr(user, "is_authenticated", False) or permissions.is_staff(user):
        return
    limit = settings.PTD_MAX_QUEUED_PER_USER
    waiting = Run.objects.filter(user=user, status=Run.Status.QUEUED).count()
    if waiting >= limit:
        raise LaunchError(
            f"you have {waiting} runs waiting to start (at most {limit} per user): "
            "wait for them or cancel some",
            status=429,
        )


def git_revision(path: str) -> tuple[str, str]:
    """(commit, branch) of a suite directory that is a git checkout, else ("", "")."""
    try:
        out = subprocess.run(
            ["git", "-C", path, "rev-parse", "HEAD", "--abbrev-ref", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return "", ""
    if len(out) != 2:
        return "", ""
    return out[0], ("" if out[1] == "HEAD" else out[1])


def claim(run_id: int) -> bool:
    """Atomically take a queued run for this process; False when someone else did."""
    return bool(
        Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(
            status=Run.Status.RUNNING, runner_host=HOST, runner_pid=os.getpid()
        )
    )


def waits_for_sweep_step(snapshot: dict) -> bool:
    """Whether a queued run is a sweep's step whose previous step has not finished."""
    after = (snapshot.get("sweep") or {}).get("after")
    return bool(after) and Run.objects.filter(pk=after, status__in=Run.ACTIVE).exists()


def claim_next() -> Run | None:
    """The oldest queued run this process may start, claimed; a sweep's step waits for the
    step before it to finish (runs.execution.sweep)."""
    for run_id, snap in (
        Run.objects.filter(status=Run.Status.QUEUED)
        .order_by("created_at", "id")[:50]
        .values_list("id", "config_snapshot")
    ):
        if waits_for_sweep_step(snap):
            continue
        if claim(run_id):
            return Run.objects.select_related("suite").get(pk=run_id)
    return None


def run_dir(run: Run) -> Path:
    path = Path(settings.PTD_RUNS_DIR) / str(run.id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path(run: Run) -> Path:
    """Where the run's pytest output is kept (head and tail: PTD_MAX_LOG_BYTES)."""
    return Path(settings.PTD_RUNS_DIR) / str(run.id) / "pytest.log"


def duration_history(suite: Suite) -> dict[str, float]:
    """Latest known duration of each test of a suite, from its recent finished runs.

    Only the runs the server made: an outside run's figures are whatever its uploader sent,
    and they would steer how this server schedules (longest first)."""
    run_ids = list(
        Run.objects.filter(suite=suite, status__in=Run.COMPLETE)
        .tests_runs()  # a load run stores no test results
        .exclude(trigger=Run.Trigger.EXTERNAL)
        .order_by("-created_at")
        .values_list("id", flat=True)[:HISTORY_RUNS]
    )
    durations: dict[str, float] = {}
    rows = (
        TestResult.objects.filter(run_id__in=run_ids)
        .exclude(outcome__in=["skipped", "crashed"])
        .order_by("run_id")
        .values_list("nodeid", "duration")
    )
    for nodeid, duration in rows:  # oldest run first, so the newest value wins
        durations[nodeid] = duration
    return durations


def build_spec(run: Run) -> RunSpec:
    snap = run.config_snapshot
    check_selection(snap)
    suite = run.suite
    directory = run_dir(run)
    durations_file = directory / "durations.json"
    durations_file.write_text(json.dumps(duration_history(suite)))
    argv = command.build_argv(
        suite.interpreter,
        workers=snap.get("workers") or "auto",
        dist=snap.get("dist", "load"),
        repeat=snap.get("repeat", 1),
        reruns=snap.get("reruns", 0),
        keyword=snap.get("keyword", ""),
        markers=snap.get("markers", ""),
        # No --junitxml: GET /api/runs/{id}/junit.xml is built from the stored results, and
        # the file pytest wrote here was never read, yet the run's controlling process spent
        # ~0.1 ms per report on it (2,000 tests: ~0.2 s of a 2-core machine's CPU).
        junit_path=None,
        extra_args=list(snap.get("extra_args", [])),
        engine=snap.get("engine", "xdist"),
        # Load mode (issue #16); thresholds stay here: the verdict is the dashboard's.
        mode=snap.get("mode", "tests"),
        users=snap.get("users"),
        spawn_rate=snap.get("spawn_rate"),
        duration=snap.get("duration"),
        iterations=snap.get("iterations"),
        think_time=snap.get("think_time"),
    )
    env = command.build_env(
        dict(os.environ),
        dict(suite.env),
        events_fd=None,
        durations_file=str(durations_file),
        pycache_dir=str(settings.PTD_PYCACHE_DIR) if settings.PTD_PYCACHE_DIR else None,
    )
    # What tests printed: the in-run reporter keeps it within these caps (_ptd_inrun/output.py).
    env["PTD_MAX_OUTPUT_PER_TEST"] = str(settings.PTD_MAX_OUTPUT_PER_TEST)
    env["PTD_MAX_OUTPUT_PER_RUN"] = str(settings.PTD_MAX_OUTPUT_PER_RUN)
    env["PTD_CAPTURE_PASSED"] = "1" if snap.get("capture_passed") else ""
    return RunSpec(
        run_id=run.id,
        argv=argv,
        cwd=suite.path,
        env=env,
        timeout=snap.get("timeout"),
        log_path=str(log_path(run)),
        log_max_bytes=settings.PTD_MAX_LOG_BYTES,
        # A cancelled (or aborted) load lets running iterations end within the engine's own
        # stop grace before anything is killed.
        grace=LOAD_GRACE if snap.get("mode") == "load" else None,
        warm_first=bool(run.sweep),
    )


def mark_interrupted(history=None) -> int:
    """Runs this host owned whose process is gone can never finish: say so (server start)."""
    count = 0
    for run in Run.objects.filter(status=Run.Status.RUNNING, runner_host=HOST):
        if run.runner_pid and run.runner_pid != os.getpid() and _alive(run.runner_pid):
            continue
        count += close_interrupted(
            run.pk, "The process running it stopped before it finished.", history=history
        )
    return count


def expire_silent_external_runs(now=None, history=None) -> int:
    """Outside (ingested) runs that sent nothing for PTD_EXTERNAL_TIMEOUT seconds become
    interrupted: their CI job died before closing them, and nothing else ever will."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.PTD_EXTERNAL_TIMEOUT)
    candidates = (
        Run.objects.filter(
            trigger=Run.Trigger.EXTERNAL, status=Run.Status.RUNNING, started_at__lt=cutoff
        )
        .annotate(last_result=Max("results__stop"))
        .values_list("id", "last_result")
    )
    silent = [rid for rid, last in candidates if last is None or last < cutoff.timestamp()]
    message = (
        f"No news from this outside run for {settings.PTD_EXTERNAL_TIMEOUT} s: "
        "its CI job probably stopped before closing it."
    )
    return sum(close_interrupted(run_id, message, now, history) for run_id in silent)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
