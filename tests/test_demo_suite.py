import os
import subprocess
import sys

from tests.factories import DEMO_DIR


def test_demo_suite_collects():
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=DEMO_DIR,
        # As a user's shell would run it: not inside PTD's own test settings.
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    nodeids = [line for line in out.stdout.splitlines() if "::" in line]
    assert len(nodeids) >= 40
    assert any("TestCatalog" in n for n in nodeids)  # the loadscope class
    assert any("test_flaky" in n for n in nodeids)
