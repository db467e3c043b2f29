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


def test_the_api_describes_the_models_own_shapes(db):
    """A run and a result are declared once, by their models (to_dict, TestResult.FIELDS); the
    API's typed schemas describe them: they invent no key, and leave out only what the API never
    published (a run's configuration snapshot and the bytes its log cut)."""
    from runs.api.runs import ResultOut, RunOut
    from runs.models import Run, Suite, TestResult

    run = Run.objects.create(suite=Suite.objects.create(name="shape", path="/tmp"))
    assert set(run.to_dict()) - set(RunOut.model_fields) == {"config", "log_bytes_cut"}
    assert set(RunOut.model_fields) <= set(run.to_dict())
    assert tuple(ResultOut.model_fields) == TestResult.FIELDS
    assert set(TestResult(run=run).to_dict()) == set(TestResult.FIELDS)
