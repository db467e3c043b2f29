"""Slow report endpoints: the long tests that make scheduling order matter."""

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seconds", [2.5, 2.0, 1.5, 1.5, 1.0, 1.0])
def test_report_takes_its_time(api, seconds):
    response = api.get(f"/report?seconds={seconds}")
    assert response.status_code == 200
    assert response.json()["took"] == seconds


@pytest.mark.parametrize("batch", range(16))
def test_report_batches(api, batch):
    response = api.get("/report?seconds=0.6")
    assert response.status_code == 200
    assert response.json()["rows"] >= 0
