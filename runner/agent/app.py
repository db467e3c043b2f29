"""The Celery app of agents and of the dashboard that sends them shards.

Each agent consumes the queue of its own name (``agent_queue``): the dashboard chooses the
machines of a run (idle agents of the run's queue, same PTD version), so a shard goes where
it was meant to; ``--queue`` is the pool of agents a run draws from. One shard at a time per
agent (``worker_prefetch_multiplier=1``, concurrency 1), acknowledged after it ran
(``task_acks_late``) and given back if the worker process dies (``task_reject_on_worker_lost``);
a redelivered shard of a finished run is refused by the dashboard at once.
"""

from __future__ import annotations

import os
from typing import Any

TASK_NAME = "ptd.shard"
DEFAULT_QUEUE = "default"
# Longer than any run may last (runner.options: the timeout's upper bound is a week): Redis
# would otherwise deliver a long shard a second time to another consumer.
VISIBILITY_TIMEOUT = 8 * 24 * 3600
# Time limits of a shard whose run has no timeout (its own limit is the run's timeout + slack).
DEFAULT_HARD_LIMIT = 7 * 24 * 3600
LIMIT_SLACK = 60


def broker_url(env: dict | None = None) -> str:
    """``PTD_BROKER_URL``, else ``REDIS_URL``, else "" (no broker: runs stay on this machine)."""
    env = os.environ if env is None else env
    return env.get("PTD_BROKER_URL") or env.get("REDIS_URL") or ""


def agent_queue(name: str) -> str:
    return f"ptd.agent.{name}"


def time_limits(timeout: float | None) -> tuple[int, int]:
    """(soft, hard) seconds for a shard of a run with this timeout."""
    if not timeout:
        return DEFAULT_HARD_LIMIT - LIMIT_SLACK, DEFAULT_HARD_LIMIT
    return int(timeout) + LIMIT_SLACK // 2, int(timeout) + LIMIT_SLACK


def make_app(broker: str) -> Any:
    from celery import Celery

    app = Celery("ptd", broker=broker, set_as_current=False)
    app.conf.update(
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


def send_shard(app: Any, agent: str, spec: dict, task_id: str) -> None:
    """Queue one shard for one agent (the dashboard's side)."""
    soft, hard = time_limits(spec.get("timeout"))
    app.send_task(
        TASK_NAME,
        args=[spec],
        queue=agent_queue(agent),
        task_id=task_id,
        soft_time_limit=soft,
        time_limit=hard,
    )


def revoke(app: Any, task_ids: list[str]) -> None:
    """Drop shards not started yet (a started one stops on its agent's next heartbeat)."""
    if task_ids:
        app.control.revoke(task_ids)


def versions() -> dict[str, str]:
    """This interpreter's Python, pytest and PTD versions (an agent's, or the dashboard's)."""
    import platform
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return ""

    return {
        "python": platform.python_version(),
        "pytest": version("pytest"),
        "ptd": version("parallel-test-dashboard"),
    }
