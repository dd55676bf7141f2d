"""Generated contract files; `make schemas` writes them and a test fails when they are stale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.config import Settings


def openapi_document() -> dict[str, Any]:
    from service.app import create_app

    return create_app(Settings()).openapi()


def render_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def playbook_schema_text() -> str:
    from service.playbooks.document import _schema_text

    return _schema_text()


def graphql_schema_text() -> str:
    from service.graphql.schema import schema_sdl

    return schema_sdl()


def write_contracts(root: Path) -> list[Path]:
    written = []
    for relative, text in (
        ("openapi/openapi.json", render_json(openapi_document())),
        ("schemas/playbook.schema.json", playbook_schema_text()),
        ("schemas/schema.graphql", graphql_schema_text()),
    ):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
