"""Workspaces (tenants) and the API keys that act in them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from service.db.models import created_at_field, id_field, json_field, timestamp_field


class Workspace(SQLModel, table=True):
    __tablename__ = "workspaces"

    # The workspace's own id is the tenant key every other table refers to as workspace_id.
    id: uuid.UUID = id_field()
    name: str = Field(max_length=200)
    renewal_quarterback: str = Field(default="csm", max_length=40)
    timezone: str = Field(default="UTC", max_length=64)
    # Public holidays that business-day due dates skip: "US", "DE", "US-CA"; none by default.
    holiday_calendar: str | None = Field(default=None, max_length=20)
    # Whether any outbound subscription is enabled: the transition hot path reads it with
    # the account lock and skips looking for subscribers when there are none.
    has_subscriptions: bool = Field(default=False)
    playbook_version: int | None = Field(
        default=None, description="The published playbook version in force."
    )
    # The month (1-12) the fiscal year starts in; forecast quarters follow it.
    fiscal_year_start_month: int = Field(default=1)
    created_at: datetime = created_at_field()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = Field(
        foreign_key="workspaces.id", ondelete="CASCADE", index=True, nullable=False
    )
    name: str = Field(max_length=200)
    # Only a SHA-256 digest is stored: keys are 256-bit random, so a slow hash adds nothing.
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    scopes: list[str] = json_field()
    created_at: datetime = created_at_field()
    last_used_at: datetime | None = timestamp_field()
    revoked_at: datetime | None = timestamp_field()
