"""The Agents page: every agent that said hello, its state, versions and the runs it served.

An agent whose PTD version differs from the dashboard's gets no shard (its engine and wire
may differ): the page says so on its row.
"""

from __future__ import annotations

import time

from django.shortcuts import render

from runs.execution import fleet
from runs.models import Agent, Shard


def agent_list(request):
    ours = fleet.ptd_version()
    agents = [a.to_dict(ours) for a in Agent.objects.all()]
    now = time.time()
    for agent in agents:
        beat = agent["last_heartbeat"]
        agent["seconds_ago"] = None if beat is None else max(0.0, now - beat)
    recent = Shard.objects.select_related("agent", "run__suite").order_by("-id")[:50]
    return render(
        request,
        "runs/agents.html",
        {"agents": agents, "ours": ours, "shards": recent},
    )
