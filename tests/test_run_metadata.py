"""A run's metadata (commit, branch, host, CI job address, closing message) as the API takes it.

Found by a review: a branch holding control characters made the run's JUnit file malformed, a
member could finish an ingested run with a message that rewrote the terminal of whoever ran
``ptd status``, and a token pasted into a branch was stored and shown to every reader.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from runs.models import REDACTED, Run
from tests.test_api_ingest import IngestTestCase

TOKEN = "ptd_" + "A" * 30
ESCAPES = "boom \x1b[2J\x1b]0;owned\x07\x1b[31mFAKE\r\nptd: run 1 passed"


class RunMetadataTests(IngestTestCase):
    def launch(self, **body):
        return self.call("/api/runs", {"suite": "demo", "workers": 1, **body}, self.staff_token)

    def test_metadata_with_control_characters_is_refused_by_both_endpoints(self):
        bad = {
            "branch": "feature\x1b[0m",
            "commit": "abc\x01",
            "host": "ci\r\nbox",
            "ci_url": "https://ci/\u202ejob",
        }
        for field, value in bad.items():
            for url in ("/api/runs", "/api/ingest/runs"):
                with self.subTest(field=field, url=url):
                    body = {"suite": "demo", "workers": 1, field: value}
                    if url == "/api/runs" and field == "host":
                        continue  # a run launched here is made on this server
                    response = self.call(url, body, self.staff_token)
                    assert response.status_code == 422, response.content
                    assert "one line" in str(response.json()["detail"])
        assert not Run.objects.exists()

    def test_a_ci_address_is_a_web_address(self):
        response = self.call(
            "/api/ingest/runs",
            {"suite": "demo", "ci_url": "javascript:alert(1)"},
            self.member_token,
        )
        assert response.status_code == 422 and "http" in str(response.json()["detail"])
        run_id = self.start_run(ci_url="https://ci.example/job/7")
        assert Run.objects.get(pk=run_id).ci_url == "https://ci.example/job/7"

    def test_a_token_in_the_metadata_is_never_stored(self):
        run_id = self.start_run(branch=f"fix-{TOKEN}", commit=TOKEN[:40], host=f"h-{TOKEN}")
        run = Run.objects.get(pk=run_id)
        assert TOKEN not in f"{run.branch} {run.commit} {run.config_snapshot}"
        assert REDACTED in run.branch

    def test_a_closing_message_is_kept_as_plain_text(self):
        run_id = self.start_run()
        response = self.call(
            f"/api/ingest/runs/{run_id}/finish",
            {"exitstatus": 3, "wall_seconds": 1, "message": ESCAPES},  # 3: kept
            self.member_token,
        )
        assert response.status_code == 200, response.content
        message = Run.objects.get(pk=run_id).message
        assert "\x1b" not in message and "\r" not in message and "\x07" not in message
        assert "FAKE" in message and "\n" in message  # the text and its lines stay

    def test_the_junit_file_stays_well_formed(self):
        run_id = self.start_run(branch="feature/ä-ü", commit="abc123")
        Run.objects.filter(pk=run_id).update(branch="old\x0brow")  # stored before the checks
        response = self.client.get(
            f"/api/runs/{run_id}/junit.xml", HTTP_AUTHORIZATION=f"Bearer {self.member_token}"
        )
        assert response.status_code == 200
        props = {
            p.get("name"): p.get("value") for p in ET.fromstring(response.content).iter("property")
        }
        assert props["ptd.branch"] == "old\ufffdrow" and props["ptd.commit"] == "abc123"
