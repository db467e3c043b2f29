"""A worker's terminal reporter, silenced: the controller prints the run's only output.

Both engines' workers write to a terminal no one reads (xdist discards a worker's output; a
fork worker's would interleave with the controller's). Yet pytest's terminal reporter still
formats every result there and, at the end of the session, calls every plugin's
``pytest_terminal_summary``, and some are slow (hypothesis imports itself there). pytest 8
skipped those plugin summaries under ``--no-summary``; pytest 9.2 calls them anyway (only its
own sections are skipped). So a worker replaces the reporter by a stand-in that keeps its
attributes and implements none of its hooks: no progress, no summary, on any pytest.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest


class QuietTerminal:
    """Stands in for the terminal reporter in a worker: the attributes, none of the hooks.

    Code that asks for the terminal writer (assertion rewriting does, for its diffs) gets
    one with the controller's markup settings that writes nowhere; the controller prints.
    """

    def __init__(self, real: Any, tw: Any) -> None:
        self._real = real
        self._tw = tw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def silence_terminal(config: pytest.Config) -> None:
    pm = config.pluginmanager
    real = pm.get_plugin("terminalreporter")
    if real is None or isinstance(real, QuietTerminal):
        return
    try:  # not public API: the controller says so loudly (compat.terminal_gaps)
        from _pytest._io import TerminalWriter

        old = real._tw
    except (ImportError, AttributeError):
        return
    tw = TerminalWriter(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the worker
    tw.hasmarkup = old.hasmarkup
    tw.code_highlight = getattr(old, "code_highlight", False)
    with contextlib.suppress(Exception):
        tw.fullwidth = old.fullwidth
    real._tw = tw
    pm.unregister(real)
    pm.register(QuietTerminal(real, tw), "terminalreporter")
