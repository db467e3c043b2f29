"""Runs across machines: one Run whose shards run on K agents (Celery workers elsewhere).

``serve``'s dispatcher claims such a run as any other, then hands it here instead of to its
pool. Each tick (``FleetRunner.tick``) moves every such run of this process along:

- waiting: the idle agents of the run's queue with the dashboard's PTD version; once K are
  there (or, at ``PTD_AGENT_WAIT_SECONDS``, as many as there are) a shard is sent to each
  agent's own queue; with none, the run says "waiting for agents (n of K)", then fails;
- running: a shard whose agent and own heartbeats are older than ``PTD_AGENT_LOST_SECONDS``
  is lost: its units go back to the shared queue (``fleet_queue.lose_shard``);
- over: once no shard is active the run is finished by the sink as a run of the pool is,
  from every shard's results (one Run, workers ``AGENT/gwN``, K x N workers in its metrics).

Cancelling marks the run (as for a run of another process); the tick then revokes its
shards' tasks and their agents stop them at their next heartbeat. The shards talk to the
dashboard through ``runs.api.shards``.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from runner.agent import app as agent_app
from runner.pool import RunOutcome
from runs.execution import fleet_queue
from runs.execution.pytest_input import LaunchError
from runs.execution.sink import finish_run
from runs.models import Agent, Run, RunUnit, Shard

log = logging.getLogger(__name__)


def over_machines(snap: dict) -> bool:
    """``machines: 1`` and no queue is a run on this server, as before agents existed."""
    return snap.get("machines", 1) != 1 or bool(snap.get("queue"))


def check_launch(snap: dict) -> None:
    """A run over machines: a broker to reach agents; the fork engine (units are pulled)."""
    if not settings.PTD_BROKER_URL:
        raise LaunchError(
            "a run over several machines needs a broker (PTD_BROKER_URL or REDIS_URL) and "
            "agents (manage.py agent)",
            "machines",
        )
    snap["engine"] = "fork"
    snap["queue"] = snap.get("queue") or agent_app.DEFAULT_QUEUE
    snap["fleet"] = True


@functools.cache
def celery_app():
    return agent_app.make_app(settings.PTD_BROKER_URL)


@functools.cache
def ptd_version() -> str:
    return agent_app.versions()["ptd"]


def idle_agents(queue: str) -> list[Agent]:
    ours = ptd_version()
    busy = set(Shard.objects.filter(state__in=Shard.ACTIVE).values_list("agent_id", flat=True))
    return [
        a
        for a in Agent.objects.filter(queue=queue).order_by("name")
        if a.alive and a.pk not in busy and not a.version_problem(ours)
    ]


def shard_spec(run: Run, shard: Shard) -> dict:
    snap, suite = run.config_snapshot, run.suite
    return {
        "run_id": run.id,
        "shard_id": shard.id,
        "suite_path": suite.path,
        "python": suite.python,
        "env": dict(suite.env),
        "workers": snap.get("workers") or 0,
        "dist": snap.get("dist") or "load",
        "repeat": snap.get("repeat") or 1,
        "reruns": snap.get("reruns") or 0,
        "keyword": snap.get("keyword") or "",
        "markers": snap.get("markers") or "",
        "extra_args": list(snap.get("extra_args") or []),
        "timeout": snap.get("timeout"),
        "commit": run.commit,
    }


class FleetRunner:
    def __init__(self, env):
        self.env = env

    def tick(self) -> bool:
        """Move this process's runs over machines along; whether any is still going."""
        from runs.execution.launch import HOST

        runs = list(
            Run.objects.filter(
                status=Run.Status.RUNNING, runner_host=HOST, config_snapshot__fleet=True
            ).select_related("suite")
        )
        for run in runs:
            try:
                self.advance(run)
            except Exception:
                log.exception("run %s: the fleet tick failed", run.id)
        self.stop_cancelled()
        return bool(runs)

    def advance(self, run: Run) -> None:
        shards = list(run.shards.select_related("agent"))
        if not shards:
            self.assign(run)
            return
        now = time.time()
        for shard in shards:
            if not shard.is_active:
                continue
            # A started shard's own heartbeat (its process may die while its agent lives on);
            # before that, its agent's.
            beat = shard.agent.last_heartbeat
            if shard.state != Shard.State.QUEUED:
                beat = shard.last_heartbeat
            silent = now - beat
            if silent > settings.PTD_AGENT_LOST_SECONDS:
                message = f"machine {shard.agent.name} lost (no heartbeat for {silent:.0f} s)"
                fleet_queue.lose_shard(shard, message, self.env.sink)
                self.publish_machines(run)
        shards = list(run.shards.select_related("agent"))
        failed = any(s.state == Shard.State.FAILED for s in shards)
        if failed or not any(s.is_active for s in shards):  # a refused shard ends the run
            self.complete(run, shards)

    def assign(self, run: Run) -> None:
        snap = run.config_snapshot
        wanted = int(snap.get("machines", 1))
        idle = idle_agents(snap.get("queue") or agent_app.DEFAULT_QUEUE)
        count = len(idle) if wanted == 0 else wanted
        began = (run.started_at or run.created_at).timestamp()
        late = time.time() - began > settings.PTD_AGENT_WAIT_SECONDS
        of = "all" if wanted == 0 else str(wanted)
        if idle and (len(idle) >= count or late):
            self.start_shards(run, idle[:count])
        elif late:
            self.finish(
                run,
                RunOutcome(run.id, None, 0.0, "crashed", ""),
                f"No agent of queue {snap.get('queue')!r} was free within "
                f"{settings.PTD_AGENT_WAIT_SECONDS:.0f} s (0 of {of}): start agents with "
                "`manage.py agent` (see the Agents page).",
            )
        else:
            message = f"waiting for agents ({len(idle)} of {of})"
            if run.message != message or run.started_at is None:
                Run.objects.filter(pk=run.pk).update(
                    message=message, started_at=run.started_at or timezone.now()
                )
                self.env.publisher.publish(
                    run.id, {"type": "status", "status": run.status, "message": message}
                )

    def start_shards(self, run: Run, agents: list[Agent]) -> None:
        snap = run.config_snapshot
        with transaction.atomic():
            shards = [
                Shard.objects.create(
                    run=run,
                    agent=agent,
                    number=i,
                    task_id=uuid.uuid4().hex,
                    workers=int(snap.get("workers") or 0) or agent.workers,
                    last_heartbeat=time.time(),
                )
                for i, agent in enumerate(agents)
            ]
            Run.objects.filter(pk=run.pk).update(
                workers=min(32767, sum(s.workers for s in shards)),
                message="",
                started_at=timezone.now(),
            )
        try:
            for shard in shards:
                agent_app.send_shard(
                    celery_app(), shard.agent.name, shard_spec(run, shard), shard.task_id
                )
        except Exception as exc:
            Shard.objects.filter(run=run).update(state=Shard.State.FAILED, message=str(exc)[:500])
            self.finish(
                run,
                RunOutcome(run.id, None, 0.0, "crashed", ""),
                f"The broker could not take the run's shards: {exc}",
            )
            return
        self.env.publisher.publish(run.id, {"type": "status", "status": run.status, "message": ""})
        self.publish_machines(run)

    def complete(self, run: Run, shards: list[Shard]) -> None:
        began = run.started_at or run.created_at
        wall = max(0.0, (timezone.now() - began).total_seconds())
        failed = [s for s in shards if s.state == Shard.State.FAILED]
        left = RunUnit.objects.filter(
            run=run, state__in=[RunUnit.State.QUEUED, RunUnit.State.LEASED]
        )
        if failed:
            message = "\n".join(s.message for s in failed if s.message) or "A shard failed."
            self.finish(run, RunOutcome(run.id, None, wall, "crashed", message), message)
            return
        if left.exists() or not run.units.exists():
            tests = sum(len(u) for u in left.values_list("nodeids", flat=True))
            message = (
                f"Every machine of the run was lost; {tests} tests never ran."
                if run.units.exists()
                else "Every machine of the run was lost before collecting the suite."
            )
            self.finish(run, RunOutcome(run.id, None, wall, "crashed", message), message)
            return
        codes = [s.exit_code for s in shards if s.state == Shard.State.DONE]
        code = 1 if 1 in codes else 0
        self.finish(run, RunOutcome(run.id, code, wall, None, ""), "")

    def finish(self, run: Run, outcome: RunOutcome, message: str) -> None:
        outcome.message = message
        claimed = Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).exists()
        if claimed:
            self.env.sink.run_finished(run.id, outcome)
        self.publish_machines(run)

    def stop_cancelled(self) -> None:
        """Shards of runs no longer running (cancelled, or failed elsewhere): revoked; their
        agents end their processes at their next heartbeat (its answer says stop)."""
        shards = list(
            Shard.objects.filter(state__in=Shard.ACTIVE).exclude(run__status=Run.Status.RUNNING)
        )
        if not shards:
            return
        try:
            agent_app.revoke(celery_app(), [s.task_id for s in shards])
        except Exception:
            log.exception("could not revoke shards")
        Shard.objects.filter(pk__in=[s.pk for s in shards], state__in=Shard.ACTIVE).update(
            state=Shard.State.CANCELLED, finished_at=timezone.now()
        )
        for run_id in {s.run_id for s in shards}:
            run = Run.objects.get(pk=run_id)
            if run.status == Run.Status.CANCELLED:  # its figures, from what was stored
                began = run.started_at or run.created_at
                wall = max(0.0, ((run.finished_at or timezone.now()) - began).total_seconds())
                outcome = RunOutcome(run.id, None, wall, "cancelled", "Cancelled.")
                finish_run(run.id, outcome, history=self.env.history, fold="background")
            self.publish_machines(run)

    def publish_machines(self, run: Run) -> None:
        publish_machines(self.env.publisher, run)


def publish_machines(publisher, run: Run) -> None:
    """The live page's machines: each shard of the run and its state."""
    if publisher.reachable(run.id):
        machines = [s.to_dict() for s in run.shards.select_related("agent")]
        publisher.publish(run.id, {"type": "machines", "machines": machines})
