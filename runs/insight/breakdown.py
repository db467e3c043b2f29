"""Where a run's wall time went: start-up, collection, the test phase, idle workers, teardown.

Computed once, when the run finishes (runs.execution.sink.finish_run), from the moments its
events carry and its stored results:

    launch ─ session start ─ collection finish ─ first test start … last test stop ─ exit
    └──── start-up ────┘└─── collection ───┘└ start-up ┘└──── tests ────┘└─ teardown ─┘

``startup`` is everything before the first test that is not collection (the interpreter and
pytest starting, plugins, conftest imports before the session; then starting or forking the
workers); under xdist every worker collects the suite itself, so its ``collection`` includes
the workers starting. ``startup + collection + tests + teardown`` is the wall. ``idle`` is in
worker-seconds: over every worker, the test phase minus the time it spent in tests
(imbalance). ``tail`` is the end of the test phase during which some worker had nothing left.

Each part the rules below find bad gets a finding: one sentence the user can act on.
"""

from __future__ import annotations

from statistics import fmean

PARTS = ("startup", "collection", "tests", "idle", "teardown")
# When a part is bad (shares of the wall, or of the workers' time in the test phase).
STARTUP_BAD = 0.40
COLLECTION_BAD = 0.30
IDLE_BAD = 0.25
TEARDOWN_BAD = 0.25
LONGEST_BOUNDS = 0.50  # the longest test is at least this share of the test phase
MIN_SECONDS = 0.5  # parts shorter than this are never called bad: nothing to win


def _pct(value: float) -> str:
    return f"{round(value * 100)} %"


def scope_of(nodeid: str, dist: str, group: str = "") -> str:
    """The unit xdist's --dist hands a worker whole: a module or class (loadscope), a file
    (loadfile), an xdist_group (loadgroup); under load, each test alone."""
    if dist == "loadscope":
        return nodeid.rsplit("::", 1)[0]
    if dist == "loadfile":
        return nodeid.split("::", 1)[0]
    if dist == "loadgroup" and group:
        return group
    return nodeid


def compute(
    *,
    launch: float | None,
    wall: float | None,
    marks: dict,
    tests: list[dict],
    workers: int,
    dist: str = "load",
    stopped: str | None = None,
) -> dict | None:
    """The breakdown of a finished run, or None without a launch time and a wall (of 1 ms at
    least: the figures are rounded to it, and shares of a wall of 0 are no figures).

    ``marks``: epoch seconds of ``session_start`` and ``collected`` (either may be missing);
    ``tests``: its executed attempts as dicts with ``nodeid, worker, start, stop, duration``
    (``group`` optional). ``stopped``: how the run was ended before its tests were over
    ("cancelled", "timed out", "interrupted"): its test phase lasts to the end (the tests then
    running have no result to show it), and nothing in it is teardown, idle or tail.
    """
    if launch is None or not wall or wall < 0.001:  # under a millisecond: nothing to show
        return None
    exit_ = launch + wall
    timed = [t for t in tests if t.get("start") is not None and t.get("stop") is not None]

    def clamp(moment):
        return None if moment is None else min(max(moment, launch), exit_)

    session = clamp(marks.get("session_start"))
    collected = clamp(marks.get("collected"))
    if session is not None and collected is not None and collected < session:
        collected = session
    first = clamp(min((t["start"] for t in timed), default=None))
    last = clamp(max((t["stop"] for t in timed), default=None))
    if first is None:  # no test ran: all before the end is start-up and collection
        first = last = max(m for m in (launch, session, collected) if m is not None)
    before = collected if collected is not None else (session if session is not None else launch)
    before = min(before, first)
    collection = (before - session) if session is not None and collected is not None else 0.0
    startup = (first - launch) - collection
    if stopped:
        last = exit_
    phase = max(0.0, last - first)
    teardown = max(0.0, exit_ - last)
    count = max(workers, len({t["worker"] for t in timed}), 1)
    busy: dict[str, float] = {}
    stops: dict[str, float] = {}
    for t in timed:
        busy[t["worker"]] = busy.get(t["worker"], 0.0) + (t.get("duration") or 0.0)
        stops[t["worker"]] = max(stops.get(t["worker"], t["stop"]), t["stop"])
    idle_each = [max(0.0, phase - min(b, phase)) for b in busy.values()]
    idle_each += [phase] * (count - len(busy))  # workers that never ran a test
    idle = sum(idle_each)
    ends = list(stops.values()) + [first] * (count - len(stops))
    tail = max(0.0, last - min(ends)) if timed else 0.0
    longest = max(timed, key=lambda t: t.get("duration") or 0.0, default=None)
    result = {
        "startup": round(max(0.0, startup), 3),
        "collection": round(max(0.0, collection), 3),
        "tests": round(phase, 3),
        "idle": round(idle, 3),
        "teardown": round(teardown, 3),
        "tail": round(tail, 3),
        "wall": round(wall, 3),
        "workers": count,
        "idle_share": round(idle / (count * phase), 4) if phase > 0 else 0.0,
        "longest_test": (
            {"nodeid": longest["nodeid"], "seconds": round(longest.get("duration") or 0.0, 3)}
            if longest
            else None
        ),
    }
    if stopped:  # the tests running at the end have no result: idle is not known
        result.update(stopped=stopped, idle=0.0, idle_share=0.0, tail=0.0)
        result["findings"] = [
            {
                "part": "tests",
                "message": f"The run was {stopped} before its tests were over: the tests it "
                "was running then have no result, so how busy its workers were is not known. "
                "Compare runs that finished.",
            }
        ]
    else:
        result["findings"] = findings(result, timed, idle_each, phase, dist)
    return result


