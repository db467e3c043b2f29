"""Who may do what (README: Who may do what): one function per question, for pages and API alike.

- Everyone logged in (an active user, by session or API token) may view every page and run.
- Members may launch runs of existing suites and configurations, cancel and rerun their own
  runs, read their own runs' logs, stream outside runs with their token, and manage their
  own tokens.
- Staff may also create and edit suites, configurations and quarantine, cancel and rerun
  anyone's run, and read run logs.

A run is "own" to the user who launched it: from a page, the API (a token acts as its owner),
or ingestion (the token's owner). Runs nobody launched (`manage.py run_suite`) are staff's.
Pages, API endpoints and templates ask these functions; nothing else reads ``is_staff``.
"""

from __future__ import annotations

from django.contrib.auth.decorators import user_passes_test
from django.core.exceptions import PermissionDenied


def can_view(user) -> bool:
    """Every page, every run, the API's reads, the live stream."""
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_staff(user) -> bool:
    return can_view(user) and bool(user.is_staff)


def owns(user, run) -> bool:
    """The run's launcher (for a run launched or streamed with a token: the token's owner)."""
    return can_view(user) and run.user_id is not None and run.user_id == user.pk


def can_launch(user) -> bool:
    """Launch a run of an existing suite, on one of its configurations (with overrides)."""
    return can_view(user)


def can_sweep(user) -> bool:
    """Start a sweep: runs of an existing configuration at several worker counts, one after
    another (as many runs as counts: launching, bounded by runs.execution.sweep.MAX_STEPS)."""
    return can_launch(user)


def can_cancel(user, run) -> bool:
    return is_staff(user) or owns(user, run)


def can_rerun(user, run) -> bool:
    """Rerun a test *on this run's configuration*. Anyone who may launch may still rerun a
    test on the suite's default configuration (that is launching an existing configuration)."""
    return is_staff(user) or owns(user, run)


def can_stream(user, run=None) -> bool:
    """Open an outside run by ingestion (``run`` None), or send it events and close it."""
    if run is None:
        return can_launch(user)
    return is_staff(user) or owns(user, run)


def can_pass_any_pytest_argument(user) -> bool:
    """Extra pytest arguments beyond node ids (``@file``, ``-p``, ``-c``, paths...): staff, and
    the server's operator (a command run on the server, such as ``run_suite``: no user)."""
    return user is None or is_staff(user)


def can_edit_suite(user) -> bool:
    """Create and edit suites and their configurations: suites execute code on the server."""
    return is_staff(user)


def can_quarantine(user) -> bool:
    """Quarantine or release a test, rebuild a suite's flakiness summary."""
    return is_staff(user)


def can_read_log(user, run) -> bool:
    """A run's whole pytest output: it may hold what the suite's environment prints
    (secrets), so staff and the run's launcher only (issue #17: the launcher needs it to see
    what their run printed outside the tests)."""
    return is_staff(user) or owns(user, run)


def can_manage_token(user, token) -> bool:
    return can_view(user) and token.user_id == user.pk


def page_permission(check, message: str):
    """A view decorator for a question about the user alone: outsiders go to the login page
    (like every page), logged-in users who may not get a 403 page saying why."""

    def test(user) -> bool:
        if not can_view(user):
            return False
        if not check(user):
            raise PermissionDenied(message)
        return True

    return user_passes_test(test)


launch_page = page_permission(can_launch, "You may not launch runs.")
sweep_page = page_permission(can_sweep, "You may not launch runs.")
staff_only_page = page_permission(
    can_edit_suite, "Only staff can do this: suites and their settings execute code."
)
quarantine_page = page_permission(can_quarantine, "Only staff can quarantine tests.")


def context(request) -> dict:
    """Template context processor: the questions about the user alone, as ``may.…``, so
    templates show only the buttons the user may use (run-specific answers come from views)."""
    user = getattr(request, "user", None)
    return {
        "may": {
            "launch": can_launch(user),
            "sweep": can_sweep(user),
            "edit_suite": can_edit_suite(user),
            "quarantine": can_quarantine(user),
            "admin": is_staff(user),
        }
    }


def can_serve_as_agent(user) -> bool:
    """Register as an agent, take shards of runs (the suite's environment goes to the agent)
    and send their results: staff tokens only."""
    return is_staff(user)
