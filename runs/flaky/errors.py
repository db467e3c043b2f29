"""Error signatures: which failures of a test are "the same error" (pure, no Django)."""

from __future__ import annotations

import re

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_TMP = re.compile(r"/tmp/[^\s'\"]+")  # noqa: S108 (a pattern, not a file)
# A number on its own, with its unit if any: 0.93, 42, -1e-05, 0.93s, 250ms, 97%; not the
# digits of a name (a1, v2), nor a part of a version or address (1.2.3). A full stop after it
# ends the sentence.
_NUMBER = re.compile(
    r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?:ms|us|µs|ns|s|%)?(?!\w|\.\d)"
)


def error_line(longrepr: str) -> str:
    """An error's headline: its first ``E`` line, else its last line (addresses, /tmp masked)."""
    lines = [line.strip() for line in (longrepr or "").splitlines() if line.strip()]
    if not lines:
        return "(no error message)"
    line = next((line[1:].strip() for line in lines if line.startswith("E ")), lines[-1])
    return _TMP.sub("/tmp/…", _ADDRESS.sub("0x…", line))[:300]  # noqa: S108


def error_key(longrepr: str) -> str:
    """What groups errors: the headline with its numbers masked, so 'took 0.93 s' and 'took
    0.87 s' are one error (a timing, a random value, a count), as error trackers group them."""
    return _NUMBER.sub("#", error_line(longrepr))