def findings(b: dict, tests: list[dict], idle_each: list[float], phase: float, dist: str):
    """What is bad in a breakdown, each with a sentence saying what to do about it."""
    wall = b["wall"]
    out: list[dict] = []

    def bad(part: str, seconds: float, share: float, threshold: float) -> bool:
        return seconds >= MIN_SECONDS and share >= threshold

    if bad("startup", b["startup"], b["startup"] / wall, STARTUP_BAD):
        out.append(
            {
                "part": "startup",
                "message": f"Start-up is {_pct(b['startup'] / wall)} of this run's wall "
                f"({b['startup']:.1f} s before the first test, not counting collection): "
                "use fewer workers or warm starts (PTD_WARM_START), and keep conftest.py's "
                "imports light.",
            }
        )
    if bad("collection", b["collection"], b["collection"] / wall, COLLECTION_BAD):
        out.append(
            {
                "part": "collection",
                "message": f"Collection is {_pct(b['collection'] / wall)} of the wall "
                f"({b['collection']:.1f} s): heavy imports at module level or in conftest.py; "
                "under xdist every worker collects again (the fork engine collects once).",
            }
        )
    if b["workers"] > 1 and phase >= MIN_SECONDS and b["idle_share"] >= IDLE_BAD:
        out.append({"part": "idle", "message": idle_message(b, tests, idle_each, phase, dist)})
    if bad("teardown", b["teardown"], b["teardown"] / wall, TEARDOWN_BAD):
        out.append(
            {
                "part": "teardown",
                "message": f"Teardown is {_pct(b['teardown'] / wall)} of the wall "
                f"({b['teardown']:.1f} s from the last test to the exit): session fixtures' "
                "finalizers, plugins writing reports, workers shutting down.",
            }
        )
    return out


def idle_message(b: dict, tests: list[dict], idle_each: list[float], phase: float, dist: str):
    """Why the workers sat idle, as precisely as the results say."""
    n = b["workers"]
    mostly = [i for i in idle_each if i >= phase / 2]
    k = len(mostly)
    sat = (
        f"{k} of {n} workers sat idle {_pct(fmean(mostly) / phase)} of the test phase"
        if mostly
        else f"the workers sat idle {_pct(b['idle_share'])} of the test phase"
    )
    distinct = {t["nodeid"] for t in tests}
    if dist in ("loadscope", "loadfile", "loadgroup") and tests:
        units: dict[str, set] = {}
        for t in tests:
            units.setdefault(scope_of(t["nodeid"], dist, t.get("group") or ""), set()).add(
                t["nodeid"]
            )
        name, members = max(units.items(), key=lambda kv: len(kv[1]))
        if len(members) > len(distinct) / n:
            return (
                f"One {dist} unit ({name}) holds {len(members)} of {len(distinct)} tests: "
                f"{sat}. Split it, or use --dist load."
            )
    longest = b["longest_test"]
    if longest and longest["seconds"] >= LONGEST_BOUNDS * phase:
        return (
            f"The longest test, {longest['nodeid']}, takes {longest['seconds']:.1f} s of the "
            f"{phase:.1f} s test phase: {sat} while it ran. Split it: no worker count makes "
            "the run shorter than it."
        )
    if len(distinct) < 2 * n:
        return f"Only {len(distinct)} tests for {n} workers: {sat}. Use fewer workers."
    return f"{sat.capitalize()}: fewer workers would finish about as fast."


SEGMENTS = (  # (key, label, fill): the stacked bar's parts, left to right, in wall seconds
    ("startup", "start-up", "#94a3b8"),
    ("collection", "collection", "#a78bfa"),
    ("busy", "tests (workers busy)", "#16a34a"),
    ("idle", "idle workers (share of the test phase)", "#f59e0b"),
    ("teardown", "teardown", "#64748b"),
)


def bar(b: dict, width: float = 800.0) -> list[dict]:
    """The stacked bar of a breakdown: one segment per part, ``x`` and ``width`` in pixels of
    a bar ``width`` wide. The test phase is split into busy and idle in proportion to the
    workers' idle share, so the bar's length is the wall."""
    idle = b["tests"] * b["idle_share"]
    seconds = {
        "startup": b["startup"],
        "collection": b["collection"],
        "busy": b["tests"] - idle,
        "idle": idle,
        "teardown": b["teardown"],
    }
    total = sum(seconds.values()) or 1.0
    bad = {f["part"] for f in b.get("findings", [])}
    out, x = [], 0.0
    for key, label, fill in SEGMENTS:
        w = width * seconds[key] / total
        out.append(
            {
                "key": key,
                "label": label,
                "fill": fill,
                "seconds": round(seconds[key], 3),
                "share": round(seconds[key] / total, 3),
                "x": round(x, 1),
                "label_x": round(x + 4, 1),
                "width": round(w, 1),
                "bad": key in bad,
            }
        )
        x += w
    return out
