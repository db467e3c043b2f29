"""runner.command: argv, environment, plugin checks."""

from __future__ import annotations

import os
import sys

import pytest

from runner import command, options


def test_build_argv_single_worker():
    argv = command.build_argv(
        "/py",
        workers=1,
        dist="load",
        repeat=1,
        reruns=0,
        keyword="",
        markers="",
        junit_path=None,
        extra_args=[],
    )
    assert argv[:5] == ["/py", "-m", "pytest", "-p", command.PLUGIN_MODULE]
    assert "-n" not in argv and "--count" not in argv and "--reruns" not in argv
    assert "no:cacheprovider" in argv


def test_build_argv_everything():
    argv = command.build_argv(
        "/py",
        workers=4,
        dist="loadscope",
        repeat=3,
        reruns=2,
        keyword="not slow",
        markers="api",
        junit_path="/tmp/j.xml",
        extra_args=["-x", "tests/"],
    )
    joined = " ".join(argv)
    assert "-n 4 --dist loadscope" in joined
    assert "--count 3" in joined and "--reruns 2" in joined
    assert argv[argv.index("-k") + 1] == "not slow"
    assert argv[argv.index("-m", 2) + 1] == "api"
    assert "--junitxml=/tmp/j.xml" in argv
    assert argv[-2:] == ["-x", "tests/"]


def test_build_argv_auto_and_validation():
    argv = command.build_argv("/py", workers="auto", dist="load")
    assert argv[argv.index("-n") + 1] == str(os.cpu_count())
    assert command.resolve_workers("auto") == os.cpu_count()
    assert command.resolve_workers(3) == 3
    with pytest.raises(ValueError):
        command.resolve_workers(0)
    with pytest.raises(ValueError):
        command.build_argv("/py", workers=2, dist="worksteal")
    assert options.DIST_MODES == ("load", "loadscope", "loadfile", "loadgroup")


def test_build_env_is_clean():
    base = {
        "PATH": "/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "x",
        "SECRET_KEY": "s",
        "DATABASE_URL": "postgres://",
        "REDIS_URL": "redis://",
        "PTD_DATA_DIR": "/var",
        "PTD_MAX_CONCURRENT_RUNS": "2",
        "AWS_SECRET": "a",
        "PYTHONPATH": "/dashboard",
    }
    suite_env = {
        "API_BASE": "http://x",
        "PYTHONPATH": "/suite/src",
        "SECRET_KEY": "leak",
        "PTD_EVENTS_FD": "99",
    }
    env = command.build_env(base, suite_env, 7, "/tmp/d.json")
    for key in (
        "DJANGO_SETTINGS_MODULE",
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "PTD_DATA_DIR",
        "PTD_MAX_CONCURRENT_RUNS",
        "AWS_SECRET",
    ):
        assert key not in env
    assert env["PATH"] == "/bin" and env["LC_ALL"] == "C.UTF-8"
    assert env["API_BASE"] == "http://x"
    assert env["PYTHONPATH"] == os.pathsep.join([command.INRUN_PATH, "/suite/src"])
    assert env["PTD_EVENTS_FD"] == "7" and env["PTD_DURATIONS_FILE"] == "/tmp/d.json"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert os.path.isdir(os.path.join(command.INRUN_PATH, "_ptd_inrun"))


def test_build_env_without_fd():
    env = command.build_env({"PATH": "/bin"}, {}, None, None)
    assert "PTD_EVENTS_FD" not in env and "PTD_DURATIONS_FILE" not in env
    assert env["PYTHONPATH"] == command.INRUN_PATH


def test_build_env_caches_bytecode_outside_the_suite_unless_the_suite_says_otherwise():
    assert command.build_env({}, {}, None, None)["PYTHONDONTWRITEBYTECODE"] == "1"
    env = command.build_env({}, {}, None, None, "/data/pycache")
    assert env["PYTHONPYCACHEPREFIX"] == "/data/pycache" and "PYTHONDONTWRITEBYTECODE" not in env
    for own in ({"PYTHONDONTWRITEBYTECODE": "1"}, {"PYTHONPYCACHEPREFIX": "/own"}):
        env = command.build_env({}, own, None, None, "/data/pycache")
        assert (
            env.items() >= own.items()
            and env.keys()
            & {
                "PYTHONPYCACHEPREFIX",
                "PYTHONDONTWRITEBYTECODE",
            }
            == own.keys()
        )


def test_check_plugins_ok():
    assert command.check_plugins(sys.executable, 4, 2, 1) is None


def test_check_plugins_names_the_missing_package(tmp_path):
    # An interpreter that cannot see pytest_repeat: -I ignores PYTHONPATH and user site,
    # so shadow the module with a broken finder through a wrapper script.
    wrapper = tmp_path / "python"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'exec {sys.executable} -c "import sys, importlib.util as u; '
        "orig = u.find_spec; "
        "u.find_spec = lambda n, *a: None if n == 'pytest_repeat' else orig(n, *a); "
        'exec(sys.argv[2])" -c "$2"\n'
    )
    wrapper.chmod(0o755)
    msg = command.check_plugins(str(wrapper), 2, 3, 0)
    assert msg is not None and "pytest-repeat" in msg and "xdist" not in msg


def test_check_plugins_bad_interpreter(tmp_path):
    msg = command.check_plugins(str(tmp_path / "nope"), 1, 1, 0)
    assert msg is not None and "not found" in msg


def test_check_plugins_refuses_a_program_that_is_no_python():
    """/usr/bin/true exits 0 and says nothing: it passed the check, and its runs failed with
    'pytest exited with code 0 before finishing the session'."""
    msg = command.check_plugins("/bin/true", 2, 1, 0)
    assert msg is not None and "is not a Python interpreter" in msg


def test_check_plugins_takes_a_python_that_prints_as_it_starts(tmp_path):
    """A sitecustomize (or a wrapper) may print before the check's own answer."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\necho 'welcome to the venv'\nexec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    assert command.check_plugins(str(wrapper), 2, 1, 0) is None


def test_build_argv_for_a_load():
    argv = command.build_argv(
        "/py", workers=4, mode="load", users=3, spawn_rate=2, duration=10, think_time=0.5,
        repeat=3, reruns=2, keyword="api",
    )  # fmt: skip
    tail = argv[argv.index("--color=no") + 1 :]
    # At most one process per user; repeat and reruns do not apply to a load.
    assert tail == [
        "--ptd-load-users", "3", "--ptd-load-processes", "3", "--ptd-load-spawn-rate", "2.0",
        "--ptd-load-duration", "10", "--ptd-load-think-time", "0.5", "-k", "api",
    ]  # fmt: skip
    argv = command.build_argv("/py", workers=2, mode="load", users=100, iterations=5)
    assert argv[-4:] == ["--ptd-load-processes", "2", "--ptd-load-iterations", "5"]
    assert command.required_modules(4, 3, 2, "xdist", "load") == ["pytest"]
    with pytest.raises(ValueError, match="a duration or a number of iterations"):
        command.build_argv("/py", workers=1, mode="load", users=3)
    with pytest.raises(ValueError, match="unknown mode"):
        command.build_argv("/py", workers=1, mode="soak")
