"""A warm start for the one-shot ``manage.py run_suite PATH``: the suite's interpreter starts
importing pytest and its plugins while this process is still starting Django.

A cold ``run_suite`` spends its first ~0.5 s in Django (imports, the database, the launch)
before it starts the run's interpreter, which then spends ~0.5 s importing pytest: on a
machine with a core to spare the two can overlap. ``manage.py`` calls ``start`` before it
imports Django; it starts a zygote (``runner.warm``) for what that run will most likely be:
the suite at PATH, run by this interpreter with the environment ``launch.build_spec`` gives
a suite with no variables of its own. ``run_suite`` hands it to its pool (``take``), which
uses it only if the run's interpreter, directory and environment are exactly those (a suite
registered with its own Python or variables starts cold, as before, and the zygote is ended
as the run starts). ``run_suite`` ends it before it exits, used or not; it is also a process
of its own session watching this one once its imports are done: if this process dies, the
zygote and whatever it forked go with it.

Nothing of Django is imported before ``start`` returns but the settings module, which Django
imports next anyway.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when used: manage.py imports this module for every command
    from runner import warm

_zygote = None


def start(argv: list[str]) -> None:
    """``argv``: the command line; a zygote is started for ``run_suite PATH ...`` only (a
    ``--suite NAME`` is known from the database alone)."""
    global _zygote
    if len(argv) < 3 or argv[1] != "run_suite" or argv[2].startswith("-"):
        return
    if any(a.startswith(("--settings", "--pythonpath")) for a in argv):
        return  # another settings module than the environment's: Django's to find
    if len(os.sched_getaffinity(0)) < 2:
        return  # no core to overlap on: a zygote that ends unused would only cost time
    try:
        _zygote = _start(argv)
    except Exception:  # noqa: BLE001 - a head start only; the run starts cold without it
        _zygote = None


def _start(argv: list[str]) -> warm.Zygote | None:
    from runner import command, warm

    path = Path(argv[2]).expanduser()
    if not path.is_dir() or not warm.supported():
        return None  # (the command says what is wrong with the path)
    try:  # Django imports the same module next, from sys.modules
        settings = importlib.import_module(os.environ["DJANGO_SETTINGS_MODULE"])
    except Exception:  # noqa: BLE001 - Django reports it
        return None
    if not getattr(settings, "PTD_WARM_START", False):
        return None
    # As Django will have done when the run's environment is made from os.environ.
    base = dict(os.environ)
    if getattr(settings, "TIME_ZONE", None) and hasattr(time, "tzset"):
        base["TZ"] = settings.TIME_ZONE
    pycache = getattr(settings, "PTD_PYCACHE_DIR", None)
    pycache_dir = str(pycache) if pycache else None
    env = command.build_env(base, {}, None, None, pycache_dir=pycache_dir)
    return warm.Zygote(sys.executable, str(path.resolve()), env)


def take() -> warm.Zygotes | None:
    """Zygotes for ``run_suite``'s pool: the one started ahead (None if there is none); no
    other is started after the run."""
    global _zygote
    zygote, _zygote = _zygote, None
    if zygote is None:
        return None
    from runner import warm

    zygotes = warm.Zygotes(replenish=False)
    zygotes.adopt(zygote)
    return zygotes


def discard() -> None:
    """End the zygote if no run took it: the run starts elsewhere (agents, a server), or the
    command is leaving (done, or refused before any run)."""
    global _zygote
    zygote, _zygote = _zygote, None
    if zygote is not None:
        zygote.end(timeout=2.0)
