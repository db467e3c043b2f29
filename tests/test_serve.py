"""`manage.py serve` end to end: first-start admin, login, demo suite, clean stop."""

import os
import re
import socket
import stat
import subprocess
import sys

import requests

from tests.servers import ROOT, ServeProcess


def login(session: requests.Session, base: str, username: str, password: str):
    page = session.get(f"{base}/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    return session.post(
        f"{base}/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/login/"},
        timeout=10,
    )


def test_serve_first_start_then_second_start(tmp_path):
    server = ServeProcess(tmp_path).start()
    try:
        password_file = tmp_path / "initial_admin_password"
        password = password_file.read_text().strip()
        assert len(password) >= 16
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert any(password in line for line in server.output)

        anonymous = requests.get(f"{server.url}/", allow_redirects=False, timeout=10)
        assert anonymous.status_code == 302
        assert anonymous.headers["Location"].startswith("/login/")

        session = requests.Session()
        response = login(session, server.url, "admin", password)
        assert response.status_code == 200 and "demo" in response.text
        suite_page = session.get(f"{server.url}/suites/demo/", timeout=10)
        assert suite_page.status_code == 200 and "Launch a run" in suite_page.text
        css = requests.get(f"{server.url}/static/css/ptd.css", timeout=10)
        assert css.status_code == 200
        assert_plotly_served_compressed(session, server.url)
    finally:
        assert server.stop() == 0
    assert "PTD stopped." in "".join(server.output)

    again = ServeProcess(tmp_path, env=server.env).start()
    try:
        assert password_file.read_text().strip() == password
        assert not any("password:" in line for line in again.output)
    finally:
        assert again.stop() == 0


def assert_plotly_served_compressed(session: requests.Session, base: str):
    """The trends page loads plotly.js (4.8 MB) under a content-hashed name, gzip-compressed
    and cached for good: a cold first load transfers about a third of it, later ones nothing."""
    page = session.get(f"{base}/trends/", timeout=10)
    src = re.search(r'src="(/static/plotly/plotly\.min\.[0-9a-f]{12}\.js)"', page.text)
    assert src, page.text
    script = requests.get(
        f"{base}{src[1]}", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10
    )
    assert script.status_code == 200
    assert script.headers["Content-Encoding"] == "gzip"
    assert "immutable" in script.headers["Cache-Control"]
    compressed = len(script.raw.read(decode_content=False))
    assert compressed < 2_000_000 < 4_000_000 < len(requests.get(f"{base}{src[1]}").content)


def test_a_port_in_use_is_a_usage_error_before_anything_starts(tmp_path):
    """Exit 2 with one line, as every command's bad usage; it used to print "PTD is serving",
    fail to listen, and exit 0 after migrating a database and starting its dispatcher."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "PTD_DATA_DIR": str(tmp_path / "data")},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and "cannot listen on" in out.stderr
    assert "serving" not in out.stdout
    assert not (tmp_path / "data" / "ptd.sqlite3").exists()  # nothing migrated
