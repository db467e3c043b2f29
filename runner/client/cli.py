"""`ptd`: trigger, follow, cancel PTD runs from CI over the HTTP API (README "CI").

Runs on CI machines against a remote dashboard: plain Python and requests, never Django.

    ptd run --server URL --token TOKEN --suite NAME [--workers N] [--wait] [--junit FILE]
    ptd run ... --load --users 100 --spawn-rate 10 --duration 60 --threshold 'p95<300ms' --wait
    ptd status RUN_ID
    ptd cancel RUN_ID
    ptd upload SPOOL_FILE      (results the pytest plugin kept while the dashboard was down)

Exit codes: 0 passed (or done), 1 tests failed (a load run: a threshold failed; the server
decides), 2 bad usage or a request the server rejected (4xx), 3 the run errored / timed out /
was cancelled / interrupted, or the server stayed unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from urllib.parse import urlsplit

from _ptd_inrun.output import printable

from runner import options
from runner.records import ACTIVE_STATUSES as ACTIVE

from .http import Client, Rejected, Unreachable
from .ingestion import Connection, NotASpool, ci_metadata, upload_spool

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_RUN_ERROR = 0, 1, 2, 3
FINISHED = {"passed": EXIT_PASSED, "failed": EXIT_FAILED}


# Commands --------------------------------------------------------------------------------------


def cmd_run(client: Client, args: argparse.Namespace) -> int:
    meta = ci_metadata()
    body = {"suite": args.suite}
    if args.config:
        body["config"] = args.config
    for key in options.NAMES:
        value = getattr(args, key)
        if value is not None:
            body[key] = value
    body["commit"] = args.commit if args.commit is not None else meta["commit"]
    body["branch"] = args.branch if args.branch is not None else meta["branch"]
    body["ci_url"] = args.ci_url if args.ci_url is not None else meta["ci_url"]
    created = client.post_json("/api/runs", body)
    run_id = created["id"]
    log(f"run {run_id} {created['status']}: {client.server}{created['url']}")
    if not args.wait:
        print(json.dumps(created))
        return EXIT_PASSED
    run = wait_for(client, run_id, poll=args.poll, max_wait=args.max_wait)
    if args.junit:
        xml = client.request("GET", f"/api/runs/{run_id}/junit.xml").content
        with open(args.junit, "wb") as fh:
            fh.write(xml)
        log(f"JUnit XML written to {args.junit}")
    return report(run)


def wait_for(client: Client, run_id: int, *, poll: float, max_wait: float) -> dict:
    """Poll the run until it finishes, showing done/total and failures on stderr."""
    deadline = time.monotonic() + max_wait
    shown = None
    while True:
        run = client.get_json(f"/api/runs/{run_id}")
        if run["status"] not in ACTIVE:
            return run
        done = sum(w.get("tests", 0) for w in run.get("per_worker", []))
        failed = 0
        if run["status"] == "running":
            failed = client.get_json(f"/api/runs/{run_id}/results", outcome="failed", limit=1).get(
                "count", 0
            )
        total = run.get("collected") or "?"
        line = f"run {run_id} {run['status']}: {done}/{total} done, {failed} failed"
        if line != shown:
            log(line)
            shown = line
        if time.monotonic() + poll > deadline:
            raise TimeoutError(f"run {run_id} still {run['status']} after {max_wait:.0f} s")
        time.sleep(poll)


def report(run: dict) -> int:
    tests = run.get("tests", {})
    load = run.get("load")
    if isinstance(load, dict):
        report_load(run, load)
        return FINISHED.get(run["status"], EXIT_RUN_ERROR)
    figures = ", ".join(
        f"{key} {run[key]:.2f}"
        for key in ("wall_seconds", "speedup", "efficiency")
        if isinstance(run.get(key), int | float)
    )
    log(
        f"run {run['id']} {run['status']}: {tests.get('total', 0)} tests, "
        f"{tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed, "
        f"{tests.get('errors', 0)} errors, {tests.get('flaky', 0)} flaky"
        + (f" ({figures})" if figures else "")
    )
    if run.get("message"):
        log(run["message"])
    print(json.dumps(run))
    return FINISHED.get(run["status"], EXIT_RUN_ERROR)


def report_load(run: dict, load: dict) -> None:
    """A load run's summary: its figures and each threshold's verdict."""
    figures = ", ".join(
        f"{key} {load[key]:.1f}"
        for key in ("rps", "p50_ms", "p95_ms", "p99_ms")
        if isinstance(load.get(key), int | float)
    )
    log(
        f"run {run['id']} {run['status']}: load of {load.get('users')} users, "
        f"{load.get('iterations', 0)} iterations, {load.get('failures', 0)} failures"
        + (f" ({figures})" if figures else "")
    )
    for threshold in load.get("thresholds") or []:
        verdict = "passed" if threshold.get("passed") else "FAILED"
        log(f"  {threshold.get('expr')}: {verdict} (value {threshold.get('value')})")
    if run.get("message"):
        log(run["message"])
    print(json.dumps(run))


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    run = client.get_json(f"/api/runs/{args.run_id}")
    if run["status"] in ACTIVE:
        log(f"run {run['id']} {run['status']}")
        print(json.dumps(run))
        return EXIT_PASSED
    return report(run)


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    run = client.post_json(f"/api/runs/{args.run_id}/cancel")
    log(f"run {run['id']} {run['status']}")
    print(json.dumps(run))
    return EXIT_PASSED


def cmd_upload(client: Client, args: argparse.Namespace) -> int:
    """Send a spool file the ingestion plugin kept while the dashboard was unreachable."""
    if not os.path.isfile(args.spool):
        log(f"error: no such file: {args.spool}")
        return EXIT_USAGE
    try:
        run = upload_spool(args.spool, Connection(client.server, client.token))
    except NotASpool as exc:
        log(f"error: {exc}")
        return EXIT_USAGE
    log(f"run {run['id']} {run['status']}: {client.server}{run['url']}")
    print(json.dumps(run))
    return EXIT_PASSED


# Command line ----------------------------------------------------------------------------------


def log(message: str) -> None:
    """A line for the user. Much of it comes from the server (a run's message, an error's
    detail), which any member can set: shown as text, never as commands to the terminal."""
    print(f"ptd: {printable(message)}", file=sys.stderr, flush=True)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1e7:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", default=None, help="dashboard URL (env PTD_SERVER)")
    common.add_argument("--token", default=None, help="API token (env PTD_TOKEN)")
    common.add_argument(
        "--request-timeout",
        type=positive_float,
        default=10.0,
        help="seconds for each HTTP request (default 10)",
    )
    common.add_argument(
        "--retries",
        type=int,
        default=4,
        choices=range(0, 11),
        metavar="N",
        help="retries of idempotent requests, with backoff (default 4)",
    )
    parser = argparse.ArgumentParser(
        prog="ptd",
        description="Trigger and follow Parallel Test Dashboard runs from CI.",
        epilog="Exit: 0 passed, 1 tests failed, 2 bad usage / rejected request, "
        "3 run error, cancelled, interrupted or server unreachable.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="launch a run of a suite")
    run.add_argument("--suite", required=True, help="suite name or id")
    run.add_argument("--config", help="one of the suite's configurations (default: its default)")
    options.add_arguments(run)
    run.add_argument(
        "--load",
        dest="mode",
        action="store_const",
        const="load",
        help="a load run: the tests as concurrent users (same as --mode load)",
    )
    run.add_argument("--commit", help="commit SHA (default: from the CI's environment)")
    run.add_argument("--branch", help="branch (default: from the CI's environment)")
    run.add_argument("--ci-url", help="link back to the CI job")
    run.add_argument("--wait", action="store_true", help="follow the run until it finishes")
    run.add_argument("--junit", metavar="FILE", help="with --wait: write the JUnit XML here")
    run.add_argument("--poll", type=positive_float, default=2.0, help="seconds between polls")
    run.add_argument(
        "--max-wait",
        type=positive_float,
        default=6 * 3600.0,
        help="give up waiting (exit 3) after this many seconds (default 6 h)",
    )

    status = sub.add_parser("status", parents=[common], help="show a run (exit code as run)")
    status.add_argument("run_id", type=int)
    cancel = sub.add_parser("cancel", parents=[common], help="cancel a queued or running run")
    cancel.add_argument("run_id", type=int)
    upload = sub.add_parser(
        "upload", parents=[common], help="send a spool file kept by the pytest plugin"
    )
    upload.add_argument("spool", help="the .jsonl spool file")
    return parser


def client_from(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Client:
    server = args.server or os.environ.get("PTD_SERVER", "")
    token = args.token or os.environ.get("PTD_TOKEN", "")
    if not server:
        parser.error("no server: pass --server URL or set PTD_SERVER")
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        parser.error(f"--server must be an http(s) URL, got {server!r}")
    if not token:
        parser.error("no token: pass --token TOKEN or set PTD_TOKEN")
    return Client(server, token, timeout=args.request_timeout, retries=args.retries)


COMMANDS = {"run": cmd_run, "status": cmd_status, "cancel": cmd_cancel, "upload": cmd_upload}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run" and args.junit and not args.wait:
        parser.error("--junit needs --wait")
    if args.command in ("status", "cancel") and args.run_id < 1:
        parser.error("RUN_ID must be a positive number")
    client = client_from(parser, args)
    try:
        return COMMANDS[args.command](client, args)
    except Rejected as exc:
        what = "the token was refused" if exc.status == 401 else "the server rejected it"
        log(f"error: {what} ({exc.status}): {exc.detail}")
        return EXIT_USAGE
    except (Unreachable, TimeoutError) as exc:
        log(f"error: {exc}")
        return EXIT_RUN_ERROR
    except (ValueError, KeyError) as exc:  # an answer that is not the API's JSON
        log(f"error: unexpected answer from {client.server}: {exc!r}")
        return EXIT_RUN_ERROR
    except OSError as exc:  # e.g. the --junit file cannot be written
        log(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
