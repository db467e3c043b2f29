"""Node id helpers shared by the in-run code and the dashboard (pure, stdlib only)."""

from __future__ import annotations

import re

# pytest-repeat appends "i-N" as the last parametrize id: ``t[1-4]`` or ``t[a-1-4]``.
_REPEAT_RE = re.compile(r"^(?P<head>.*?)\[(?:(?P<params>.*)-)?(?P<i>\d+)-(?P<n>\d+)\]$")


def group_of(nodeid: str) -> str | None:
    """The ``@name`` suffix pytest-xdist appends under ``--dist loadgroup``, if any."""
    at = nodeid.rfind("@")
    if at > nodeid.rfind("]") and at > nodeid.rfind("::") >= 0:
        return nodeid[at + 1 :]
    return None


def strip_group(nodeid: str) -> str:
    group = group_of(nodeid)
    return nodeid if group is None else nodeid[: -len(group) - 1]


def base_nodeid(nodeid: str) -> str:
    """The test's identity across repeats and dist modes.

    ``a.py::t[2-4]`` -> ``a.py::t``; ``a.py::t[x-2-4]`` -> ``a.py::t[x]``;
    ``a.py::t@db`` -> ``a.py::t``.
    """
    nodeid = strip_group(nodeid)
    m = _REPEAT_RE.match(nodeid)
    if not m or not 1 <= int(m.group("i")) <= int(m.group("n")):
        return nodeid
    params = m.group("params")
    return f"{m.group('head')}[{params}]" if params else m.group("head")
