"""The Agents page: every agent that said hello, its state, versions and the runs it served.

An agent whose PTD version differs from the dashboard's gets no shard (its engine and wire
may differ): the page says so on its row. The table keeps itself up to date
(static/js/agents.js polls ``GET /api/agents``, which gives the same rows as data).
"""

from __future__ import annotations

from django.shortcuts import render

from runs.execution import fleet
from runs.models import Agent, Shard


def agent_list(request):
    ours = fleet.ptd_version()
    agents = [a.to_dict(ours) for a in Agent.objects.all()]
    recent = Shard.objects.select_related("agent", "run__suite").order_by("-id")[:50]
    return render(
        request,
        "runs/agents.html",
        {"agents": agents, "ours": ours, "shards": recent},
    )
