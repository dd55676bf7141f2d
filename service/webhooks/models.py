"""Webhook sources (where a CRM delivers), their mapping history, and per-record state."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db.models import (
    created_at_field,
    id_field,
    json_field,
    timestamp_field,
    workspace_field,
)


class WebhookSource(SQLModel, table=True):
    __tablename__ = "webhook_sources"

    # Random (UUIDv4, 122 bits), not time-ordered: the id is in the ingestion URL, and for
    # senders that cannot sign (Salesforce outbound messages) it must not be guessable.
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = workspace_field()
    kind: str = Field(max_length=20)
    name: str = Field(max_length=200)
    # The `source` of the events it produces: dedupe scope and external-id namespace
    # (accounts found by `?external_id=hubspot:123`). Defaults to the kind.
    namespace: str = Field(max_length=100)
    mapping: dict[str, Any] = json_field(dict)
    mapping_version: int = Field(default=1)
    api_base_url: str | None = Field(default=None, max_length=500)
    # Secrets are needed in clear to verify HMACs; they are never returned after creation
    # or rotation, and never logged.
    secret: str = Field(max_length=200)
    previous_secret: str | None = Field(default=None, max_length=200)
    previous_secret_expires_at: datetime | None = timestamp_field()
    api_token: str | None = Field(default=None, max_length=500)
    enabled: bool = True
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class WebhookMappingVersion(SQLModel, table=True):
    """Every mapping a source has had: who changed it, when, and to what."""

    __tablename__ = "webhook_mapping_versions"
    __table_args__ = (UniqueConstraint("source_id", "version"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    source_id: uuid.UUID = Field(foreign_key="webhook_sources.id", ondelete="CASCADE")
    version: int
    mapping: dict[str, Any] = json_field(dict)
    changed_by: str | None = Field(default=None, max_length=200)
    changed_at: datetime = created_at_field()


class WebhookRecordState(SQLModel, table=True):
    """The last state a sender showed of one of its records (Salesforce sends only the
    current state; the adapter derives events from the difference)."""

    __tablename__ = "webhook_record_states"
    __table_args__ = (UniqueConstraint("source_id", "key"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    source_id: uuid.UUID = Field(foreign_key="webhook_sources.id", ondelete="CASCADE")
    key: str = Field(max_length=200)
    state: dict[str, Any] = json_field(dict)
    updated_at: datetime = created_at_field()
