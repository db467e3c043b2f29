def test_health_is_ok(api):
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_service_belongs_to_this_worker(api, worker_id):
    assert api.get("/health").json()["worker"] == worker_id


def test_unknown_endpoint_is_404(api):
    response = api.get("/nope")
    assert response.status_code == 404
    assert "error" in response.json()
