"""The HTTP API's published shape (README: CI, and what grew from it) stays as it is
unless a change means to alter it: /api/openapi.json is compared with the copy kept in
tests/data/openapi.json. After an intended API change, write the new copy with
`PTD_WRITE_OPENAPI=1 pytest tests/test_openapi_contract.py` and review its diff."""

import json
import os
from pathlib import Path

from django.test import Client

SNAPSHOT = Path(__file__).with_name("data") / "openapi.json"


def test_the_openapi_schema_is_the_one_kept(db, django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user("reader"))
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    if os.environ.get("PTD_WRITE_OPENAPI"):
        SNAPSHOT.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    assert schema == json.loads(SNAPSHOT.read_text())
