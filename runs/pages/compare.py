"""Two runs side by side (issue #17): the page, and the run page's "compare with…" form.

runs.insight computes the comparison; this module only picks what a page can show (each list
is cut at SHOWN rows: the API returns them all).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render

from runs.insight import queries
from runs.models import Run
from runs.numbers import object_id

SHOWN = 200  # rows of each list on the page
# (key, heading, what the group means) in the page's order.
GROUPS = (
    ("new_failures", "New failures", "failed in B, not in A"),
    ("fixed", "Fixed", "failed in A, passed in B"),
    ("still_failing", "Still failing", "failed in both"),
    ("new_flaky", "Newly flaky", "passed and failed in B (reruns or repeats), not in A"),
    ("added", "Added", "in B only"),
    ("removed", "Removed", "in A only"),
    ("slower", "Slower", "mean seconds per attempt up"),
    ("faster", "Faster", "mean seconds per attempt down"),
)
# The metrics rows: (key, label, decimals).
METRICS = (
    ("wall_seconds", "wall seconds", 2),
    ("serial_seconds", "serial work seconds", 2),
    ("speedup", "speedup (work / wall)", 2),
    ("efficiency", "efficiency (target ≥ 0.75)", 2),
    ("speedup_measured", "measured speedup (vs a 1-worker run)", 2),
    ("balance", "balance (max / mean busy)", 2),
    ("flakiness_rate", "flakiness rate", 3),
)


def with_percent(entries: list[dict]) -> list[dict]:
    return [
        {**e, "percent": None if e["ratio"] is None else round((e["ratio"] - 1) * 100)}
        for e in entries
    ]


def compare_page(request, run_id, other_id):
    comparison = queries.compare_runs(run_id, other_id)
    if comparison is None:
        raise Http404("No such run.")
    a, b = comparison["a"], comparison["b"]
    workers_a = {w["id"]: w for w in a["per_worker"]}
    workers_b = {w["id"]: w for w in b["per_worker"]}
    return render(
        request,
        "runs/compare.html",
        {
            "a": a,
            "b": b,
            "caveats": comparison["caveats"],
            "noise": comparison["noise_floor"],
            "noise_percent": round(comparison["noise_floor"]["ratio"] * 100),
            "metrics": [(label, a[key], b[key], decimals) for key, label, decimals in METRICS],
            "tests": [
                (label, a["tests"][key], b["tests"][key])
                for key, label in (
                    ("total", "tests"),
                    ("passed", "passed"),
                    ("failed", "failed"),
                    ("errors", "errors"),
                    ("skipped", "skipped"),
                    ("flaky", "flaky"),
                )
            ],
            "workers": [
                (w, workers_a.get(w), workers_b.get(w))
                for w in sorted(workers_a.keys() | workers_b.keys())
            ],
            "groups": [
                {
                    "key": key,
                    "label": label,
                    "meaning": meaning,
                    "total": len(comparison[key]),
                    "timing": key in ("slower", "faster"),  # the other lists: Δ is noise
                    "entries": with_percent(comparison[key][:SHOWN]),
                }
                for key, label, meaning in GROUPS
            ],
            "shown": SHOWN,
            "api_url": f"/api/runs/{a['id']}/compare/{b['id']}",
        },
    )


def compare_pick(request, run_id):
    """The run page's "compare with…" form (GET ?with=N): to the page comparing run N (the
    baseline) with this run. Anything else goes back to the run page, saying why."""
    run = get_object_or_404(Run, pk=run_id)
    other = object_id(request.GET.get("with", ""))
    if other is None or not Run.objects.filter(pk=other).exists():
        messages.warning(request, "Compare with: choose a run (its number) that exists.")
        return redirect(run)
    return redirect("compare", run_id=other, other_id=run.id)
