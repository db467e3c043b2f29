"""Load-mode thresholds: ``"p95<300ms"``, ``"errors<1%"``, ``"rps>200"``, optionally for one
test or endpoint (``"GET /items/{id}: p95<300ms"``) and optionally ``abort`` (the run stops
early when it fails). Parsed and checked here only: the API, the forms and ``run_suite`` call
``clean``; the aggregator calls ``evaluate``. Thresholds never reach pytest's argv.

Grammar: ``[TARGET ": "] METRIC OP NUMBER [UNIT] [" abort"]`` with
METRIC ``p50 p90 p95 p99 p99.9 min mean avg max`` (times: UNIT ``ms`` (default) or ``s``),
``errors`` (failed + exception iterations, UNIT ``%``, required) or ``rps`` (iterations per
second over the run, requests per second for an endpoint; optional ``/s``); OP ``< <= > >=``.
Values are reported in ms, %, or per second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_THRESHOLDS = 20
MAX_LENGTH = 300
TIME_METRICS = {
    "p50": "p50_ms",
    "p90": "p90_ms",
    "p95": "p95_ms",
    "p99": "p99_ms",
    "p99.9": "p99_9_ms",
    "min": "min_ms",
    "mean": "mean_ms",
    "avg": "mean_ms",
    "max": "max_ms",
}
METRICS = (*TIME_METRICS, "errors", "rps")
# A threshold with abort acts live only once its target has this many samples (one slow first
# request must not end an hour's run), and never for rps (the ramp-up makes it low at first).
ABORT_MIN_SAMPLES = 20
OPERATORS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_EXPR = re.compile(
    r"^(?P<metric>p50|p90|p95|p99\.9|p99|min|mean|avg|max|errors|rps)\s*"
    r"(?P<op><=|>=|<|>)\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|%|/s)?"
    r"(?:\s+(?P<abort>abort))?$"
)


class ThresholdError(ValueError):
    """A threshold that cannot be understood: its message is one line for the user."""


@dataclass(frozen=True)
class Threshold:
    expr: str  # as written (normalised spaces)
    target: str  # "" for the whole run, else a test's nodeid or an endpoint "GET /path"
    metric: str
    op: str
    limit: float  # in ms, %, or per second
    abort: bool

    @classmethod
    def parse(cls, text: str) -> Threshold:
        if not isinstance(text, str):
            raise ThresholdError(f"a threshold is a string, got {text!r}")
        expr = " ".join(text.split())
        if not expr:
            raise ThresholdError("empty threshold")
        if len(expr) > MAX_LENGTH:
            raise ThresholdError(f"threshold longer than {MAX_LENGTH} characters")
        target, sep, rule = expr.rpartition(": ")
        if sep and not target.strip():
            raise ThresholdError(f"{text!r}: nothing before ': ' (a test or 'METHOD /path')")
        match = _EXPR.match(rule)
        if match is None:
            raise ThresholdError(
                f"{text!r} is not a threshold: write e.g. 'p95<300ms', 'errors<1%', 'rps>200' "
                "(metrics: " + ", ".join(METRICS) + "), optionally 'TARGET: ' before and "
                "' abort' after"
            )
        metric, op, unit = match["metric"], match["op"], match["unit"]
        limit = float(match["number"])
        if metric in TIME_METRICS:
            if unit not in (None, "ms", "s"):
                raise ThresholdError(f"{text!r}: a time is in ms or s")
            limit = limit * 1000 if unit == "s" else limit
        elif metric == "errors":
            if unit != "%":
                raise ThresholdError(f"{text!r}: give errors as a percentage, e.g. errors<1%")
            if limit > 100:
                raise ThresholdError(f"{text!r}: a percentage is at most 100")
        elif unit not in (None, "/s"):
            raise ThresholdError(f"{text!r}: rps is a number per second, e.g. rps>200")
        return cls(expr, target.strip(), metric, op, limit, bool(match["abort"]))

    def value(self, figures: dict | None, seconds: float) -> float | None:
        """The metric of one entry's figures (``Entry.figures()``, ``count`` and ``failures``
        included) over ``seconds`` of load; None when there is no sample."""
        if not figures or not figures.get("count"):
            return None
        if self.metric in TIME_METRICS:
            return figures.get(TIME_METRICS[self.metric])
        if self.metric == "errors":
            return 100.0 * figures["failures"] / figures["count"]
        return figures["count"] / seconds if seconds > 0 else None

    def check(self, value: float | None) -> bool:
        """Whether ``value`` meets the threshold; no sample at all fails it (a CI gate on an
        endpoint that was never called must not pass silently)."""
        return value is not None and OPERATORS[self.op](value, self.limit)

    def may_abort_with(self, figures: dict | None) -> bool:
        """Whether a live failure of this threshold is judged enough to stop the run."""
        count = (figures or {}).get("count", 0)
        return self.abort and self.metric != "rps" and count >= ABORT_MIN_SAMPLES


def parse_all(texts) -> list[Threshold]:
    if texts is None:
        return []
    if isinstance(texts, str):
        texts = [line for line in texts.splitlines() if line.strip()]
    if not isinstance(texts, list | tuple):
        raise ThresholdError("thresholds are a list of strings")
    if len(texts) > MAX_THRESHOLDS:
        raise ThresholdError(f"at most {MAX_THRESHOLDS} thresholds")
    return [Threshold.parse(text) for text in texts]


def clean(texts) -> list[str]:
    """The thresholds to store (normalised), or ThresholdError with a one-line message.
    Accepts a list of strings or a text with one threshold per line (the forms)."""
    return [t.expr for t in parse_all(texts)]


def evaluate(thresholds: list[Threshold], figures_of, seconds: float) -> list[dict]:
    """``[{expr, value, passed, abort}]``; ``figures_of(target)`` gives the figures of the whole
    run (target "") or of a test / endpoint (None when it has no samples)."""
    out = []
    for threshold in thresholds:
        figures = figures_of(threshold.target)
        value = threshold.value(figures, seconds)
        out.append(
            {
                "expr": threshold.expr,
                "value": None if value is None else round(value, 3),
                "passed": threshold.check(value),
                "abort": threshold.abort,
            }
        )
    return out
