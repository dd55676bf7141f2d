"""The lifecycle model of a workspace: departments and stages with their quarterbacks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db.models import (
    created_at_field,
    id_field,
    json_field,
    timestamp_field,
    workspace_field,
)
from service.db.types import UTCDateTime


class Department(SQLModel, table=True):
    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    key: str = Field(max_length=40)
    name: str = Field(max_length=100)


class Stage(SQLModel, table=True):
    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    key: str = Field(max_length=40)
    name: str = Field(max_length=100)
    position: int
    quarterback: str = Field(max_length=40)
    supporting: list[str] = json_field()
    # Forward moves need nothing; backward moves (re-implementation, nurture) need a reason.
    next_stages: list[str] = json_field()
    backward_stages: list[str] = json_field()
    entered_when: str = Field(default="", max_length=500)
    # As written in the playbook: a department, or `renewal_owner` (the workspace setting).
    quarterback_role: str = Field(default="", max_length=40)
    # The quarterback department's display name, for handoff titles written on the hot path.
    quarterback_name: str = Field(default="", max_length=100)
    # The handoff raised when a move into this stage changes the quarterback.
    handoff_checklist: list[str] = json_field()
    handoff_due_days: int = Field(default=2)
    accept_within_days: int = Field(default=2)
    # The playbook's stuck_in_stage time rules for this stage: timers set on each entry.
    stuck_rules: list[dict[str, Any]] = json_field()


class LifecycleEvent(SQLModel, table=True):
    """A received lifecycle event and what it did; unique per workspace, source and sender id."""

    __tablename__ = "lifecycle_events"
    __table_args__ = (
        UniqueConstraint("workspace_id", "source", "external_id"),
        Index("ix_lifecycle_events_account_outcome", "account_id", "outcome"),
    )

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    source: str = Field(max_length=100)
    external_id: str = Field(max_length=200)
    type: str = Field(max_length=60)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    account_id: uuid.UUID | None = Field(
        default=None, foreign_key="accounts.id", ondelete="CASCADE"
    )
    payload: dict[str, Any] = json_field(dict)
    outcome: str = Field(default="received", max_length=20)
    reason: str | None = Field(default=None, max_length=2000)
    transition_id: uuid.UUID | None = None
    playbook_version: int | None = None
    rule: str | None = Field(default=None, max_length=200)
    # Repeat deliveries of the same (source, id): counted, never applied again.
    duplicates: int = Field(default=0)
    last_duplicate_at: datetime | None = timestamp_field()
    received_at: datetime = created_at_field()
    decided_at: datetime | None = timestamp_field()
