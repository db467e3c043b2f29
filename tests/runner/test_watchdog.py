"""The watchdog's wait: it returns once the watched process has exited, a zombie included
(a parent that has not reaped it yet): it must neither miss that exit nor spin on it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from _ptd_inrun import lifeline

from runner import watchdog


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polling"])
def test_a_zombie_counts_as_exited(monkeypatch, pidfd):
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open")  # kernels or Pythons without pidfds
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    start = lifeline.start_time(child.pid)
    returned = threading.Event()
    waiter = threading.Thread(
        target=lambda: (watchdog.wait_for_exit(child.pid, start), returned.set()), daemon=True
    )
    waiter.start()
    try:
        assert not returned.wait(0.5)  # alive: the wait goes on
        child.stdin.close()  # the child exits; nobody reaps it yet
        assert returned.wait(10), "the wait did not see its process exit"
        assert lifeline.stat_fields(child.pid)[0] == "Z"  # still a zombie when it returned
    finally:
        child.kill()
        child.wait()
