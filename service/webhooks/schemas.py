"""Request and response bodies of the webhook-sources API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Kind = Literal["hubspot", "salesforce", "pipedrive", "standard"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=500)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceCreate(Strict):
    kind: Kind
    name: Name
    secret: Annotated[str, StringConstraints(min_length=8, max_length=200)] | None = Field(
        default=None,
        description="The signing secret or password; generated when omitted (a whsec_ secret "
        "for standard). HubSpot needs your app's client secret.",
    )
    mapping: dict[str, Any] | None = Field(
        default=None, description="Options of the kind's adapter; see the README per CRM."
    )
    api_base_url: Url | None = Field(default=None, description="CRM API for lookups (HubSpot).")
    api_token: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    namespace: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,100}$")] | None = Field(
        default=None,
        description="Source name of the events and external ids it produces; the kind if omitted.",
    )


class SourceUpdate(Strict):
    name: Name | None = None
    mapping: dict[str, Any] | None = Field(default=None, description="Replaces the mapping.")
    api_base_url: Url | None = None
    api_token: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    enabled: bool | None = None


class SourceRead(BaseModel):
    id: uuid.UUID
    kind: str
    name: str
    namespace: str
    mapping: dict[str, Any]
    mapping_version: int
    api_base_url: str | None
    has_api_token: bool
    enabled: bool
    ingestion_url: str = Field(description="Where the CRM must deliver (POST).")
    secret_rotated_until: datetime | None = Field(
        description="Until when the previous secret is still accepted, after a rotation."
    )
    created_at: datetime
    updated_at: datetime


class SourceCreated(SourceRead):
    secret: str = Field(description="Shown once: configure it in the CRM now.")


class SourceList(BaseModel):
    items: list[SourceRead]


class SecretRotation(Strict):
    secret: Annotated[str, StringConstraints(min_length=8, max_length=200)] | None = None
    grace_seconds: int = Field(
        default=86_400, ge=0, le=30 * 86_400, description="How long the old secret still works."
    )


class MappingVersionRead(BaseModel):
    version: int
    mapping: dict[str, Any]
    changed_by: str | None
    changed_at: datetime


class MappingVersionList(BaseModel):
    items: list[MappingVersionRead]


class TryDelivery(Strict):
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = Field(max_length=1_048_576, description="The raw body, exactly as sent.")
    url: Url | None = Field(
        default=None, description="The URL called; the ingestion URL if omitted."
    )
    client_ip: str | None = None


class TriedItem(BaseModel):
    dedupe_key: str
    label: str
    event: dict[str, Any] | None
    ignored_reason: str | None
    note: str | None
    already_received: bool = Field(description="This change was delivered before.")
    simulation: dict[str, Any] | None = Field(
        description="What the playbook would do with the event (see /v1/playbook/simulate)."
    )


class TryResult(BaseModel):
    verified: bool
    verification_error: str | None
    malformed: str | None
    items: list[TriedItem]
