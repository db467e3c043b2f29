"""Which ``xdist_group`` each test belongs to, read from its marks, never from its node id.

pytest-xdist tells its loadgroup scheduler about groups by appending ``@group`` to a grouped
test's node id in the worker (it assigns ``item._nodeid``). pytest 9.2 keeps node ids in a
structured ``item._id``, so that assignment no longer takes effect and stock
``--dist loadgroup`` silently stops grouping (pytest-dev/pytest-xdist#1386). PTD reads the
marks itself, in both engines:

* fork engine: the controller has the collected items (``item_groups``).
* xdist engine: the controller collects nothing. When PTD's scheduler handles loadgroup, the
  controller hands every worker a private directory (``workerinput[DIR_KEY]``, set in
  ``pytest_configure_node``); the worker's in-run plugin writes the group of each collected
  item there just before xdist sends the collection (``write_worker_groups``), and the
  scheduler reads it with that collection (``read_worker_groups``).

The controller then publishes ``{nodeid: group}`` in ``config.stash[NODE_GROUPS]`` so the
event Reporter can put each test's group in its ``test`` event.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import pytest

DIR_KEY = "ptd_groups_dir"  # in xdist's workerinput
NODE_GROUPS = pytest.StashKey[dict[str, str]]()
_DIR = pytest.StashKey[str]()


def item_group(item: pytest.Item) -> str | None:
    """The group name xdist would give ``item`` (several marks: sorted names joined by ``_``)."""
    names = {
        str(m.args[0] if m.args else m.kwargs.get("name", "default"))
        for m in item.iter_markers("xdist_group")
    }
    return "_".join(sorted(names)) if names else None


def item_groups(items: Sequence[pytest.Item]) -> list[str | None]:
    return [item_group(item) for item in items]


def publish(config: pytest.Config, ids: Sequence[str], groups: Sequence[str | None]) -> None:
    """Make ``{nodeid: group}`` of the grouped tests known to the event Reporter."""
    config.stash[NODE_GROUPS] = {nodeid: g for nodeid, g in zip(ids, groups, strict=True) if g}


# -- xdist engine: the controller's side --------------------------------------------------


def controller_dir(config: pytest.Config) -> str:
    """The run's private directory for the workers' group files (made on first use)."""
    directory = config.stash.get(_DIR, None)
    if directory is None:
        directory = config.stash[_DIR] = tempfile.mkdtemp(prefix="ptd-groups-")
    return directory


def remove_dir(config: pytest.Config) -> None:
    directory = config.stash.get(_DIR, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def read_worker_groups(directory: str, worker_id: str, count: int) -> list[str | None] | None:
    """The groups ``worker_id`` wrote for its ``count`` collected items; None if unusable."""
    try:
        with open(os.path.join(directory, f"{worker_id}.json"), encoding="utf-8") as fh:
            groups = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(groups, list) or len(groups) != count:
        return None
    return [g if isinstance(g, str) and g else None for g in groups]


# -- xdist engine: the worker's side ------------------------------------------------------


def write_worker_groups(config: pytest.Config, items: Sequence[pytest.Item]) -> None:
    workerinput: Any = getattr(config, "workerinput", None) or {}
    directory = workerinput.get(DIR_KEY)
    if not directory:
        return
    worker_id = str(workerinput.get("workerid", "gw0"))
    path = os.path.join(directory, f"{worker_id}.json")
    tmp = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):  # the controller says so loudly if it finds nothing
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(item_groups(items), fh)
        os.replace(tmp, path)  # whole or absent, even for a replacement worker
