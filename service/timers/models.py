"""Durable timers: work that is due at a point in time (time rules, SLAs, touchpoints)."""

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

TIMER_STATUSES = ("pending", "fired", "cancelled", "failed")


class Timer(SQLModel, table=True):
    """One occurrence of a time rule; its key names the occurrence, once per workspace."""

    __tablename__ = "timers"
    __table_args__ = (
        UniqueConstraint("workspace_id", "key"),
        # The claim query: pending timers in due order, across workspaces.
        Index("ix_timers_status_due_at", "status", "due_at"),
        Index("ix_timers_account_status", "account_id", "status"),
    )

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    kind: str = Field(max_length=60)
    key: str = Field(max_length=300)
    account_id: uuid.UUID | None = Field(
        default=None, foreign_key="accounts.id", ondelete="CASCADE"
    )
    due_at: datetime = Field(sa_type=UTCDateTime)
    payload: dict[str, Any] = json_field(dict)
    status: str = Field(default="pending", max_length=20)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=2000)
    # The worker that made the last attempt, for operators reading the table.
    worker_id: str | None = Field(default=None, max_length=200)
    fired_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
