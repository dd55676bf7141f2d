"""Outbound webhooks: subscriptions, the outbox written with each change, and attempts."""

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


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    url: str = Field(max_length=2000)
    description: str | None = Field(default=None, max_length=500)
    events: list[str] = json_field()
    # Only changes concerning this department (the task's department); None: all.
    department: str | None = Field(default=None, max_length=40)
    secret: str = Field(max_length=200)  # never returned after creation
    enabled: bool = True
    status: str = Field(default="active", max_length=20)  # active | failing | disabled
    consecutive_failures: int = Field(default=0)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class SubscriptionEventType(SQLModel, table=True):
    """One row per (subscription, event type): lets a change find its subscribers and write
    their outbox rows in a single INSERT … SELECT, whatever the dialect."""

    __tablename__ = "subscription_event_types"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_type"),
        Index("ix_subscription_event_types_lookup", "workspace_id", "event_type"),
    )

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    subscription_id: uuid.UUID = Field(foreign_key="subscriptions.id", ondelete="CASCADE")
    event_type: str = Field(max_length=60)
    department: str | None = Field(default=None, max_length=40)


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
        Index("ix_outbox_messages_subscription", "subscription_id", "id"),
    )

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    subscription_id: uuid.UUID = Field(foreign_key="subscriptions.id", ondelete="CASCADE")
    event_type: str = Field(max_length=60)
    # The body sent, fixed when the change happened: {"type", "timestamp", "data"}.
    payload: dict[str, Any] = json_field(dict)
    status: str = Field(default="pending", max_length=20)  # pending | delivered | failed
    attempts: int = Field(default=0)
    next_attempt_at: datetime = created_at_field()
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = created_at_field()
    delivered_at: datetime | None = timestamp_field()


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_message", "message_id", "id"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    message_id: uuid.UUID = Field(foreign_key="outbox_messages.id", ondelete="CASCADE")
    attempted_at: datetime = created_at_field()
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=1000)
    duration_ms: int = Field(default=0)
    response_body: str | None = Field(default=None, max_length=1000)
    worker_id: str | None = Field(default=None, max_length=200)
