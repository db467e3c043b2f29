"""``manage.py agent`` / ``python -m runner.agent``: a Celery worker that runs shards.

``--name NAME [--workers N|auto] [--queue QUEUE] [--path-map FROM=TO ...]``; the dashboard
from ``PTD_SERVER`` and ``PTD_TOKEN`` (a staff user's token), the broker from
``PTD_BROKER_URL`` (default ``REDIS_URL``). Bad usage: exit 2 with one line.

The agent says it is alive (``POST /api/agents/heartbeat``, every ``PTD_AGENT_HEARTBEAT``
seconds, default 5) from its main process, and each shard from the process running it; the
dashboard takes an agent silent for ``PTD_AGENT_LOST_SECONDS`` as lost.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time

from ..client.http import Client, Rejected, Unreachable
from . import app as agent_app
from .shard import AgentOptions, ShardJob, parse_path_map

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
MAX_WORKERS = 64


class UsageProblem(Exception):
    """Bad usage: printed as one line, exit 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints its usage too: one line is the rule
        self.exit(2, f"{self.prog}: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="manage.py agent", description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="this agent's name (letters, digits, . _ -)")
    p.add_argument("--workers", default="auto", help="fork workers per shard (N or auto)")
    p.add_argument("--queue", default=agent_app.DEFAULT_QUEUE, help="the pool of agents it joins")
    p.add_argument(
        "--path-map",
        action="append",
        default=[],
        metavar="FROM=TO",
        help="a suite registered at FROM lives at TO on this machine (repeatable)",
    )
    return p


def options_from(args: argparse.Namespace, env: dict) -> tuple[AgentOptions, str]:
    if not NAME.match(args.name):
        raise UsageProblem(
            f"--name: use up to 40 letters, digits, '.', '_' or '-', got {args.name!r}"
        )
    if not NAME.match(args.queue):
        raise UsageProblem(f"--queue: use letters, digits, '.', '_' or '-', got {args.queue!r}")
    if args.workers == "auto":
        workers = os.cpu_count() or 1
    else:
        try:
            workers = int(args.workers)
        except ValueError:
            raise UsageProblem(f"--workers: N or 'auto', got {args.workers!r}") from None
        if not 1 <= workers <= MAX_WORKERS:
            raise UsageProblem(f"--workers: between 1 and {MAX_WORKERS}, got {workers}")
    try:
        maps = [parse_path_map(m) for m in args.path_map]
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    server, token = env.get("PTD_SERVER", ""), env.get("PTD_TOKEN", "")
    if not server or not token:
        raise UsageProblem("set PTD_SERVER and PTD_TOKEN (a staff user's API token)")
    broker = agent_app.broker_url(env)
    if not broker:
        raise UsageProblem("set PTD_BROKER_URL (or REDIS_URL): the broker agents take shards from")
    try:
        beat = float(env.get("PTD_AGENT_HEARTBEAT", "5"))
    except ValueError:
        raise UsageProblem("PTD_AGENT_HEARTBEAT: seconds, a number") from None
    options = AgentOptions(args.name, server.rstrip("/"), token, args.queue, workers, maps, beat)
    return options, broker


class Heartbeat:
    """The agent's own heartbeat, from its main process: name, queue, versions, capacity."""

    def __init__(self, options: AgentOptions):
        self.options = options
        self.client = Client(
            options.server, options.token, timeout=5.0, retries=0, user_agent="ptd-agent"
        )
        self.body = {
            "name": options.name,
            "queue": options.queue,
            "workers": options.workers,
            **agent_app.versions(),
        }
        self.stopped = threading.Event()

    def beat(self) -> dict:
        return self.client.post_json("/api/agents/heartbeat", self.body)

    def first(self, tries: int = 10) -> dict:
        """The first heartbeat: the dashboard must know this agent before it takes shards."""
        for attempt in range(tries):
            try:
                return self.beat()
            except Rejected as exc:
                raise UsageProblem(f"the dashboard refused this agent: {exc.detail}") from None
            except Unreachable as exc:
                if attempt == tries - 1:
                    raise UsageProblem(f"dashboard unreachable: {exc}") from None
                time.sleep(min(5.0, 0.5 * 2**attempt))
        return {}

    def loop(self) -> None:
        while not self.stopped.wait(self.options.heartbeat):
            try:
                self.beat()
            except (Rejected, Unreachable) as exc:
                print(f"ptd agent: heartbeat failed: {exc}", file=sys.stderr)

    def start(self) -> None:
        threading.Thread(target=self.loop, name="ptd-agent-heartbeat", daemon=True).start()


def make_worker_app(options: AgentOptions, broker: str):
    celery_app = agent_app.make_app(broker)

    @celery_app.task(name=agent_app.TASK_NAME, acks_late=True, reject_on_worker_lost=True)
    def shard(spec: dict) -> str:
        job = ShardJob(spec, options)
        try:
            return job.run()
        finally:
            job.cancel()

    return celery_app


def main(argv: list[str] | None = None, env: dict | None = None) -> int:
    env = dict(os.environ) if env is None else env
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed its one line already
        return int(exc.code or 0)
    try:
        options, broker = options_from(args, env)
        heartbeat = Heartbeat(options)
        answer = heartbeat.first()
    except UsageProblem as exc:
        print(f"ptd agent: {exc}", file=sys.stderr)
        return 2
    if answer.get("warning"):
        print(f"ptd agent: {answer['warning']}", file=sys.stderr)
    heartbeat.start()
    celery_app = make_worker_app(options, broker)
    print(
        f"ptd agent {options.name}: queue {options.queue}, {options.workers} workers, "
        f"dashboard {options.server}",
        file=sys.stderr,
        flush=True,
    )
    celery_app.worker_main(
        [
            "worker",
            "--queues", agent_app.agent_queue(options.name),
            "--concurrency", "1",
            "--pool", "prefork",
            "--hostname", f"{options.name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel", env.get("PTD_AGENT_LOGLEVEL", "WARNING"),
        ]
    )  # fmt: skip
    heartbeat.stopped.set()
    return 0
