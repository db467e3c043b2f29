"""What may reach a pytest command line, and from whom (README: "Who may pass what to pytest").

pytest reads an argv item starting with "@" as a file of more arguments (from any position,
even after "--"), takes absolute and "../" paths, loads plugins with "-p" and reads its
configuration from "-c", "--rootdir", "--confcutdir" and "-o": each can read or run files
outside the suite. So:

- staff-edited settings (a suite's pytest arguments) and the server's operator
  (``run_suite ... -- ARGS``) may pass any argument; only NUL characters are refused;
- everyone else passes only a ``-k`` / ``-m`` expression (pytest's own grammar) and node ids
  of the suite's tests: plain relative paths inside the suite's directory (no "..", nothing
  starting with "@", "-" or "/"), with their ``::`` parts and ``[parameters]``; a rerun names
  a test inside a Python file (``path.py::name``) that the server itself ran for the suite
  (runs.pages.flaky.rerun), since pytest imports any file named on its command line.

Node ids and worker ids never hold control, format or separator characters (Unicode Cc, Cf,
Cs, Zl, Zp: a right-to-left override or a line separator would disguise what a page shows).

Every entrance uses this module: the launch form and the API (through launch.launch), the
rerun form, ingestion (a node id it stores can be rerun later), and launch.build_spec, which
checks the run's selection again just before a process starts.
"""

from __future__ import annotations

import unicodedata

NODEID_MAX = 1000
EXPRESSION_MAX = 500
# Control (Cc), format (Cf: U+202E right-to-left override...), surrogate (Cs), line and
# paragraph separators (Zl, Zp): never in pytest's ids (it escapes them in parameter ids).
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def hidden_character(text: str) -> str | None:
    """The first character of `text` that hides or disguises what is shown, as U+XXXX."""
    for c in text:
        if unicodedata.category(c) in HIDDEN_CATEGORIES:
            return f"U+{ord(c):04X}"
    return None


def one_line_problem(text: str) -> str | None:
    """Why `text` is not one line of plain text (a branch, a commit, a machine's name), or
    None: a control character would break a JUnit file or rewrite the terminal showing it (ESC
    sequences, carriage returns), a format character disguise it (U+202E)."""
    hidden = hidden_character(text)
    return f"must be one line of plain text (it holds {hidden})" if hidden else None


class LaunchError(ValueError):
    """A run that cannot be launched; `field` names the offending input when there is one;
    `status`: the HTTP status the API answers with (400: the input; 429: too many waiting)."""

    def __init__(self, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


def nodeid_problem(nodeid: object) -> str | None:
    """Why `nodeid` is not a plain node id of a test inside the suite's directory, or None.

    The path is what pytest resolves against the suite's directory: the text before the first
    "::" (pytest < 8) and before the first "[" (pytest >= 8 splits parameters off first); both
    are checked, so neither version can be led outside the suite.
    """
    if not isinstance(nodeid, str) or not nodeid:
        return "a test id is required"
    if len(nodeid) > NODEID_MAX:
        return f"a test id has at most {NODEID_MAX} characters"
    hidden = hidden_character(nodeid)
    if hidden:
        return f"a test id has no control, format or separator characters ({hidden})"
    if nodeid[0] in "@-/":
        return f"a test id cannot start with {nodeid[0]!r}"
    for path in {nodeid.split("::")[0], nodeid.partition("[")[0].split("::")[0]}:
        if "\\" in path:
            return "a test id's path uses '/' only"
        if any(part in ("", ".", "..") for part in path.split("/")):
            return "a test id's path is relative, inside the suite, without '.' or '..'"
    return None


def check_nodeid(nodeid: object, field: str = "nodeid", *, rerun: bool = False) -> str:
    """The node id itself (of a test to rerun: see rerun_problem), or LaunchError naming
    `field`."""
    problem = (rerun_problem if rerun else nodeid_problem)(nodeid)
    if problem:
        what = "a test to rerun" if rerun else "a test id"
        raise LaunchError(f"not {what} ({problem}): {str(nodeid)[:200]!r}", field)
    return nodeid


def rerun_problem(nodeid: object) -> str | None:
    """Why `nodeid` cannot be rerun, or None: on top of nodeid_problem, it names a test in a
    Python file (``path.py::name...``). pytest imports any .py file named on its command line
    and runs a .txt/.rst file as doctests, so a path alone is never rerun."""
    problem = nodeid_problem(nodeid)
    if problem:
        return problem
    assert isinstance(nodeid, str)
    for head in {nodeid, nodeid.partition("[")[0]}:  # pytest < 8 and >= 8 (see above)
        path, sep, name = head.partition("::")
        if not path.endswith(".py") or not sep or not name.split("::")[0]:
            return "a rerun names a test in a Python file: path.py::test_name"
    return None


def check_expression(key: str, value: str) -> None:
    """A -k / -m expression goes to pytest as one argv item after its option: it must parse as
    pytest's own expression grammar (so it is never an option, an "@file", nor holds a NUL)."""
    if not isinstance(value, str) or len(value) > EXPRESSION_MAX:
        raise LaunchError(f"{key} must be a string of at most {EXPRESSION_MAX} characters", key)
    stripped = value.lstrip()
    if stripped.startswith("-"):
        raise LaunchError(f"{key} must be a pytest expression, not an option: {value!r}", key)
    if stripped.startswith("@"):
        raise LaunchError(f"{key} must be a pytest expression, not a file: {value!r}", key)
    if "\x00" in value:
        raise LaunchError(f"{key} must not contain NUL characters", key)
    try:  # pytest's own parser: a typo is a form error, not a run that pytest refuses
        from _pytest.mark import expression
    except ImportError:  # pragma: no cover - moved in some pytest: the run will say it
        return
    # pytest 9 raises SyntaxError, pytest 8 its own ParseError.
    errors = (SyntaxError, getattr(expression, "ParseError", SyntaxError))
    try:
        expression.Expression.compile(value)
    except errors as exc:
        reason = getattr(exc, "msg", None) or getattr(exc, "message", None) or str(exc)
        column = getattr(exc, "offset", None) or getattr(exc, "column", None)
        where = f" (column {column})" if column else ""
        raise LaunchError(f"{key}: not a pytest expression: {reason}{where}", key) from None


def check_args(args: object, *, trusted: bool, field: str = "extra_args") -> list[str]:
    """Extra pytest arguments: any from the trusted (staff settings, the operator), only the
    suite's node ids from anyone else. Returns them as a list; LaunchError otherwise."""
    if not isinstance(args, list | tuple) or not all(isinstance(a, str) for a in args):
        raise LaunchError("pytest arguments must be a list of strings", field)
    for arg in args:
        if "\x00" in arg:
            raise LaunchError("pytest arguments must not contain NUL characters", field)
        if not trusted:
            check_nodeid(arg, field)
    return list(args)
