"""Grouping modes across machines, end to end (issue #15): a run over three real Celery agents
under ``dist: loadscope`` and ``dist: loadgroup``, through serve's dispatcher, as in
tests/test_agents.py (loadfile is tested there).

What the stored results must show: each unit (a class or a module's functions under
loadscope; an ``xdist_group`` under loadgroup, the ungrouped tests one by one) ran entirely on
one worker of one machine (``AGENT/gwN``), its tests one after the other, every test reported
once, under its plain node id (no ``@group`` suffix: the group is the result's own field).

The generated suite's tests wait, bounded, until two machines have started one (a barrier in
a directory every machine's copy writes to), so the units are spread over machines whatever
the order in which the agents take their shards; that is what the assertions are about.
"""

from __future__ import annotations

import collections
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.fleet import Fleet, needs_broker

pytestmark = [
    pytest.mark.services,
    needs_broker,
]
SLEEP = 0.05
SUITE = {
    "pytest.ini": "[pytest]\n",
    "tests/__init__.py": "",
    "tests/conftest.py": """
        import pathlib
        import time

        import pytest

        BARRIER = pathlib.Path({barrier!r})
        MACHINE = pathlib.Path(__file__).resolve().parents[1].name  # the copy's directory


        @pytest.fixture(autouse=True)
        def two_machines_at_work():
            BARRIER.mkdir(exist_ok=True)
            (BARRIER / MACHINE).touch()
            deadline = time.monotonic() + 20
            while len(list(BARRIER.iterdir())) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            yield
    """,
    "tests/test_scoped.py": """
        import time
        import pytest

        class TestAlpha:
            @pytest.mark.parametrize("i", range(3))
            def test_alpha(self, i):
                time.sleep({sleep})

        class TestBeta:
            @pytest.mark.parametrize("i", range(3))
            def test_beta(self, i):
                time.sleep({sleep})

        @pytest.mark.parametrize("i", range(3))
        def test_function(i):
            time.sleep({sleep})
    """,
    "tests/test_scoped_more.py": """
        import time
        import pytest

        class TestGamma:
            @pytest.mark.parametrize("i", range(3))
            def test_gamma(self, i):
                time.sleep({sleep})

        @pytest.mark.parametrize("i", range(3))
        def test_more(i):
            time.sleep({sleep})
    """,
    "tests/test_groups.py": """
        import time
        import pytest

        @pytest.mark.xdist_group("db")
        @pytest.mark.parametrize("i", range(3))
        def test_db(i):
            time.sleep({sleep})

        @pytest.mark.xdist_group(name="db")
        class TestDbClass:
            def test_read(self):
                time.sleep({sleep})

            def test_write(self):
                time.sleep({sleep})

        @pytest.mark.xdist_group("cache")
        @pytest.mark.parametrize("i", range(3))
        def test_cache(i):
            time.sleep({sleep})

        @pytest.mark.parametrize("i", range(4))
        def test_free(i):
            time.sleep({sleep})
    """,
    "tests/test_groups_more.py": """
        import time
        import pytest

        @pytest.mark.xdist_group("db")
        def test_db_elsewhere():
            time.sleep({sleep})
    """,
}
TOTAL = 9 + 6 + 12 + 1


def group_of(nodeid: str) -> str:
    """The xdist_group the suite above gives a test (by its name), "" for none."""
    if "::test_db" in nodeid or "::TestDbClass::" in nodeid:
        return "db"
    return "cache" if "::test_cache" in nodeid else ""


def scope_of(nodeid: str) -> str:
    """loadscope's unit: the test's class, or its module for a module-level function."""
    parts = nodeid.split("::")
    return "::".join(parts[:2]) if parts[1].startswith("Test") else parts[0]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grouping")
    barrier = tmp / "barrier"

    def maker(path: Path) -> Path:
        for name, text in SUITE.items():
            file = path / name
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(textwrap.dedent(text).format(barrier=str(barrier), sleep=SLEEP))
        return path

    fleet = Fleet(tmp, maker=maker)
    fleet.barrier = barrier
    with fleet.serving(machines=3):
        yield fleet


def run_in_mode(fleet: Fleet, dist: str) -> tuple[dict, list[dict]]:
    fleet.wait(lambda: len(fleet.idle()) == 3, 20, "3 idle agents")
    shutil.rmtree(fleet.barrier, ignore_errors=True)  # each run meets at its own barrier
    run = fleet.wait_run(fleet.launch(machines=3, workers=2, dist=dist), timeout=60)
    assert run["status"] == "passed", run["message"]
    assert run["tests"]["total"] == TOTAL and run["tests"]["passed"] == TOTAL
    results = fleet.results(run["id"])
    assert not [r for r in results if r["outcome"] in ("crashed", "rerun")]
    nodeids = [r["nodeid"] for r in results]
    assert len(nodeids) == len(set(nodeids)) == TOTAL, "every test reported once"
    assert not [n for n in nodeids if "@" in n], "plain node ids, no @group suffix"
    return run, results


def assert_units_kept_together(fleet: Fleet, results: list[dict], unit_of) -> dict:
    """Each unit's tests on one worker of one machine, one after the other. Returns
    {unit: worker}."""
    units = collections.defaultdict(list)
    for r in results:
        units[unit_of(r)].append(r)
    where = {}
    for unit, tests in units.items():
        workers = {r["worker"] for r in tests}
        assert len(workers) == 1, (unit, workers)
        (where[unit],) = workers
        machine, worker = where[unit].split("/")
        assert machine.endswith(f"-{fleet.tag}") and worker.startswith("gw"), where[unit]
        spans = sorted((r["start"], r["stop"]) for r in tests)
        for (_, stop), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= stop - 1e-3, (unit, "a unit overlapped with itself", spans)
    machines = {w.split("/")[0] for w in where.values()}
    assert len(machines) >= 2, f"the units were not spread over machines: {where}"
    return where


def test_loadscope_keeps_a_class_or_a_module_on_one_worker_across_machines(fleet):
    run, results = run_in_mode(fleet, "loadscope")
    where = assert_units_kept_together(fleet, results, lambda r: scope_of(r["nodeid"]))
    assert set(where) == {
        "tests/test_scoped.py::TestAlpha",
        "tests/test_scoped.py::TestBeta",
        "tests/test_scoped.py",
        "tests/test_scoped_more.py::TestGamma",
        "tests/test_scoped_more.py",
        "tests/test_groups.py",
        "tests/test_groups.py::TestDbClass",
        "tests/test_groups_more.py",
    }
    assert {r["group"] for r in results} == {""}  # groups are loadgroup's only
    assert run["workers"] == 6


def test_loadgroup_keeps_a_group_on_one_worker_across_machines_and_files(fleet):
    run, results = run_in_mode(fleet, "loadgroup")
    for r in results:
        assert r["group"] == group_of(r["nodeid"]), r
    where = assert_units_kept_together(
        fleet, results, lambda r: "@" + r["group"] if r["group"] else r["nodeid"]
    )
    assert len(where) == 2 + (TOTAL - 6 - 3)  # @db, @cache and every ungrouped test alone
    db = [r for r in results if r["group"] == "db"]
    assert {r["nodeid"].split("::")[0] for r in db} == {
        "tests/test_groups.py",
        "tests/test_groups_more.py",
    }  # one group over two files, still one worker
    assert len(db) == 6 and len({r["worker"] for r in db}) == 1
