"""Request and response bodies of the tasks API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Status = Literal["open", "in_progress", "done", "cancelled"]
Priority = Literal["low", "normal", "high", "urgent"]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChecklistItem(BaseModel):
    id: str
    text: str
    done: bool


class ChecklistItemIn(Strict):
    id: str | None = Field(default=None, description="Omit to add a new item.")
    text: Text | None = None
    done: bool | None = None


class HandoffContextIn(Strict):
    notes: str | None = Field(default=None, max_length=10_000)
    links: list[Annotated[str, StringConstraints(max_length=2000)]] | None = Field(
        default=None, max_length=50
    )
    risks: list[Annotated[str, StringConstraints(max_length=2000)]] | None = Field(
        default=None, max_length=50
    )


class TaskRead(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    kind: str = Field(description="task, handoff or handoff_rework.")
    title: str
    department: str
    status: Status
    priority: Priority
    assignee_id: str | None
    assignee_name: str | None
    due_on: date | None
    checklist: list[ChecklistItem]
    from_department: str | None
    to_department: str | None
    from_stage: str | None
    to_stage: str | None
    context: dict[str, Any] = Field(description="Notes, links and open risks left with a handoff.")
    handoff_status: Literal["pending", "accepted", "rejected"] | None
    handoff_reason: str | None
    transition_id: uuid.UUID | None
    parent_task_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class TaskPage(BaseModel):
    items: list[TaskRead]
    next_cursor: str | None


class TaskCreate(Strict):
    account_id: uuid.UUID
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    department: str
    due_on: date | None = None
    priority: Priority = "normal"
    checklist: list[Text] = Field(default_factory=list, max_length=100)
    assignee_id: str | None = Field(default=None, max_length=200)
    assignee_name: str | None = Field(default=None, max_length=200)


class TaskUpdate(Strict):
    status: Status | None = None
    priority: Priority | None = None
    assignee_id: str | None = Field(default=None, max_length=200)
    assignee_name: str | None = Field(default=None, max_length=200)
    due_on: date | None = None
    checklist: list[ChecklistItemIn] | None = Field(
        default=None,
        max_length=100,
        description="The whole checklist: items keep their id; items without id are added.",
    )
    context: HandoffContextIn | None = None


class ChecklistTick(Strict):
    done: bool


class HandoffAccept(Strict):
    assignee_id: str | None = Field(default=None, max_length=200)
    assignee_name: str | None = Field(default=None, max_length=200)
    comment: str | None = Field(default=None, max_length=2000)


class HandoffReject(Strict):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class HandoffRejected(BaseModel):
    handoff: TaskRead
    returned_task: TaskRead = Field(description="The task raised for the previous quarterback.")


class TaskActivityRead(BaseModel):
    id: uuid.UUID
    task_id: uuid.UUID
    action: str
    actor: str | None
    changes: dict[str, Any] = Field(description="Changed fields: {field: [before, after]}.")
    comment: str | None
    occurred_at: datetime


class TaskActivityList(BaseModel):
    items: list[TaskActivityRead]
