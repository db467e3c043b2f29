"""The speedup curve of a suite's runs at several worker counts, and the worker count to use.

Pure functions over run figures (runs.insight.scaling_data gathers them). Rules, stated on the
Scaling page too:

- A point per worker count N: the median wall of the latest runs at N (up to RUNS_PER_POINT);
  ``speedup`` = wall at 1 worker / wall at N (measured, not work / wall), efficiency = speedup / N.
- Amdahl's law, wall(N) = wall(1) · (s + (1 − s) / N), is fitted by least squares on the serial
  fraction s: with x = 1 − 1/N and y = wall(N)/wall(1) − 1/N, s = Σxy / Σx² (clamped to 0..1).
  The speedup can never pass 1/s.
- ``recommended_workers`` (RULE): the smallest N whose wall is within TOLERANCE (10 %) of the
  best wall among the counts at efficiency ≥ EFFICIENCY_TARGET (0.75); when no count is known
  to reach it, the smallest N within 10 % of the best wall, and the reason says so. More
  workers than that cost machine time (start-up, memory, CPU) for little gain.
"""

from __future__ import annotations

from statistics import median

TOLERANCE = 0.10
RUNS_PER_POINT = 5
EFFICIENCY_TARGET = 0.75
RULE = (
    f"the smallest worker count within {round(TOLERANCE * 100)} % of the best wall among the "
    f"counts at efficiency ≥ {EFFICIENCY_TARGET}; when none is known to reach it, the smallest "
    f"count within {round(TOLERANCE * 100)} % of the best wall"
)
STARTUP_DOMINATES = 0.30  # start-up share of the wall at the largest N worth saying
LONGEST_BOUNDS = 0.50  # longest test share of the best wall worth saying


def points(runs: list[dict]) -> list[dict]:
    """One point per worker count from runs (newest first) with ``id, workers,
    wall_seconds`` and optionally ``sweep`` (its sweep's id) and ``time_breakdown``."""
    by_n: dict[int, list[dict]] = {}
    for run in runs:
        if run.get("wall_seconds") and run.get("workers"):
            group = by_n.setdefault(run["workers"], [])
            if len(group) < RUNS_PER_POINT:
                group.append(run)
    one = median(r["wall_seconds"] for r in by_n[1]) if 1 in by_n else None
    out = []
    for n in sorted(by_n):
        group = by_n[n]
        wall = median(r["wall_seconds"] for r in group)
        speedup = round(one / wall, 4) if one else None
        latest = group[0]
        out.append(
            {
                "workers": n,
                "wall_seconds": round(wall, 3),
                "speedup": speedup,
                "efficiency": round(speedup / n, 4) if speedup else None,
                "runs": [r["id"] for r in group],
                "from_sweep": any(r.get("sweep") for r in group),
                "latest_run": latest["id"],
                "time_breakdown": latest.get("time_breakdown"),
            }
        )
    return out


def fit_serial_fraction(pts: list[dict]) -> float | None:
    """Amdahl's serial fraction by least squares on normalized walls; None without a 1-worker
    point and one more."""
    one = next((p["wall_seconds"] for p in pts if p["workers"] == 1), None)
    pairs = [(1 - 1 / p["workers"], p["wall_seconds"] / one - 1 / p["workers"]) for p in pts
             if one and p["workers"] > 1]  # fmt: skip
    sxx = sum(x * x for x, _ in pairs)
    if not sxx:
        return None
    s = sum(x * y for x, y in pairs) / sxx
    return round(min(1.0, max(0.0, s)), 4)


def amdahl(serial_fraction: float, n: float) -> float:
    """The speedup Amdahl's law gives n workers for a serial fraction."""
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / n)


def recommend(pts: list[dict], tolerance: float = TOLERANCE) -> tuple[int | None, str]:
    """(the worker count to use, why), by RULE: the smallest N within ``tolerance`` of the best
    wall among the counts at efficiency ≥ EFFICIENCY_TARGET; when none is known to reach it
    (no 1-worker run gives efficiencies), the smallest N within ``tolerance`` of the best wall,
    saying so."""
    if not pts:
        return None, "No complete whole run of this selection yet: start a sweep."
    efficient = [p for p in pts if (p["efficiency"] or 0) >= EFFICIENCY_TARGET]
    pool = efficient or pts
    best = min(pool, key=lambda p: (p["wall_seconds"], p["workers"]))
    pick = min(
        (p for p in pool if p["wall_seconds"] <= best["wall_seconds"] * (1 + tolerance)),
        key=lambda p: p["workers"],
    )
    among = f"at efficiency ≥ {EFFICIENCY_TARGET}" if efficient else "measured"
    percent = round(tolerance * 100)
    workers = f"{pick['workers']} worker{'s' if pick['workers'] != 1 else ''}"
    if pick is best:
        reason = (
            f"{workers}: the fastest of the counts {among} ({best['wall_seconds']:.1f} s); no "
            f"smaller count comes within {percent} % of it."
        )
    else:
        limit = f"within {percent} % of the best wall of the counts {among}"
        gain = 1 - best["wall_seconds"] / pick["wall_seconds"]
        reason = (
            f"{workers}: the smallest count {limit} ({pick['wall_seconds']:.1f} s against "
            f"{best['wall_seconds']:.1f} s at {best['workers']}); the extra workers would save "
            f"only {round(gain * 100)} %."
        )
    faster = [p for p in pts if p not in pool and p["wall_seconds"] < pick["wall_seconds"]]
    if efficient and faster:
        top = min(faster, key=lambda p: (p["wall_seconds"], p["workers"]))
        reason += (
            f" {top['workers']} workers were faster ({top['wall_seconds']:.1f} s) but at "
            f"efficiency {top['efficiency']:.2f}, below {EFFICIENCY_TARGET}: they waste the "
            "machine."
        )
    elif not efficient:
        reason += (
            f" No count is known to reach efficiency {EFFICIENCY_TARGET}"
            f"{' (it needs a 1-worker run)' if not any(p['efficiency'] for p in pts) else ''}."
        )
    if len(pts) == 1:
        reason += " Only one worker count measured: sweep several to compare."
    elif pick["workers"] == max(p["workers"] for p in pts):
        reason += " It is the largest count measured: sweep higher counts to see if more help."
    return pick["workers"], reason


