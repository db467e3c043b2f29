"""The API tokens page and `manage.py create_token`."""

import subprocess
import sys
from io import StringIO

from django.core.management import call_command
from django.core.management.base import CommandError

from runs.models import ApiToken
from tests.base import BaseTestCase
from tests.servers import ROOT


class TokensPageTests(BaseTestCase):
    def test_outsider_goes_to_login(self):
        response = self.client.get("/tokens/")
        assert response.status_code == 302 and "/login/" in response["Location"]

    def test_top_bar_links_to_tokens(self):
        self.login_member()
        assert b'href="/tokens/"' in self.client.get("/runs/").content

    def test_create_shows_the_token_once_and_it_works(self):
        self.login_member()
        response = self.client.post("/tokens/", {"name": "gitlab"}, follow=True)
        assert response.status_code == 200
        raw = response.context["new_token"]
        assert raw.startswith("ptd_") and raw.encode() in response.content
        token = ApiToken.objects.get(user=self.member)
        assert token.name == "gitlab" and token.hashed != raw and raw.startswith(token.prefix)
        # Shown once: a reload no longer has it, the list shows only the prefix.
        again = self.client.get("/tokens/")
        assert raw.encode() not in again.content and token.prefix.encode() in again.content
        assert b"never" in again.content
        api = self.client_class().get("/api/suites", HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert api.status_code == 200

    def test_label_is_required(self):
        self.login_member()
        response = self.client.post("/tokens/", {"name": ""})
        assert response.status_code == 400
        assert not ApiToken.objects.exists()

    def test_lists_only_own_tokens_with_last_use(self):
        mine, raw = ApiToken.create_for(self.member, "mine")
        ApiToken.create_for(self.staff, "theirs")
        self.client.get("/api/suites", HTTP_AUTHORIZATION=f"Bearer {raw}")
        self.login_member()
        response = self.client.get("/tokens/")
        assert list(response.context["tokens"]) == [mine]
        assert b"theirs" not in response.content and b"never" not in response.content

    def test_revoke_own_token_only(self):
        mine, raw = ApiToken.create_for(self.member, "mine")
        theirs, _ = ApiToken.create_for(self.staff, "theirs")
        self.login_member()
        assert self.client.get(f"/tokens/{mine.id}/revoke/").status_code == 405
        assert self.client.post(f"/tokens/{theirs.id}/revoke/").status_code == 404
        response = self.client.post(f"/tokens/{mine.id}/revoke/")
        assert response.status_code == 302
        assert list(ApiToken.objects.all()) == [theirs]
        api = self.client_class().get("/api/suites", HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert api.status_code == 401


class CreateTokenCommandTests(BaseTestCase):
    def test_prints_the_token_alone_on_the_last_line(self):
        out = StringIO()
        call_command("create_token", "bob", "--name", "ci", stdout=out, stderr=StringIO())
        raw = out.getvalue().strip().splitlines()[-1]
        token = ApiToken.objects.authenticate(raw)
        assert token is not None and token.user == self.member and token.name == "ci"

    def test_unknown_user_is_a_clear_error(self):
        with self.assertRaisesMessage(CommandError, "no user named 'nobody'") as caught:
            call_command("create_token", "nobody", stdout=StringIO())
        assert caught.exception.returncode == 2


def test_create_token_without_a_database_exits_2(tmp_path):
    env = {"PTD_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "manage.py", "create_token", "nobody"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "manage.py migrate" in out.stderr and "Traceback" not in out.stderr
