"""`python manage.py run_suite`: run a suite through the pool from a terminal or CI.

Exit codes (contract): 0 all passed, 1 tests failed, 2 bad usage or configuration,
3 the run itself failed (engine crash, timeout, cancelled).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction

from runner import options
from runs.execution import launch, prestart
from runs.execution.environment import Environment, install
from runs.execution.sink import DbSink
from runs.load.queries import load_dict
from runs.models import Run, Suite

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "site-packages"}


def usage_error(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def has_tests(path: Path, limit: int = 20000) -> bool:
    """Whether a directory holds a pytest file (test_*.py or *_test.py), looking a bounded way."""
    seen = 0
    stack = [path]
    while stack and seen < limit:
        directory = stack.pop()
        try:
            entries = list(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if entry.is_dir():
                if entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                    stack.append(entry)
            elif entry.suffix == ".py" and (
                entry.name.startswith("test_") or entry.stem.endswith("_test")
            ):
                return True
    return False


def register(path_arg: str) -> Suite:
    path = Path(path_arg).expanduser().resolve()
    if not path.is_dir():
        raise usage_error(f"{path_arg}: no such directory")
    if not has_tests(path):
        raise usage_error(f"{path}: no test files (test_*.py or *_test.py) found")
    suite = Suite.objects.filter(name=path.name).first()
    if suite is not None:
        if Path(suite.path).resolve() != path:
            raise usage_error(
                f"a suite named {path.name!r} is already registered at {suite.path}; "
                f"run it with --suite {path.name}"
            )
        return suite
    suite = Suite(name=path.name, path=str(path))
    try:
        suite.full_clean()
    except ValidationError as exc:
        raise usage_error(f"cannot register {path}: {'; '.join(exc.messages)}") from None
    suite.save()
    suite.default_config().save()
    return suite


class ProgressSink(DbSink):
    """The database sink, plus a progress line on stderr (from the figures the sink computed).

    The run's tests are left for a serving process to fold into the flakiness summary (derived
    data; ~0.2 s per 1,000 tests): the CI job waiting for this command does not wait for it.
    """

    history_fold = "later"

    def __init__(self, env, stream, interval: float = 1.0):
        super().__init__(env)
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = 0.0 if self.tty else interval
        self.last = 0.0
        self.collected = None
        self.done = self.failed = 0
        self.per_worker: dict[str, int] = {}

    def batch_stored(self, counts, deltas, collected):
        if collected is not None:
            self.collected = collected
        self.done += counts["total"]
        self.failed += counts["failed"] + counts["errors"]
        for worker, delta in deltas.items():
            self.per_worker[worker] = self.per_worker.get(worker, 0) + delta.tests
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.show()

    def publish_load(self, run_id, messages):
        """A load run has no test results to count: a line per merged batch of seconds."""
        super().publish_load(run_id, messages)
        for message in messages:
            if not message.get("seconds"):
                continue
            last, total = message["seconds"][-1], message["stats"]["total"]
            p95 = "–" if total["p95_ms"] is None else f"{total['p95_ms']:.0f}"
            line = (
                f"[{last['second'] + 1} s] {last['users']} users · {total['iterations']} "
                f"iterations · {total['rps'] or 0:.1f}/s · p95 {p95} ms · "
                f"{total['failures']} failed"
            )
            self.stream.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
            self.stream.flush()

    def show(self, end=""):
        total = self.collected if self.collected is not None else "?"
        workers = " ".join(f"{w}:{n}" for w, n in sorted(self.per_worker.items()))
        line = f"[{self.done}/{total}] {self.failed} failed | {workers}"
        self.stream.write(("\r" + line + "\x1b[K" + end) if self.tty else line + "\n")
        self.stream.flush()


class Command(BaseCommand):
    help = "Run a pytest suite on N workers through PTD's pool and store the results."
    # CI calls this for every run: skip the project-wide system checks (`manage.py check`
    # and `serve` run them); they cost more start-up time than small suites take to run.
    requires_system_checks = []

    def run_from_argv(self, argv):
        # Everything after "--" goes to pytest untouched.
        self.extra_args = []
        if "--" in argv:
            index = argv.index("--")
            argv, self.extra_args = argv[:index], argv[index + 1 :]
        try:
            super().run_from_argv(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        # A one-shot command from a terminal or CI (not call_command): all is stored and
        # said, the pool is shut down. The interpreter's own teardown (every module and
        # object of Django freed one by one) would add ~80 ms to each run; skip it.
        prestart.discard()  # the interpreter started ahead, if no run took it
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        connections.close_all()
        logging.shutdown()
        os._exit(code)

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="suite directory (registered on first use)")
        parser.add_argument("--suite", help="name of a registered suite")
        parser.add_argument(
            "--config", help="one of the suite's run configurations (default: its default)"
        )
        options.add_arguments(parser)  # --workers, --engine, --dist, ... -k, -m, load's
        # Load mode's shortcuts, unless runner.options declares them already.
        with contextlib.suppress(argparse.ArgumentError):
            parser.add_argument(
                "--load",
                dest="mode",
                action="store_const",
                const="load",
                help="a load run: the selected tests looped by --users users",
            )
        with contextlib.suppress(argparse.ArgumentError):
            parser.add_argument(
                "--threshold",
                dest="thresholds",
                action="append",
                metavar="EXPR",
                help="load mode: a threshold such as 'p95<300ms', 'errors<1%%' (repeatable)",
            )
        parser.add_argument("--commit", default="")
        parser.add_argument("--branch", default="")
        parser.add_argument("--json", action="store_true", help="print a JSON summary last")

    def handle(self, *args, **opts):
        with transaction.atomic():  # a rejected launch leaves no half-registered suite
            run = self.launch(opts)
        run = self.execute_run(run)
        self.report(run, opts["json"])
        if run.ci_exit_code:
            sys.exit(run.ci_exit_code)

    def launch(self, opts) -> Run:
        extra = list(getattr(self, "extra_args", []))
        if opts["path"] and opts["suite"]:
            raise usage_error("give a suite PATH or --suite NAME, not both")
        if opts["path"]:
            suite = register(opts["path"])
        elif opts["suite"]:
            suite = Suite.objects.filter(name=opts["suite"]).first()
            if suite is None:
                raise usage_error(f"no suite named {opts['suite']!r}")
        else:
            raise usage_error("give a suite PATH or --suite NAME")
        config = suite.find_config(opts["config"])
        if config is None:
            raise usage_error(f"suite {suite.name} has no configuration {opts['config']!r}")
        overrides = {key: opts[key] for key in launch.OVERRIDABLE if opts.get(key) is not None}
        try:
            return launch.launch(
                config,
                trigger=Run.Trigger.CLI,
                overrides=overrides,
                commit=opts["commit"],
                branch=opts["branch"],
                extra_args=extra,
            )
        except launch.LaunchError as exc:
            raise usage_error(exc.message) from None

    def execute_run(self, run: Run) -> Run:
        if run.config_snapshot.get("fleet"):
            # Over several machines: agents reach a dashboard over HTTP, so `serve` runs it.
            self.stderr.write(
                f"run {run.id} queued for the agents of queue {run.config_snapshot['queue']!r}:"
                " a `manage.py serve` on this database dispatches it; following it here"
            )
            return self.follow(run)
        if not launch.claim(run.pk):  # a server's dispatcher took it: follow it there
            return self.follow(run)
        run.refresh_from_db()
        env = Environment(sink=lambda env: ProgressSink(env, self.stderr._out))
        install(env)  # this process's: launch and the sink find it
        zygotes = prestart.take()  # started by manage.py before Django, if it could be
        sink, pool = env.sink, env.start_pool(max_concurrent=1, warm_start=False, zygotes=zygotes)
        try:
            pool.submit(launch.build_spec(run))
            try:
                pool.wait(run.pk)
            except KeyboardInterrupt:
                self.stderr.write("\nCancelling…")
                pool.cancel(run.pk)
                pool.wait(run.pk)
        finally:
            env.stop()
            install(None)
        sink.show(end="\n")  # the final count, whatever the throttle skipped
        run.refresh_from_db()
        return run

    def follow(self, run: Run) -> Run:
        prestart.discard()  # another process runs it
        while True:
            run.refresh_from_db()
            if not run.is_active:
                return run
            time.sleep(0.5)  # another process owns the run; the database is all we share

    def report(self, run: Run, as_json: bool) -> None:
        t = run.tests_dict()
        line = (
            f"run {run.id} {run.status_label}: {t['passed']} passed, {t['failed']} failed, "
            f"{t['skipped']} skipped, {t['errors']} errors, {t['flaky']} flaky"
        )
        if run.wall_seconds:
            plural = "s" if run.workers != 1 else ""
            line += f" in {run.wall_seconds:.2f} s on {run.workers} worker{plural}"
        if run.speedup is not None:  # none when no test ran
            line += (
                f" (speedup {run.speedup:.2f}, efficiency {run.efficiency or 0:.2f},"
                f" balance {run.balance or 0:.2f})"
            )
        load = load_dict(run)
        if load is not None:
            line = self.load_line(run, load)
        self.stderr.write(line)
        if run.message:
            self.stderr.write(run.message)
        if as_json:
            summary = run.summary()
            if load is not None:
                summary["load"] = load
            self.stdout.write(json.dumps(summary))

    def load_line(self, run: Run, load: dict) -> str:
        figures = " · ".join(
            f"{key[:-3]} {load[key]:.1f} ms"
            for key in ("p50_ms", "p95_ms", "p99_ms")
            if load[key] is not None
        )
        line = (
            f"load run {run.id} {run.status}: {load['iterations']} iterations "
            f"({load['failures']} failed) in {load['duration_seconds']:.1f} s, "
            f"{load['rps'] or 0:.1f}/s, {figures}"
        )
        for t in load["thresholds"]:
            line += f"\n  {'pass' if t['passed'] else 'FAIL'} {t['expr']} (measured {t['value']})"
        return line
