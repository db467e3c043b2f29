"""Load-mode thresholds: parsed, refused with one clear line, evaluated, and abort judged."""

import pytest

from runs.load import thresholds as th


@pytest.mark.parametrize(
    ("text", "target", "metric", "op", "limit", "abort"),
    [
        ("p95<300ms", "", "p95", "<", 300.0, False),
        ("p99 < 1s", "", "p99", "<", 1000.0, False),
        ("p99.9<=2.5s abort", "", "p99.9", "<=", 2500.0, True),
        ("errors<1%", "", "errors", "<", 1.0, False),
        ("rps>200", "", "rps", ">", 200.0, False),
        ("rps>=12.5/s", "", "rps", ">=", 12.5, False),
        ("mean<250", "", "mean", "<", 250.0, False),
        ("GET /items/{id}: p95<300ms abort", "GET /items/{id}", "p95", "<", 300.0, True),
        (
            "tests/test_a.py::test_x[1]: errors<0.5%",
            "tests/test_a.py::test_x[1]",
            "errors",
            "<",
            0.5,
            False,
        ),
    ],
)
def test_parse(text, target, metric, op, limit, abort):
    t = th.Threshold.parse(text)
    assert (t.target, t.metric, t.op, t.limit, t.abort) == (target, metric, op, limit, abort)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("p95", "is not a threshold"),
        ("p97<300ms", "is not a threshold"),
        ("p95<300%", "a time is in ms or s"),
        ("errors<1", "percentage"),
        ("errors<101%", "at most 100"),
        ("rps>2ms", "number per second"),
        ("p95<300ms stop", "is not a threshold"),
        (": p95<1s", "nothing before"),
        ("p95<3e2ms", "is not a threshold"),
        ("x" * 400, "longer than"),
    ],
)
def test_bad_thresholds_say_why_in_one_line(text, says):
    with pytest.raises(th.ThresholdError) as info:
        th.clean([text])
    assert says in str(info.value)
    assert "\n" not in str(info.value)


def test_clean_takes_a_list_or_lines_and_bounds_the_count():
    assert th.clean("p95<300ms\n\n  errors<1%   abort \n") == ["p95<300ms", "errors<1% abort"]
    assert th.clean(None) == []
    with pytest.raises(th.ThresholdError, match="list of strings"):
        th.clean({"p95": 3})
    with pytest.raises(th.ThresholdError, match="a string"):
        th.clean([3])
    with pytest.raises(th.ThresholdError, match="at most 20"):
        th.clean(["p95<1s"] * 21)


def figures(count, failures, p95):
    return {"count": count, "failures": failures, "p95_ms": p95, "mean_ms": p95 / 2}


def test_evaluate_values_and_verdicts():
    parsed = th.parse_all(
        ["p95<300ms", "errors<1%", "rps>200", "GET /x: p95<100ms", "GET /nope: p95<1s"]
    )
    by_target = {"": figures(1000, 20, 250.0), "GET /x": figures(500, 0, 120.0)}
    out = th.evaluate(parsed, by_target.get, seconds=4.0)
    assert [(r["value"], r["passed"]) for r in out] == [
        (250.0, True),
        (2.0, False),  # 20 of 1000 is 2 %
        (250.0, True),  # 1000 iterations in 4 s
        (120.0, False),
        (None, False),  # never called: no sample fails the gate
    ]


def test_abort_waits_for_samples_and_never_judges_rps_live():
    p95 = th.Threshold.parse("p95<100ms abort")
    assert not p95.may_abort_with(figures(th.ABORT_MIN_SAMPLES - 1, 0, 500.0))
    assert p95.may_abort_with(figures(th.ABORT_MIN_SAMPLES, 0, 500.0))
    assert not th.Threshold.parse("p95<100ms").may_abort_with(figures(1000, 0, 500.0))
    assert not th.Threshold.parse("rps>1000 abort").may_abort_with(figures(1000, 0, 1.0))
