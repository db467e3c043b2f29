"""A class sharing one seeded catalogue: run it with --dist loadscope to keep it on one worker."""

import pytest


@pytest.fixture(scope="class")
def catalog(api):
    created = [api.post("/items", {"name": f"catalog-{i}", "price": i}).json() for i in range(5)]
    yield created
    for item in created:
        api.delete(f"/items/{item['id']}")


class TestCatalog:
    def test_all_items_listed(self, api, catalog):
        names = {item["name"] for item in api.get("/items").json()["items"]}
        assert {item["name"] for item in catalog} <= names

    @pytest.mark.parametrize("index", range(5))
    def test_each_item_readable(self, api, catalog, index):
        item = catalog[index]
        assert api.get(f"/items/{item['id']}").json()["name"] == f"catalog-{index}"

    def test_prices_are_ordered(self, api, catalog):
        prices = [api.get(f"/items/{item['id']}").json()["price"] for item in catalog]
        assert prices == sorted(prices)

    def test_slow_catalog_export(self, api, catalog):
        assert api.get("/report?seconds=1.2").json()["rows"] >= len(catalog)
