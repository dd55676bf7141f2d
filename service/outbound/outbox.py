"""Writing outbox rows in the transaction of the change they announce.

A change (a task raised, a stage moved) finds its subscribers and writes one outbox row per
subscriber with the body to send, before the change commits; so a change and its
announcements commit together or not at all, and the dispatcher delivers them afterwards.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import tables
from service.db.types import utcnow, uuid7

TASK_RAISED = "task.raised"
TASK_COMPLETED = "task.completed"
STAGE_CHANGED = "account.stage_changed"
HANDOFF_ACCEPTED = "handoff.accepted"
HANDOFF_REJECTED = "handoff.rejected"
EVENT_TYPES = (TASK_RAISED, TASK_COMPLETED, STAGE_CHANGED, HANDOFF_ACCEPTED, HANDOFF_REJECTED)

_types, _subs = tables.subscription_event_types.c, tables.subscriptions.c
SUBSCRIBERS = (
    select(_types.subscription_id)
    .join(tables.subscriptions, _subs.id == _types.subscription_id)
    .where(
        _types.workspace_id == bindparam("workspace_id"),
        _types.event_type == bindparam("event_type"),
        or_(_types.department.is_(None), _types.department == bindparam("department")),
        and_(_subs.enabled.is_(True), _subs.status != "disabled"),
    )
)
INSERT_MESSAGES = insert(tables.outbox_messages)


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


async def emit(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    event_type: str,
    data: dict[str, Any],
    department: str | None = None,
    now: datetime | None = None,
) -> int:
    """Queue `data` for every subscriber of `event_type`; returns how many were queued."""
    connection = await session.connection()
    subscribers = (
        (
            await connection.execute(
                SUBSCRIBERS,
                {"workspace_id": workspace_id, "event_type": event_type, "department": department},
            )
        )
        .scalars()
        .all()
    )
    if not subscribers:
        return 0
    now = now or utcnow()
    body = {"type": event_type, "timestamp": now.isoformat(), "data": _json(data)}
    await connection.execute(
        INSERT_MESSAGES,
        [
            {
                "id": uuid7(),
                "workspace_id": workspace_id,
                "subscription_id": subscription_id,
                "event_type": event_type,
                "payload": body,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for subscription_id in subscribers
        ],
    )
    return len(subscribers)


TASK_FIELDS = (
    "id", "account_id", "kind", "title", "department", "status", "priority", "assignee_id",
    "assignee_name", "due_on", "from_department", "to_department", "from_stage", "to_stage",
    "handoff_status", "transition_id", "parent_task_id", "created_at",
)  # fmt: skip


def task_data(task: Any) -> dict[str, Any]:
    """The documented task body (schemas/outbound-webhook.schema.json)."""
    get = task.get if isinstance(task, dict) else lambda name: getattr(task, name)
    return {name: get(name) for name in TASK_FIELDS}
