"""Factories for test data, through the same service functions the API uses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.workspaces import service as workspaces_service


@dataclass(frozen=True)
class WorkspaceKey:
    id: uuid.UUID
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def create_workspace(
    sessionmaker: async_sessionmaker[AsyncSession], name: str = "Workspace", **options: Any
) -> WorkspaceKey:
    async with sessionmaker() as session, session.begin():
        workspace = await workspaces_service.create_workspace(session, name=name, **options)
        _, raw_key = await workspaces_service.create_api_key(
            session, workspace_id=workspace.id, name="admin", scopes=["admin"]
        )
    return WorkspaceKey(workspace.id, raw_key)


async def create_key(
    client: httpx.AsyncClient, admin: WorkspaceKey, scopes: list[str]
) -> WorkspaceKey:
    response = await client.post(
        "/v1/api-keys", json={"name": "-".join(scopes), "scopes": scopes}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    return WorkspaceKey(admin.id, response.json()["key"])


async def create_account(
    client: httpx.AsyncClient, ws: WorkspaceKey, **fields: Any
) -> dict[str, Any]:
    body = {"name": f"Account {uuid.uuid4().hex[:6]}", **fields}
    response = await client.post("/v1/accounts", json=body, headers=ws.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def transition(
    client: httpx.AsyncClient, ws: WorkspaceKey, account_id: str, to_stage: str, **fields: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/accounts/{account_id}/transitions",
        json={"to_stage": to_stage, **fields},
        headers=ws.headers,
    )


async def walk(
    client: httpx.AsyncClient, ws: WorkspaceKey, account_id: str, *stages: str
) -> list[dict[str, Any]]:
    results = []
    for stage in stages:
        response = await transition(client, ws, account_id, stage, reason="test")
        assert response.status_code == 201, response.text
        results.append(response.json())
    return results
