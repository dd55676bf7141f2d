"""Customer accounts, their owners per department, their ids in other systems and history."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db.models import created_at_field, id_field, json_field, workspace_field
from service.db.types import Money


class Account(SQLModel, table=True):
    __tablename__ = "accounts"
    __table_args__ = (
        Index("ix_accounts_workspace_stage", "workspace_id", "stage", "id"),
        Index("ix_accounts_workspace_segment", "workspace_id", "segment", "id"),
    )

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    name: str = Field(max_length=200)
    domain: str | None = Field(default=None, max_length=253)
    segment: str = Field(default="mid_touch", max_length=20)
    arr: Decimal = Field(default=Decimal("0.00"), sa_type=Money)
    currency: str = Field(default="USD", max_length=3)
    stage: str = Field(max_length=40)
    stage_entered_at: datetime = created_at_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class AccountOwner(SQLModel, table=True):
    __tablename__ = "account_owners"
    __table_args__ = (
        UniqueConstraint("account_id", "department"),
        Index("ix_account_owners_workspace_user", "workspace_id", "user_id"),
    )

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    account_id: uuid.UUID = Field(foreign_key="accounts.id", ondelete="CASCADE")
    department: str = Field(max_length=40)
    user_id: str = Field(max_length=200)
    user_name: str | None = Field(default=None, max_length=200)


class AccountExternalId(SQLModel, table=True):
    __tablename__ = "account_external_ids"
    __table_args__ = (
        UniqueConstraint("workspace_id", "source", "external_id"),
        UniqueConstraint("account_id", "source"),
    )

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    account_id: uuid.UUID = Field(foreign_key="accounts.id", ondelete="CASCADE")
    source: str = Field(max_length=100)
    external_id: str = Field(max_length=200)


class StageTransition(SQLModel, table=True):
    __tablename__ = "stage_transitions"
    __table_args__ = (Index("ix_stage_transitions_account", "account_id", "id"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    account_id: uuid.UUID = Field(foreign_key="accounts.id", ondelete="CASCADE")
    from_stage: str | None = Field(default=None, max_length=40)
    to_stage: str = Field(max_length=40)
    reason: str | None = Field(default=None, max_length=2000)
    cause: str = Field(default="manual", max_length=40)
    actor: str | None = Field(default=None, max_length=200)
    backward: bool = False
    skipped_stages: list[str] = json_field()
    playbook_version: int | None = None
    occurred_at: datetime = created_at_field()
    handoff_task_id: uuid.UUID | None = None
