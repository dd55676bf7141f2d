"""Pure adapter tests: real HTTP requests turned into Deliveries, an in-memory StateStore,
and the canonical event schema to check what adapters produce."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator, FormatChecker

from service.webhooks.adapters.base import AdapterContext, Delivery, SourceConfig

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "lifecycle-event.schema.json").read_text()
)
EVENT_SCHEMA = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
PUBLIC_URL = "https://qb.example.com/webhooks/5d1c8a51-0e0b-4b53-9f55-0e6c1b7b2f10"


class MemoryStateStore:
    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        return self.states.get(key)

    async def put(self, key: str, state: dict[str, Any]) -> None:
        self.states[key] = state


def delivery_from(
    request: httpx.Request, received_at: datetime | None = None, client_ip: str = "203.0.113.7"
) -> Delivery:
    """The Delivery the ingestion endpoint builds from this request, byte for byte."""
    return Delivery(
        method=request.method,
        url=str(request.url),
        headers={key.lower(): value for key, value in request.headers.items()},
        body=request.read(),
        client_ip=client_ip,
        received_at=received_at or datetime.now(UTC),
    )


def source_config(
    kind: str,
    secrets: tuple[str, ...],
    defaults: Mapping[str, Any],
    mapping: Mapping[str, Any] | None = None,
) -> SourceConfig:
    """A source as the framework hands it over: the adapter's defaults under its mapping."""
    return SourceConfig(
        id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        kind=kind,
        secrets=secrets,
        mapping={**defaults, **(mapping or {})},
    )


def context(http: httpx.AsyncClient) -> AdapterContext:
    return AdapterContext(http=http, state=MemoryStateStore(), now=datetime.now(UTC))


def assert_canonical(event: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in EVENT_SCHEMA.iter_errors(event)]
    assert not errors, errors
    # The installed jsonschema does not check `date-time`; the schema wants an offset.
    assert datetime.fromisoformat(event["occurred_at"]).tzinfo is not None
