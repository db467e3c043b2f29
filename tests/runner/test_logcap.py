"""A run's log keeps its head and tail within RunSpec.log_max_bytes (issue #12 item 10)."""

from __future__ import annotations

import dataclasses

from runner.pool import Pool
from tests.runner.test_runner_pool import Recorder, script_spec

PRINTS = """
out = sys.stdout.buffer
out.write(b"HEAD-MARK\\n")
for i in range(50_000):
    out.write(b"%08d middle line of a very talkative test\\n" % i)
out.write(b"TAIL-MARK\\n")
out.flush()
"""


PRINTED = (
    len(b"HEAD-MARK\n") + 50_000 * len(b"00000000 middle line of a very talkative test\n") + 10
)


def run_once(tmp_path, limit):
    sink = Recorder()
    pool = Pool(sink, reap_orphans=False)
    spec = dataclasses.replace(script_spec(tmp_path, 1, PRINTS), log_max_bytes=limit)
    try:
        pool.submit(spec)
        outcome = pool.wait(1, timeout=60)
    finally:
        pool.shutdown()
    with open(spec.log_path, "rb") as fh:
        return outcome, fh.read()


def test_a_talkative_run_keeps_the_head_and_the_tail_of_its_output(tmp_path):
    outcome, log = run_once(tmp_path, 8192)
    printed = PRINTED
    assert outcome.returncode == 0 and outcome.log_bytes_cut == printed - 8192
    head, note, tail = log.partition("\n[… ".encode())
    assert note and head.startswith(b"HEAD-MARK\n") and len(head) == 4096
    note, _, tail = tail.partition(b"\n")
    assert f"{printed - 8192} bytes of output cut here".encode() in note
    assert len(tail) == 4096 and tail.endswith(b"middle line of a very talkative test\nTAIL-MARK\n")


def test_without_a_cap_everything_is_kept(tmp_path):
    outcome, log = run_once(tmp_path, None)
    assert outcome.log_bytes_cut == 0 and len(log) == PRINTED


def copy_through(writes, pause=0.0):
    """Write ``writes`` into a CappedLog's pipe (one os.write each); returns (reads, seconds)."""
    import os
    import tempfile
    import time

    from runner.logcap import CappedLog

    reads = []
    with tempfile.TemporaryDirectory() as tmp:
        log = CappedLog(os.path.join(tmp, "log"), None)
        take = log._take
        log._take = lambda chunk: (reads.append(len(chunk)), take(chunk))
        began = time.monotonic()
        for data in writes:
            os.write(log.write_fd, data)
            if pause:
                time.sleep(pause)
        log.finish()
        took = time.monotonic() - began
        with open(os.path.join(tmp, "log"), "rb") as fh:
            assert fh.read() == b"".join(writes)
    return reads, took


def test_a_trickle_of_output_is_read_in_a_few_wakeups_not_one_per_write():
    # pytest's progress: a character and a flush per test, a test every millisecond or so.
    reads, _ = copy_through([b"."] * 300, pause=0.001)
    assert len(reads) < 100


def test_a_flood_of_output_is_read_without_pausing():
    # 8 MB in 1 KB writes: a reader pausing after every read would take over 6 s (64 KB at
    # a time, 50 ms apart); this one keeps the pipe drained.
    reads, took = copy_through([b"x" * 1024] * 8192)
    assert took < 3.0 and sum(reads) == 8 * 1024 * 1024
