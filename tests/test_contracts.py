"""Generated contracts are checked in and must match the code."""

import json
from pathlib import Path

from service.contracts import openapi_document, render_json

ROOT = Path(__file__).resolve().parents[1]


def test_openapi_json_is_current():
    checked_in = ROOT / "openapi" / "openapi.json"
    assert checked_in.exists(), "run `make schemas` to write openapi/openapi.json"
    assert checked_in.read_text() == render_json(openapi_document()), (
        "openapi/openapi.json is stale: run `make schemas` and commit the result"
    )


def test_openapi_documents_auth_and_errors():
    document = json.loads((ROOT / "openapi" / "openapi.json").read_text())
    paths = document["paths"]
    for path in (
        "/v1/accounts",
        "/v1/accounts/{account_id}/transitions",
        "/v1/tasks",
        "/v1/api-keys",
        "/v1/lifecycle",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    assert "bearer" in json.dumps(document["components"]["securitySchemes"]).lower()


def test_playbook_schema_file_is_current():
    from service.contracts import playbook_schema_text

    checked_in = ROOT / "schemas" / "playbook.schema.json"
    assert checked_in.exists() and checked_in.read_text() == playbook_schema_text(), (
        "schemas/playbook.schema.json is stale: run `make schemas`"
    )


def test_graphql_schema_file_is_current():
    from service.contracts import graphql_schema_text

    checked_in = ROOT / "schemas" / "schema.graphql"
    assert checked_in.exists() and checked_in.read_text() == graphql_schema_text(), (
        "schemas/schema.graphql is stale: run `make schemas`"
    )
