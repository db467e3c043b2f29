"""Bounded, mergeable latency statistics: the one shape load mode counts in.

A ``Histogram`` keeps response times in microseconds rounded to two significant digits (as
Locust rounds its response times), so it holds at most ~90 buckets per decade whatever the
number of samples, two histograms merge exactly (bucket counts add), and a percentile read from
it is within 5 % of the raw sample's. ``Entry`` is one named row of statistics (a test, or an
endpoint ``GET /items/{id}``): counts, min / mean / max and its histogram. Both travel as plain
dicts (``to_dict`` / ``from_dict``) in events and in the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PERCENTILES = (50, 90, 95, 99, 99.9)


def bucket(micros: float) -> int:
    """``micros`` rounded to two significant digits (at least 1 µs)."""
    value = max(1, round(micros))
    if value < 100:
        return value
    scale = 10 ** (len(str(value)) - 2)
    return round(value / scale) * scale


class Histogram:
    __slots__ = ("counts", "total")

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: dict[int, int] = dict(counts or {})
        self.total = sum(self.counts.values())

    def add(self, ms: float, times: int = 1) -> None:
        key = bucket(ms * 1000.0)
        self.counts[key] = self.counts.get(key, 0) + times
        self.total += times

    def merge(self, other: Histogram) -> None:
        for key, count in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        self.total += other.total

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile in milliseconds (the smallest bucket holding at least q % of
        the samples), or None for an empty histogram."""
        if not self.total:
            return None
        rank = max(1, -(-self.total * q // 100))  # ceil(total * q / 100), at least the first
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                return key / 1000.0
        return max(self.counts) / 1000.0

    def to_dict(self) -> dict[str, int]:
        return {str(key): count for key, count in self.counts.items()}

    @classmethod
    def from_dict(cls, data: dict) -> Histogram:
        return cls({int(key): int(count) for key, count in (data or {}).items()})


@dataclass
class Entry:
    """Statistics of one test or endpoint: ``failures`` are failed assertions or HTTP error
    statuses, ``exceptions`` errors of any other kind (a connection refused, a fixture error)."""

    count: int = 0
    failures: int = 0
    exceptions: int = 0
    total_ms: float = 0.0
    min_ms: float | None = None
    max_ms: float | None = None
    histogram: Histogram = field(default_factory=Histogram)

    def add(self, ms: float, *, failed: bool = False, exception: bool = False) -> None:
        self.count += 1
        self.failures += failed
        self.exceptions += exception
        self.total_ms += ms
        self.min_ms = ms if self.min_ms is None else min(self.min_ms, ms)
        self.max_ms = ms if self.max_ms is None else max(self.max_ms, ms)
        self.histogram.add(ms)

    def merge(self, other: Entry) -> None:
        self.count += other.count
        self.failures += other.failures
        self.exceptions += other.exceptions
        self.total_ms += other.total_ms
        for name, pick in (("min_ms", min), ("max_ms", max)):
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(
                self,
                name,
                theirs if mine is None else mine if theirs is None else pick(mine, theirs),
            )
        self.histogram.merge(other.histogram)

    @property
    def mean_ms(self) -> float | None:
        return self.total_ms / self.count if self.count else None

    def figures(self) -> dict:
        """count, failures, min / mean / max and the percentiles (``p50_ms`` ... ``p99_9_ms``)."""
        out = {
            "count": self.count,
            "failures": self.failures + self.exceptions,
            "exceptions": self.exceptions,
            "min_ms": self.min_ms,
            "mean_ms": self.mean_ms,
            "max_ms": self.max_ms,
        }
        for q in PERCENTILES:
            value = self.histogram.percentile(q)
            if value is not None and self.min_ms is not None and self.max_ms is not None:
                # A bucket's rounded value may lie past the exact extremes: never report a
                # p95 above the max (or a p50 below the min).
                value = min(max(value, self.min_ms), self.max_ms)
            out[f"p{str(q).replace('.', '_')}_ms"] = value
        return out

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "failures": self.failures,
            "exceptions": self.exceptions,
            "total_ms": self.total_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "hist": self.histogram.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Entry:
        return cls(
            count=int(data.get("count", 0)),
            failures=int(data.get("failures", 0)),
            exceptions=int(data.get("exceptions", 0)),
            total_ms=float(data.get("total_ms", 0.0)),
            min_ms=data.get("min_ms"),
            max_ms=data.get("max_ms"),
            histogram=Histogram.from_dict(data.get("hist", {})),
        )
