"""One shard of a run on this machine (the body of the ``ptd.shard`` Celery task).

The dashboard sends what to run (the suite's registered path, its interpreter and
environment, the run's options and commit); this machine maps the path (``--path-map``),
refuses a checkout at another commit, and runs the suite's fork-engine pytest through a
``runner.pool.Pool`` (process group, timeout, cancel: a shard's processes end with it, as a
run's do on the dashboard). The engine's controller takes its units from the run's shared
queue on the dashboard (``_ptd_inrun.fork.remote``); its events are posted here, numbered per
shard, so a batch sent again is stored once. A heartbeat thread tells the dashboard this shard
is alive and hears when it must stop (the run was cancelled or failed elsewhere).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import command
from ..client.http import Client, Rejected, Unreachable
from ..pool import Pool, RunOutcome, RunSpec

log = logging.getLogger(__name__)
SEND_TRIES = 6


@dataclass
class AgentOptions:
    name: str
    server: str
    token: str
    queue: str = "default"
    workers: int = 1
    path_maps: list[tuple[str, str]] = field(default_factory=list)
    heartbeat: float = 5.0


def parse_path_map(text: str) -> tuple[str, str]:
    """``FROM=TO`` (absolute paths) -> (FROM, TO) without trailing slashes; ValueError."""
    source, sep, target = text.partition("=")
    if not sep or not source or not target:
        raise ValueError(f"--path-map: expected FROM=TO, got {text!r}")
    if not (os.path.isabs(source) and os.path.isabs(target)):
        raise ValueError(f"--path-map: both paths must be absolute, got {text!r}")
    return source.rstrip("/") or "/", target.rstrip("/") or "/"


def map_path(path: str, maps: list[tuple[str, str]]) -> str:
    """The first map whose FROM is ``path`` or one of its parent folders wins."""
    for source, target in maps:
        if path == source:
            return target
        if path.startswith(source.rstrip("/") + "/"):
            return target + path[len(source.rstrip("/")) :]
    return path


def git_head(path: str) -> str | None:
    """The HEAD commit of a git checkout, or None when ``path`` is not one."""
    try:
        out = subprocess.run(
            ["git", "-C", path, "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[1] if len(out) == 2 else None


class ShardSink:
    """The pool's sink: events posted numbered to the shard, its end posted once."""

    def __init__(self, client: Client, shard_id: int):
        self.client = client
        self.path = f"/api/shards/{shard_id}"
        self.seq = 0
        self.outcome: RunOutcome | None = None

    def run_started(self, run_id: int, pid: int, started_at: float) -> None:
        pass

    def handle_events(self, run_id: int, events: list[dict]) -> None:
        body = {"first_seq": self.seq, "events": events}
        self._post("/events", body)
        self.seq += len(events)

    def run_finished(self, run_id: int, outcome: RunOutcome) -> None:
        self.outcome = outcome

    def _post(self, suffix: str, body: dict) -> dict | None:
        """POST with retries: the events are numbered, so sending one again is harmless."""
        delay = 0.2
        for attempt in range(SEND_TRIES):
            try:
                return self.client.post_json(self.path + suffix, body)
            except Rejected as exc:
                log.error("dashboard refused %s: %s", suffix, exc.detail)
                return None
            except Unreachable as exc:
                if attempt == SEND_TRIES - 1:
                    log.error("dashboard unreachable, %s lost: %s", suffix, exc)
                    return None
                time.sleep(delay)
                delay = min(5.0, delay * 2)
        return None


