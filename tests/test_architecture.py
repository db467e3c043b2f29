"""The layer boundaries in pyproject's [tool.importlinter] hold, and would catch a breach."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
    )


def breached(tmp_path: Path, imports: dict[str, str]) -> subprocess.CompletedProcess:
    """lint-imports on a copy of the project where each file (a path under it) gains an
    import line."""
    tree = copy_of_the_project(tmp_path)
    for name, line in imports.items():
        module = tree / name
        module.write_text(module.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    return result


def copy_of_the_project(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "demo_suite", "migrations")
    for package in ("runner", "runs", "dashboard"):
        shutil.copytree(ROOT / package, tree / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tree)
    return tree


def test_the_contracts_hold_on_the_project():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_engine_module_importing_django_breaks_a_contract(tmp_path):
    assert lint_imports(copy_of_the_project(tmp_path / "clean")).returncode == 0  # the copy holds
    result = breached(tmp_path, {"runner/metrics.py": "from django.conf import settings"})
    assert "runner is not allowed to import django" in result.stdout
    assert "runner.metrics -> django" in result.stdout


def test_a_page_driving_the_pool_or_a_model_reaching_up_breaks_a_contract(tmp_path):
    result = breached(
        tmp_path,
        {
            "runs/pages/views.py": "from runner.pool import Pool",
            "runs/models/suites.py": "from runs.execution import launch",
        },
    )
    assert "runs.pages is not allowed to import runner.pool" in result.stdout
    assert "runs.models.suites -> runs.execution.launch" in result.stdout


def test_the_client_and_the_in_run_package_keep_their_boundaries(tmp_path):
    """runner.client imports no Django; _ptd_inrun imports nothing of runner outside itself
    (it runs in the suite's interpreter); the second contract names every other runner module."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (inrun,) = [
        c for c in contracts["contracts"] if c.get("source_modules") == ["runner.inrun._ptd_inrun"]
    ]
    siblings = {
        f"runner.{p.stem}"
        for p in (ROOT / "runner").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    } - {"runner.inrun"}
    assert siblings <= set(inrun["forbidden_modules"]), siblings - set(inrun["forbidden_modules"])

    result = breached(
        tmp_path,
        {
            "runner/client/cli.py": "import django",
            "runner/inrun/_ptd_inrun/reporter.py": "from runner import pool",
        },
    )
    assert "runner.client is not allowed to import django" in result.stdout
    assert "runner.inrun._ptd_inrun is not allowed to import runner.pool" in result.stdout


def test_the_dashboard_starts_without_importing_pytest(tmp_path):
    """pytest runs in the suites' interpreters; in the server and in run_suite it would only
    add its import time (a third of a second) to every start."""
    code = (
        "import os, sys\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'dashboard.settings'\n"
        "import django; django.setup()\n"
        "import dashboard.asgi, dashboard.urls\n"
        "import runs.management.commands.run_suite, runs.management.commands.serve\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest')]\n"
        "assert not bad, bad\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTD_")}
    env["PTD_DATA_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
