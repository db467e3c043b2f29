"""A suite's flaky and failing lists: querysets shared by the pages, the report and the API."""

from __future__ import annotations

from django.db.models import F, FloatField
from django.db.models.functions import Cast

from runs.models import Suite, TestStat

SORTS = {
    "flip_rate": ("-flip_ratio", "-last_flip_at"),
    "last_flip": ("-last_flip_at",),
    "last_seen": ("-last_seen_at",),
    "flips": ("-flip_count", "-last_flip_at"),
    "fail_rate": ("-fail_rate", "-last_flip_at"),
    "nodeid": ("nodeid",),
}


def flaky_queryset(suite: Suite, sort: str = "flip_rate"):
    qs = TestStat.objects.filter(suite=suite, flip_count__gt=0).annotate(
        flip_ratio=Cast(F("flip_count"), FloatField()) / Cast(F("runs_seen"), FloatField())
    )
    return qs.order_by(*SORTS.get(sort, SORTS["flip_rate"]), "nodeid")


def failing_queryset(suite: Suite):
    """Tests that failed in every run they ran in (never passed): failing, not flaky."""
    return TestStat.objects.filter(
        suite=suite, flip_count=0, runs_seen__gt=0, runs_failed=F("runs_seen")
    ).order_by("nodeid")
