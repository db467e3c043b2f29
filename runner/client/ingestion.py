"""The dashboard's ingestion API seen from a CI machine: a connection, spool files, the CI's
commit/branch/job URL (else the local git checkout's), and the command line to upload without
its token. Plain Python;
requests is imported when a Connection is made (``http.Client``).

Used by the pytest plugin (``plugin``) and by ``ptd upload`` and ``ptd run`` (``cli``); the
server strips tokens with the same strip_token.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

BATCH_MAX = 2000
BODY_MAX = 2_000_000  # bytes per POST: under the server's limit (Django's default, 2.5 MB)
TOKEN_OPTION = "--ptd-token"  # noqa: S105 - the option's name, not a secret
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 30.0
GIT_TIMEOUT = 2.0  # seconds per `git rev-parse`: a hung git must not hold up the test run

# CI systems' variables for the commit, branch and job URL (first set wins).
_CI_VARS = {
    "commit": ("PTD_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT", "BUILDKITE_COMMIT"),
    "branch": (
        "PTD_BRANCH",
        "GITHUB_HEAD_REF",
        "GITHUB_REF_NAME",
        "CI_COMMIT_REF_NAME",
        "GIT_BRANCH",
        "BUILDKITE_BRANCH",
    ),
    "ci_url": ("PTD_CI_URL", "CI_JOB_URL", "BUILD_URL", "BUILDKITE_BUILD_URL"),
}


def git_metadata(cwd: str | os.PathLike | None = None) -> dict[str, str]:
    """Commit and branch of the git checkout at ``cwd`` (`git rev-parse`), "" each when it is
    not one, git is missing or slow, or the HEAD is detached (no branch). Never raises: a run
    outside a checkout is sent without them, as before."""
    meta = {"commit": "", "branch": ""}
    for key, args in (("commit", ("HEAD",)), ("branch", ("--abbrev-ref", "HEAD"))):
        try:
            done = subprocess.run(
                ["git", "rev-parse", *args],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.SubprocessError, ValueError):
            return meta
        if done.returncode != 0:
            return meta
        meta[key] = done.stdout.strip()
    if meta["branch"] == "HEAD":  # detached: a commit, no branch
        meta["branch"] = ""
    return meta


def ci_metadata(
    env: dict | None = None, git_dir: str | os.PathLike | None = None
) -> dict[str, str]:
    """Commit, branch and CI job URL from the CI system's environment ("" when unknown). With
    ``git_dir`` (the plugin passes pytest's rootdir), a commit or branch the environment does
    not name comes from that git checkout: an ingested run off CI still says which code ran,
    so flakiness on the same commit is seen across machines (issue #17)."""
    env = os.environ if env is None else env
    meta = {key: next((env[v] for v in names if env.get(v)), "") for key, names in _CI_VARS.items()}
    if git_dir is not None and not (meta["commit"] and meta["branch"]):
        local = git_metadata(git_dir)
        meta["commit"] = meta["commit"] or local["commit"]
        meta["branch"] = meta["branch"] or local["branch"]
    if not meta["ci_url"] and env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        meta["ci_url"] = f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    meta["commit"] = meta["commit"][:64]
    meta["branch"] = meta["branch"][:200]
    meta["ci_url"] = meta["ci_url"][:1000]
    return meta


def strip_token(args: Any, token: str = "") -> list[str]:
    """The command line without ``--ptd-token T`` / ``--ptd-token=T``, and without the token's
    text anywhere else in it (the server strips them again, for older plugins)."""
    out: list[str] = []
    value_next = False
    for arg in map(str, args):
        if value_next:
            value_next = False
        elif arg == TOKEN_OPTION:
            value_next = True
        elif not arg.startswith(TOKEN_OPTION + "="):
            out.append(arg.replace(token, "[redacted]") if token else arg)
    return out


def new_spool_path() -> Path:
    """A spool file's path in a new directory only this user may enter (mkdtemp: 0700)."""
    return Path(tempfile.mkdtemp(prefix="ptd-spool-")) / "run.jsonl"


def open_spool(path: Path):
    """Append to a spool file readable by its owner only (0600), never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)  # a file given with --ptd-spool keeps no wider mode
    return os.fdopen(fd, "a", encoding="utf-8")


class Connection:
    """POSTs JSON to the dashboard's ingestion endpoints: one try each (a failure is spooled
    and sent again later, under the same event numbers), timeouts on every request."""

    def __init__(self, url: str, token: str):
        from .http import Client

        self.client = Client(
            url, token, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), retries=0, user_agent="ptd-ingest"
        )
        self.url = self.client.server

    def post(self, path: str, body: Any, timeout: float = READ_TIMEOUT) -> dict:
        data = body if isinstance(body, bytes) else json.dumps(body, default=str).encode()
        headers = {"Content-Type": "application/json"}
        response = self.client.request(
            "POST", path, data=data, headers=headers, timeout=(CONNECT_TIMEOUT, timeout)
        )
        return response.json()

    def create_run(self, header: dict) -> int:
        body = {k: header[k] for k in ("suite", "commit", "branch", "ci_url", "host", "args")}
        body["args"] = strip_token(body["args"])  # a spool written by an older plugin
        for key in ("workers", "started"):
            if header.get(key):
                body[key] = header[key]
        return int(self.post("/api/ingest/runs", body)["id"])

    def send(self, run_id: int, events: list[dict], first_seq: int = 0) -> None:
        """POST events numbered from ``first_seq``: the server skips those it already has.
        Each POST holds at most BATCH_MAX events and BODY_MAX bytes."""
        parts: list[bytes] = []
        size = offset = 0
        for index, event in enumerate(events):
            part = json.dumps(event, default=str).encode()
            if parts and (len(parts) >= BATCH_MAX or size + len(part) > BODY_MAX):
                self._post_events(run_id, first_seq + offset, parts)
                parts, size, offset = [], 0, index
            parts.append(part)
            size += len(part) + 1
        if parts:
            self._post_events(run_id, first_seq + offset, parts)

    def _post_events(self, run_id: int, first_seq: int, parts: list[bytes]) -> None:
        body = b'{"first_seq": %d, "events": [%b]}' % (first_seq, b",".join(parts))
        self.post(f"/api/ingest/runs/{run_id}/events", body)

    def finish(self, run_id: int, exitstatus: int, wall_seconds: float) -> dict:
        body = {"exitstatus": exitstatus, "wall_seconds": max(0.0, wall_seconds)}
        return self.post(f"/api/ingest/runs/{run_id}/finish", body)


class NotASpool(ValueError):
    """The file given to upload is not a spool file the plugin wrote."""


def upload_spool(path: Path | str, conn: Connection) -> dict:
    """Send a spool file (header, events, finish line) as one run; returns the finished run."""
    header: dict = {}
    run_id = None
    seq = 0  # the number of the first spooled event (0 when the run was never created)
    finish = {"exitstatus": 1, "wall_seconds": 0.0}
    events: list[dict] = []
    with open(path, "rb") as fh:
        for line in fh:
            try:
                item = json.loads(line)
            except ValueError:  # a line cut short by a crash, not UTF-8, or blank
                continue
            if not isinstance(item, dict):
                raise NotASpool(f"{path} is not a PTD spool file (a line is no JSON object)")
            kind = item.get("type")
            try:
                if kind == "ptd_spool":
                    header = item
                elif kind == "ptd_run":
                    run_id = int(item["id"])
                elif kind == "ptd_seq":
                    seq = int(item["seq"])
                elif kind == "ptd_finish":
                    finish = {
                        "exitstatus": int(item["exitstatus"]),
                        "wall_seconds": float(item["wall_seconds"]),
                    }
                else:
                    events.append(item)
            except (KeyError, TypeError, ValueError):
                raise NotASpool(f"{path} is not a PTD spool file (a bad {kind} line)") from None
    if not header:
        raise NotASpool(f"{path} is not a PTD spool file")
    if run_id is None:
        run_id, seq = conn.create_run(header), 0
    conn.send(run_id, events, seq)
    return conn.finish(run_id, int(finish["exitstatus"]), float(finish["wall_seconds"]))
