"""A test that is flaky by nature: it races a deadline and loses about one time in five."""

import random


def test_search_answers_before_deadline(api):
    latency = random.random()  # stands in for a network hiccup
    response = api.get("/health")
    assert response.status_code == 200
    assert latency < 0.8, f"search took {latency:.2f} of the 0.8 budget"
