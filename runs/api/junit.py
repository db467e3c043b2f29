"""JUnit XML for a run: one <testcase> per test (its final attempt), reruns noted.

The layout is the one Jenkins and GitLab read: <testsuites><testsuite><properties/>
<testcase classname name time><failure|error|skipped/><system-out/><system-err/></testcase>.
system-out holds PTD's notes, then what the test printed to stdout and logging; system-err its
stderr (failing attempts', or every attempt's under capture_passed).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from runs.models import Run

# XML 1.0 forbids most control characters; test output may hold them.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: str) -> str:
    return _INVALID_XML.sub("\ufffd", value or "")


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """pytest's junitxml naming: classname is the dotted path, name the last part."""
    path, _, rest = nodeid.partition("::")
    parts = rest.split("::") if rest else [path]
    module = path.removesuffix(".py").replace("/", ".")
    classname = ".".join([module, *parts[:-1]])
    return classname, parts[-1]


def printed(tries: list) -> tuple[str, str]:
    """(system-out, system-err) of a test: what its attempts printed (stdout and log records,
    stderr), each attempt headed when several printed."""
    with_output = [r for r in tries if r.stdout or r.stderr or r.log]
    out, err = [], []
    for r in with_output:
        head = f"--- attempt {r.attempt + 1} ({r.outcome}) ---\n" if len(with_output) > 1 else ""
        if r.stdout or r.log:
            log = f"--- log records ---\n{r.log}" if r.log else ""
            out.append(head + r.stdout + log)
        if r.stderr:
            err.append(head + r.stderr)
    return "".join(out), "".join(err)


def junit_xml(run: Run) -> bytes:
    attempts: dict[str, list] = {}
    for result in run.results.order_by("id"):
        attempts.setdefault(result.nodeid, []).append(result)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", name=run.suite.name)
    props = ET.SubElement(suite, "properties")
    for key, value in [
        ("ptd.run_id", run.id),
        ("ptd.status", run.status),
        ("ptd.workers", run.workers),
        ("ptd.engine", run.engine),
        ("ptd.commit", run.commit),
        ("ptd.branch", run.branch),
        ("ptd.speedup", run.speedup),
        ("ptd.efficiency", run.efficiency),
        ("ptd.balance", run.balance),
        ("ptd.flakiness_rate", run.flakiness_rate),
    ]:
        # _text: a run stored before the API refused control characters in its metadata
        ET.SubElement(props, "property", name=key, value="" if value is None else _text(str(value)))
    for nodeid, tries in attempts.items():
        final = next((r for r in reversed(tries) if r.outcome != "rerun"), tries[-1])
        classname, name = split_nodeid(nodeid)
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_text(classname),
            name=_text(name),
            time=f"{sum(r.duration for r in tries):.6f}",
        )
        counts["tests"] += 1
        message = _text(final.longrepr.splitlines()[-1] if final.longrepr else "")
        if final.outcome in ("failed", "crashed"):
            counts["failures"] += 1
            failure = ET.SubElement(case, "failure", message=message[:500])
            failure.text = _text(final.longrepr)
        elif final.outcome == "error":
            counts["errors"] += 1
            error = ET.SubElement(case, "error", message=message[:500])
            error.text = _text(final.longrepr)
        elif final.outcome in ("skipped", "xfailed"):
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=message[:500])
        notes = [f"worker {final.worker}"]
        if len(tries) > 1:
            outcomes = ", ".join(r.outcome for r in tries)
            notes.append(f"{len(tries)} attempts: {outcomes}")
            if final.outcome == "passed" and any(r.outcome != "passed" for r in tries):
                notes.append("flaky: passed after failing")
        out, err = printed(tries)
        ET.SubElement(case, "system-out").text = _text("\n".join([*notes, out]).rstrip("\n"))
        if err:
            ET.SubElement(case, "system-err").text = _text(err)
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("time", f"{run.wall_seconds or 0:.3f}")
    if run.started_at:
        suite.set("timestamp", run.started_at.isoformat())
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
