"""Helpers for webhook tests: create sources through the API, deliver like a CRM would."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.fixture
def make_source(client: httpx.AsyncClient, workspace):
    async def make(kind: str, **fields: Any) -> dict[str, Any]:
        response = await client.post(
            "/v1/webhook-sources",
            json={"kind": kind, "name": f"{kind} source", **fields},
            headers=workspace.headers,
        )
        assert response.status_code == 201, response.text
        return response.json()

    return make
