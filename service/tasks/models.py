"""Tasks, handoffs among them, and the audit trail of every change to a task."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from service.db.models import created_at_field, id_field, json_field, workspace_field


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_workspace_department_status", "workspace_id", "department", "status"),
        Index("ix_tasks_account", "account_id", "id"),
    )

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    account_id: uuid.UUID = Field(foreign_key="accounts.id", ondelete="CASCADE")
    kind: str = Field(default="task", max_length=40)
    title: str = Field(max_length=300)
    department: str = Field(max_length=40)
    status: str = Field(default="open", max_length=20)
    priority: str = Field(default="normal", max_length=20)
    assignee_id: str | None = Field(default=None, max_length=200)
    assignee_name: str | None = Field(default=None, max_length=200)
    due_on: date | None = None
    checklist: list[dict[str, Any]] = json_field()
    # Handoffs only: who hands over to whom, what they leave, and how it was received.
    from_department: str | None = Field(default=None, max_length=40)
    to_department: str | None = Field(default=None, max_length=40)
    from_stage: str | None = Field(default=None, max_length=40)
    to_stage: str | None = Field(default=None, max_length=40)
    context: dict[str, Any] = json_field(dict)
    handoff_status: str | None = Field(default=None, max_length=20)
    handoff_reason: str | None = Field(default=None, max_length=2000)
    transition_id: uuid.UUID | None = None
    parent_task_id: uuid.UUID | None = None
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class TaskActivity(SQLModel, table=True):
    """One row per change of a task: who did what, and the fields before and after."""

    __tablename__ = "task_activities"
    __table_args__ = (Index("ix_task_activities_task", "task_id", "id"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    task_id: uuid.UUID = Field(foreign_key="tasks.id", ondelete="CASCADE")
    action: str = Field(max_length=40)
    actor: str | None = Field(default=None, max_length=200)
    changes: dict[str, Any] = json_field(dict)
    comment: str | None = Field(default=None, max_length=2000)
    occurred_at: datetime = created_at_field()
