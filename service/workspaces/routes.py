"""`/v1/workspace` (settings of the caller's workspace) and `/v1/api-keys`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.kit.routing import PrefixedRouter
from service.workspaces import service as workspaces_service
from service.workspaces.auth import Admin, Reader, SessionDep

router = PrefixedRouter(prefix="/v1", tags=["workspace"])

Scope = Literal["admin", "write", "read", "forecast:read"]


class WorkspaceRead(BaseModel):
    id: uuid.UUID
    name: str
    renewal_quarterback: str = Field(description="Quarterback of RENEW: csm, sales or revops.")
    timezone: str
    holiday_calendar: str | None = Field(
        description="Public holidays that business-day due dates skip (e.g. US, DE, US-CA)."
    )
    fiscal_year_start_month: int = Field(
        description="The month (1-12) the fiscal year starts in; forecast quarters follow it."
    )
    created_at: datetime


class WorkspaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    renewal_quarterback: Literal["csm", "sales", "revops"] | None = None
    timezone: str | None = Field(default=None, description="IANA time zone, e.g. Europe/Paris.")
    holiday_calendar: str | None = Field(
        default=None, description="Country code (US, GB, DE, US-CA …) or null for none."
    )
    fiscal_year_start_month: int | None = Field(
        default=None, ge=1, le=12, description="1 (January) to 12 (December)."
    )


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    scopes: list[Scope] = Field(min_length=1)


class ApiKeyRead(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="First characters of the key, to recognise it.")
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret key. Shown once; store it now.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyRead]


@router.get("/workspace", response_model=WorkspaceRead)
async def read_workspace(session: SessionDep, principal: Reader) -> object:
    return await workspaces_service.get_workspace(session, principal.workspace_id)


@router.patch("/workspace", response_model=WorkspaceRead)
async def update_workspace(session: SessionDep, principal: Admin, body: WorkspaceUpdate) -> object:
    return await workspaces_service.update_workspace(
        session, workspace_id=principal.workspace_id, **body.model_dump(exclude_unset=True)
    )


@router.get("/api-keys", response_model=ApiKeyList)
async def list_api_keys(session: SessionDep, principal: Admin) -> object:
    keys = await workspaces_service.list_api_keys(session, workspace_id=principal.workspace_id)
    return {"items": keys}


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
async def create_api_key(session: SessionDep, principal: Admin, body: ApiKeyCreate) -> object:
    key, raw_key = await workspaces_service.create_api_key(
        session, workspace_id=principal.workspace_id, name=body.name, scopes=list(body.scopes)
    )
    return {**key.model_dump(), "key": raw_key}


@router.delete("/api-keys/{key_id}", response_model=ApiKeyRead)
async def revoke_api_key(session: SessionDep, principal: Admin, key_id: uuid.UUID) -> object:
    """Revoke a key: it stops working at once. The record stays for the audit."""
    return await workspaces_service.revoke_api_key(
        session, workspace_id=principal.workspace_id, key_id=key_id
    )
