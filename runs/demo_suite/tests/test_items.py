import pytest


@pytest.mark.parametrize("price", [0, 1, 9.99, 250, 10_000])
def test_create_item(api, price):
    response = api.post("/items", {"name": f"widget-{price}", "price": price})
    assert response.status_code == 201
    body = response.json()
    assert body["price"] == price
    assert api.get(f"/items/{body['id']}").json() == body


@pytest.mark.parametrize(
    "payload, message",
    [
        ({}, "name is required"),
        ({"name": ""}, "name is required"),
        ({"name": "x", "price": -1}, "price must be a non-negative number"),
        ({"name": "x", "price": "cheap"}, "price must be a non-negative number"),
    ],
)
def test_create_rejects_bad_payload(api, payload, message):
    response = api.post("/items", payload)
    assert response.status_code == 400
    assert response.json()["error"] == message


def test_delete_item(api):
    item = api.post("/items", {"name": "doomed"}).json()
    assert api.delete(f"/items/{item['id']}").status_code == 204
    assert api.get(f"/items/{item['id']}").status_code == 404


def test_missing_item_is_404(api):
    assert api.get("/items/999999").status_code == 404