def explain(pts: list[dict], cores: int, serial_fraction: float | None, longest: dict | None):
    """Why more workers stop helping, from what was measured: one sentence per cause.

    ``longest``: the longest test of the best point's run (``nodeid, seconds``) or None.
    """
    out: list[dict] = []
    with_speedup = [p for p in pts if p["speedup"]]
    within = [p for p in with_speedup if p["workers"] <= cores]
    beyond = [p for p in with_speedup if p["workers"] > cores]
    if within and beyond:
        at_cores = max(within, key=lambda p: p["speedup"])
        top = max(beyond, key=lambda p: p["speedup"])
        if top["speedup"] <= at_cores["speedup"] * (1 + TOLERANCE):
            out.append(
                {
                    "kind": "cores",
                    "message": f"This machine has {cores} cores: beyond {cores} workers the "
                    f"tests share them, and {top['workers']} workers were no faster than "
                    f"{at_cores['workers']} ({top['speedup']:.2f}× against "
                    f"{at_cores['speedup']:.2f}×). CPU-bound tests gain nothing from more "
                    "workers than cores.",
                }
            )
        else:
            out.append(
                {
                    "kind": "cores",
                    "message": f"Beyond this machine's {cores} cores more workers still helped "
                    f"({top['speedup']:.2f}× at {top['workers']}): the tests mostly wait "
                    "(sleep, I/O, network) rather than compute.",
                }
            )
    best = min(pts, key=lambda p: p["wall_seconds"]) if pts else None
    if best and longest and longest["seconds"] >= LONGEST_BOUNDS * best["wall_seconds"]:
        out.append(
            {
                "kind": "longest",
                "message": f"The longest test, {longest['nodeid']}, takes "
                f"{longest['seconds']:.1f} s of the best wall ({best['wall_seconds']:.1f} s at "
                f"{best['workers']} workers): no worker count brings the wall below it. "
                "Split it to go faster.",
            }
        )
    largest = max(pts, key=lambda p: p["workers"]) if pts else None
    tb = (largest or {}).get("time_breakdown") or {}
    if largest and tb.get("wall") and tb["startup"] / tb["wall"] >= STARTUP_DOMINATES:
        out.append(
            {
                "kind": "startup",
                "message": f"At {largest['workers']} workers start-up takes "
                f"{tb['startup']:.1f} s, {round(100 * tb['startup'] / tb['wall'])} % of the "
                "wall: every worker costs start-up time. Warm starts and fewer workers help.",
            }
        )
    if serial_fraction:
        cap = f"{1 / serial_fraction:.1f}×" if serial_fraction > 0.001 else "no limit"
        message = (
            f"The fitted serial fraction is {serial_fraction:.3f}: by Amdahl's law the speedup "
            f"cannot pass {cap} however many workers (start-up, collection, teardown and the "
            "longest test do not shrink with more workers)."
        )
        one = next((p["wall_seconds"] for p in pts if p["workers"] == 1), None)
        if one and longest and longest["seconds"] > 0:
            bound = one / longest["seconds"]
            if serial_fraction <= 0.001 or bound < 1 / serial_fraction:
                message += (
                    f" The longest test caps it lower: {bound:.1f}× ({one:.1f} s at 1 worker "
                    f"/ {longest['seconds']:.1f} s)."
                )
        out.append({"kind": "amdahl", "message": message})
    efficient = [p for p in with_speedup if p["efficiency"] >= EFFICIENCY_TARGET]
    if efficient:
        top = max(efficient, key=lambda p: p["workers"])
        out.append(
            {
                "kind": "efficiency",
                "message": f"The largest count still at efficiency ≥ {EFFICIENCY_TARGET} is "
                f"{top['workers']} ({top['efficiency']:.2f}).",
            }
        )
    return out


def analyse(runs: list[dict], cores: int, longest: dict | None = None) -> dict:
    """Everything the Scaling view shows (GET /api/suites/{id}/scaling)."""
    pts = points(runs)
    s = fit_serial_fraction(pts)
    recommended, reason = recommend(pts)
    top = max((p["workers"] for p in pts), default=1)
    curve_n = list(range(1, max(top, 8) + 1))
    return {
        "points": pts,
        "serial_fraction": s,
        "recommended_workers": recommended,
        "reason": reason,
        "rule": RULE,
        "cores": cores,
        "fit": (
            [{"workers": n, "speedup": round(amdahl(s, n), 4)} for n in curve_n]
            if s is not None
            else []
        ),
        "explanations": explain(pts, cores, s, longest),
    }