class ShardJob:
    def __init__(self, spec: dict, options: AgentOptions):
        self.spec = spec
        self.options = options
        self.shard_id = int(spec["shard_id"])
        self.client = Client(options.server, options.token, user_agent="ptd-agent")
        self.sink = ShardSink(self.client, self.shard_id)
        self.stop = threading.Event()
        self.pool: Pool | None = None
        self.key = ""

    # -- the steps -------------------------------------------------------------------------

    def run(self) -> str:
        try:
            answer = self.client.post_json(
                f"/api/shards/{self.shard_id}/start", {"pid": os.getpid()}
            )
        except (Rejected, Unreachable) as exc:
            return f"not started: {exc}"  # a run over (redelivered shard) or cancelled
        if not answer.get("go", False):
            return "not wanted"
        self.key = str(answer.get("key") or "")
        problem, cwd, python = self.prepare()
        if problem:
            self.finish(None, 0.0, "refused", problem)
            return problem
        beat = threading.Thread(target=self._heartbeat, name="ptd-shard-heartbeat", daemon=True)
        beat.start()
        outcome = self.execute(cwd, python)
        self.stop.set()
        self.finish(outcome.returncode, outcome.wall_seconds, outcome.reason, outcome.message)
        return outcome.reason or f"exit {outcome.returncode}"

    def prepare(self) -> tuple[str, str, str]:
        """(problem or "", the suite's directory here, its interpreter here)."""
        maps = self.options.path_maps
        cwd = map_path(str(self.spec["suite_path"]), maps)
        python = map_path(self.spec["python"], maps) if self.spec.get("python") else sys.executable
        name = self.options.name
        if not os.path.isdir(cwd):
            return f"machine {name}: the suite's directory {cwd} does not exist here", cwd, python
        if not os.path.isfile(python):
            return f"machine {name}: the suite's python {python} does not exist here", cwd, python
        commit = self.spec.get("commit") or ""
        if commit:
            head = git_head(cwd)
            if head is not None and head != commit:
                return (
                    f"machine {name}: {cwd} is at commit {head[:12]}, the run tests "
                    f"{commit[:12]}: refusing to test other code than the rest",
                    cwd,
                    python,
                )
        return "", cwd, python

    def argv_env(self, cwd: str, python: str) -> tuple[list[str], dict[str, str]]:
        spec = self.spec
        workers = int(spec.get("workers") or 0) or self.options.workers
        dist = spec.get("dist") or "load"
        argv = command.build_argv(
            python,
            workers=workers,
            dist=dist,
            repeat=spec.get("repeat") or 1,
            reruns=spec.get("reruns") or 0,
            keyword=spec.get("keyword") or "",
            markers=spec.get("markers") or "",
            extra_args=list(spec.get("extra_args") or []),
            engine="fork",
        )
        if workers == 1:  # build_argv runs one worker in-process; a shard needs the engine
            at = argv.index("--color=no") + 1
            argv[at:at] = ["--ptd-workers", "1", "--ptd-dist", dist]
        env = command.build_env(dict(os.environ), dict(spec.get("env") or {}), None, None)
        env["PTD_SHARD_URL"] = f"{self.options.server}/api/shards/{self.shard_id}"
        # The shard's own key (its collection and leases only), never the agent's token: the
        # suite's code runs in that process. The controller takes it out of os.environ.
        env["PTD_SHARD_TOKEN"] = self.key
        return argv, env

    def execute(self, cwd: str, python: str) -> RunOutcome:
        argv, env = self.argv_env(cwd, python)
        logdir = Path(tempfile.mkdtemp(prefix=f"ptd-shard-{self.shard_id}-"))
        self.pool = Pool(self.sink, max_concurrent=1, warm_start=False)
        timeout = self.spec.get("timeout")
        self.pool.submit(
            RunSpec(
                run_id=self.shard_id,
                argv=argv,
                cwd=cwd,
                env=env,
                timeout=float(timeout) if timeout else None,
                log_path=str(logdir / "pytest.log"),
                log_max_bytes=10 * 1024 * 1024,
            )
        )
        while True:
            outcome = self.pool.wait(self.shard_id, timeout=0.2)
            if outcome is not None:
                break
            if self.stop.is_set():
                self.pool.cancel(self.shard_id)
                self.stop.clear()
        self.pool.shutdown(cancel_running=True)
        if outcome.returncode not in (0, 1, None) and not outcome.message:
            outcome.message = _log_tail(logdir / "pytest.log")
        shutil.rmtree(logdir, ignore_errors=True)
        return outcome

    def cancel(self) -> None:
        self.stop.set()

    def finish(self, code: int | None, wall: float, reason: str | None, message: str) -> None:
        body = {
            "exitstatus": code,
            "wall_seconds": round(max(0.0, wall), 6),
            "reason": reason or "",
            "message": (message or "")[:4000],
        }
        self.sink._post("/finish", body)

    def _heartbeat(self) -> None:
        """Alive, every few seconds; the answer says whether to stop (cancel, run over)."""
        quick = Client(self.options.server, self.options.token, timeout=5.0, retries=0)
        while not self.stop.wait(self.options.heartbeat):
            try:
                answer = quick.post_json(f"/api/shards/{self.shard_id}/heartbeat", {})
            except Rejected:
                answer = {"stop": True}
            except Unreachable:
                continue
            if answer.get("stop"):
                self.stop.set()
                return


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])[-3000:]
