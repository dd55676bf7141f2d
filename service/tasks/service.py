"""Tasks and handoffs: raising them, changing them, and the audit trail of every change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.accounts.models import Account, AccountOwner
from service.db import tables
from service.db.types import utcnow, uuid7
from service.errors import Conflict, InvalidInput, NotFound, TaskStatusNotAllowed
from service.kit import live
from service.kit.dates import add_business_days, local_today
from service.kit.pagination import decode_cursor, trim_page
from service.lifecycle.models import Department, Stage
from service.outbound import outbox
from service.playbooks import schedules
from service.tasks.models import Task, TaskActivity
from service.timers import service as timers_service
from service.workspaces.models import Workspace

STATUSES = ("open", "in_progress", "done", "cancelled")
ALLOWED_STATUS_CHANGES: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress", "done", "cancelled"}),
    "in_progress": frozenset({"open", "done", "cancelled"}),
    "done": frozenset(),
    "cancelled": frozenset(),
}
PRIORITIES = ("low", "normal", "high", "urgent")
TASKS_RAISED = Counter("qb_tasks_raised", "Tasks raised, by kind.", ["kind"])
KIND_HANDOFF = "handoff"
REWORK_DUE_BUSINESS_DAYS = 2
INSERT_TASK = insert(tables.tasks)
INSERT_ACTIVITY = insert(tables.task_activities)


# PostgreSQL takes a new task and its `created` activity in one round trip, the task as a
# WITH clause (the activity's foreign key is checked at the end of the statement); SQLite,
# with no INSERT inside WITH, in two.
_NEW_TASK_CTE = tables.insert_every_column(tables.tasks, "task_").cte("new_task")
INSERT_TASK_WITH_ACTIVITY = tables.insert_every_column(tables.task_activities, "activity_").add_cte(
    _NEW_TASK_CTE
)
# A handoff's SLA timer too: its key names the new task, so no timer can hold it already.
INSERT_TASK_WITH_ACTIVITY_AND_TIMER = tables.insert_every_column(
    tables.task_activities, "activity_"
).add_cte(
    _NEW_TASK_CTE,
    tables.insert_every_column(tables.timers, "timer_", timers_service.TIMER_ROW_COLUMNS).cte(
        "new_timer"
    ),
)
KIND_REWORK = "handoff_rework"


async def department_name(session: AsyncSession, workspace_id: uuid.UUID, key: str) -> str:
    """The display name the workspace's playbook gives a department (its key if none)."""
    name = await session.scalar(
        select(col(Department.name)).where(
            col(Department.workspace_id) == workspace_id, col(Department.key) == key
        )
    )
    return name or key


def checklist_items(texts: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"id": uuid.uuid4().hex[:12], "text": text, "done": False} for text in texts]


def _activity(
    task_id: uuid.UUID,
    workspace_id: uuid.UUID,
    action: str,
    actor: str | None,
    changes: dict[str, Any] | None = None,
    comment: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "workspace_id": workspace_id,
        "task_id": task_id,
        "action": action,
        "actor": actor,
        "changes": changes or {},
        "comment": comment,
        "occurred_at": now or utcnow(),
    }


async def raise_handoff(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    account_name: str,
    from_department: str,
    to_department: str,
    from_name: str | None,
    to_name: str | None,
    from_stage: str | None,
    to_stage: str | None,
    transition_id: uuid.UUID | None,
    timezone: str,
    calendar: str | None = None,
    context: dict[str, Any] | None = None,
    assignee_id: str | None = None,
    assignee_name: str | None = None,
    checklist: list[str] | tuple[str, ...] = (),
    due_in_business_days: int = 2,
    accept_within_days: int = 2,
    actor: str | None = None,
    parent_task_id: uuid.UUID | None = None,
    notify: bool | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write a handoff task for the receiving quarterback, its activity and its SLA timer:
    Core inserts, no reads (one statement on PostgreSQL).

    Returns the task's columns as a dict; this runs on the transition hot path, where
    building ORM objects cost more than the inserts.
    """
    now = now or utcnow()
    task_id = uuid7()
    sla = schedules.handoff_sla_timer(
        workspace_id=workspace_id,
        account_id=account_id,
        task_id=task_id,
        accept_within_days=accept_within_days,
        now=now,
        timezone=timezone,
        calendar=calendar,
    )
    return await _write_task(
        session,
        actor=actor,
        now=now,
        notify=notify,
        timer=sla,
        id=task_id,
        workspace_id=workspace_id,
        account_id=account_id,
        kind=KIND_HANDOFF,
        title=(
            f"Handoff: {account_name} from {from_name or from_department} "
            f"to {to_name or to_department}"
        ),
        department=to_department,
        priority="high",
        assignee_id=assignee_id,
        assignee_name=assignee_name,
        due_on=add_business_days(local_today(now, timezone), due_in_business_days, calendar),
        checklist=checklist_items(checklist),
        from_department=from_department,
        to_department=to_department,
        from_stage=from_stage,
        to_stage=to_stage,
        context=_clean_context(context),
        handoff_status="pending",
        transition_id=transition_id,
        parent_task_id=parent_task_id,
    )


async def raise_task(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    title: str,
    department: str,
    timezone: str,
    calendar: str | None = None,
    due_in_business_days: int | None = None,
    due_on: date | None = None,
    priority: str = "normal",
    checklist: list[str] | tuple[str, ...] = (),
    assignee_id: str | None = None,
    assignee_name: str | None = None,
    kind: str = "task",
    transition_id: uuid.UUID | None = None,
    parent_task_id: uuid.UUID | None = None,
    actor: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write a task a rule raised (a playbook rule, a time rule): two Core inserts."""
    now = now or utcnow()
    if due_on is None and due_in_business_days is not None:
        due_on = add_business_days(local_today(now, timezone), due_in_business_days, calendar)
    return await _write_task(
        session,
        actor=actor,
        now=now,
        workspace_id=workspace_id,
        account_id=account_id,
        kind=kind,
        title=title[:300],
        department=department,
        priority=priority,
        assignee_id=assignee_id,
        assignee_name=assignee_name,
        due_on=due_on,
        checklist=checklist_items(checklist),
        transition_id=transition_id,
        parent_task_id=parent_task_id,
    )


# Columns a task starts with unless its raiser says otherwise.
_NEW_TASK: dict[str, Any] = {
    "status": "open",
    "priority": "normal",
    "assignee_id": None,
    "assignee_name": None,
    "due_on": None,
    "checklist": [],
    "from_department": None,
    "to_department": None,
    "from_stage": None,
    "to_stage": None,
    "context": {},
    "handoff_status": None,
    "handoff_reason": None,
    "transition_id": None,
    "parent_task_id": None,
}


async def _write_task(
    session: AsyncSession,
    *,
    actor: str | None,
    now: datetime,
    notify: bool | None = None,
    timer: dict[str, Any] | None = None,
    **columns: Any,
) -> dict[str, Any]:
    """Insert a task, its `created` activity and, if given, a new timer's row (a handoff's
    SLA) with Core statements; return the task's columns.

    `notify=False` says the caller knows the workspace has no subscribers (the transition
    path reads that with the account lock); otherwise subscribers are looked up.
    """
    task = {**_NEW_TASK, "id": uuid7(), "created_at": now, "updated_at": now, **columns}
    TASKS_RAISED.labels(task["kind"]).inc()
    activity = _activity(task["id"], task["workspace_id"], "created", actor, now=now)
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        values = tables.prefixed(task, "task_") | tables.prefixed(activity, "activity_")
        if timer is None:
            await connection.execute(INSERT_TASK_WITH_ACTIVITY, values)
        else:
            values |= tables.prefixed(timer, "timer_")
            await connection.execute(INSERT_TASK_WITH_ACTIVITY_AND_TIMER, values)
    else:
        await connection.execute(INSERT_TASK, task)
        await connection.execute(INSERT_ACTIVITY, activity)
        if timer is not None:
            await connection.execute(
                timers_service.upsert_statement(connection.dialect.name, False), timer
            )
    if notify is not False:
        await outbox.emit(
            session,
            workspace_id=task["workspace_id"],
            event_type=outbox.TASK_RAISED,
            data=outbox.task_data(task),
            department=task["department"],
            now=now,
        )
    _announce_raised(
        session, task["workspace_id"], task["id"], task["account_id"], task["department"]
    )
    return task


def _announce_raised(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    task_id: uuid.UUID,
    account_id: uuid.UUID,
    department: str,
) -> None:
    # For `taskRaised` subscribers; sent after the commit, never for a rollback.
    live.announce(
        session,
        live.TASK_RAISED,
        workspace_id=workspace_id,
        id=task_id,
        account_id=account_id,
        department=department,
    )


def _clean_context(context: dict[str, Any] | None) -> dict[str, Any]:
    context = dict(context or {})
    return {
        "notes": context.get("notes"),
        "links": list(context.get("links") or []),
        "risks": list(context.get("risks") or []),
    }


async def create_task(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    title: str,
    department: str,
    due_on: date | None,
    priority: str,
    checklist: list[str],
    assignee_id: str | None,
    assignee_name: str | None,
    actor: str | None,
    known_departments: set[str],
) -> Task:
    if department not in known_departments:
        raise InvalidInput(
            f"unknown department {department!r}; one of {', '.join(sorted(known_departments))}",
            errors=[{"field": "department", "in": "body", "message": "unknown department"}],
        )
    await _require_account(session, workspace_id, account_id)
    now = utcnow()
    task = Task(
        workspace_id=workspace_id,
        account_id=account_id,
        kind="task",
        title=title,
        department=department,
        priority=priority,
        due_on=due_on,
        checklist=checklist_items(checklist),
        assignee_id=assignee_id,
        assignee_name=assignee_name,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    session.add(TaskActivity(**_activity(task.id, workspace_id, "created", actor, now=now)))
    await session.flush()
    await outbox.emit(
        session,
        workspace_id=workspace_id,
        event_type=outbox.TASK_RAISED,
        data=outbox.task_data(task),
        department=department,
        now=now,
    )
    _announce_raised(session, workspace_id, task.id, account_id, department)
    return task


async def _require_account(
    session: AsyncSession, workspace_id: uuid.UUID, account_id: uuid.UUID
) -> Account:
    account = await session.scalar(
        select(Account).where(
            col(Account.workspace_id) == workspace_id, col(Account.id) == account_id
        )
    )
    if account is None:
        raise NotFound(f"account {account_id} not found")
    return account


async def get_task(
    session: AsyncSession, *, workspace_id: uuid.UUID, task_id: uuid.UUID, for_update: bool = False
) -> Task:
    statement = select(Task).where(col(Task.workspace_id) == workspace_id, col(Task.id) == task_id)
    if for_update:
        statement = statement.with_for_update()
    task = await session.scalar(statement)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    return task


@dataclass(frozen=True)
class TaskFilter:
    department: str | None = None
    status: list[str] | None = None
    account_id: uuid.UUID | None = None
    assignee_id: str | None = None
    due_before: date | None = None
    kind: str | None = None


async def list_tasks(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    filters: TaskFilter,
    limit: int,
    cursor: str | None,
) -> tuple[list[Task], str | None]:
    statement = select(Task).where(col(Task.workspace_id) == workspace_id)
    if filters.department:
        statement = statement.where(col(Task.department) == filters.department)
    if filters.status:
        unknown = set(filters.status) - set(STATUSES)
        if unknown:
            raise InvalidInput(
                f"unknown status {', '.join(sorted(unknown))}; one of {', '.join(STATUSES)}",
                errors=[{"field": "status", "in": "query", "message": "unknown status"}],
            )
        statement = statement.where(col(Task.status).in_(filters.status))
    if filters.account_id:
        statement = statement.where(col(Task.account_id) == filters.account_id)
    if filters.assignee_id:
        statement = statement.where(col(Task.assignee_id) == filters.assignee_id)
    if filters.due_before:
        statement = statement.where(col(Task.due_on) < filters.due_before)
    if filters.kind:
        statement = statement.where(col(Task.kind) == filters.kind)
    after = decode_cursor(cursor)
    if after is not None:
        statement = statement.where(col(Task.id) > after)
    rows = list((await session.scalars(statement.order_by(col(Task.id)).limit(limit + 1))).all())
    return trim_page(rows, limit, lambda task: task.id)


async def list_activity(
    session: AsyncSession, *, workspace_id: uuid.UUID, task_id: uuid.UUID
) -> list[TaskActivity]:
    await get_task(session, workspace_id=workspace_id, task_id=task_id)
    result = await session.scalars(
        select(TaskActivity)
        .where(col(TaskActivity.workspace_id) == workspace_id, col(TaskActivity.task_id) == task_id)
        .order_by(col(TaskActivity.id))
    )
    return list(result.all())


def _check_status_change(task: Task, new_status: str) -> None:
    if new_status not in STATUSES:
        raise InvalidInput(f"unknown status {new_status!r}; one of {', '.join(STATUSES)}")
    if new_status == task.status:
        return
    allowed = ALLOWED_STATUS_CHANGES[task.status]
    if new_status not in allowed:
        raise TaskStatusNotAllowed(
            f"a {task.status} task cannot become {new_status}"
            + (f"; it can become {', '.join(sorted(allowed))}" if allowed else "; it is closed"),
            current_status=task.status,
            allowed_statuses=sorted(allowed),
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


async def update_task(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    task_id: uuid.UUID,
    changes: dict[str, Any],
    actor: str | None,
) -> Task:
    """Apply a partial update; every changed field is written to the task's activity."""
    task = await get_task(session, workspace_id=workspace_id, task_id=task_id, for_update=True)
    if "status" in changes and changes["status"] is not None:
        _check_status_change(task, changes["status"])
        if task.kind == KIND_HANDOFF and task.handoff_status == "pending":
            if changes["status"] in ("in_progress", "done"):
                raise Conflict(
                    "accept the handoff first (POST /v1/tasks/{id}/accept), or reject it",
                    handoff_status=task.handoff_status,
                )
    if "priority" in changes and changes["priority"] not in PRIORITIES:
        raise InvalidInput(f"priority must be one of {', '.join(PRIORITIES)}")
    if "checklist" in changes and changes["checklist"] is not None:
        changes["checklist"] = _merge_checklist(task.checklist, changes["checklist"])
    if "context" in changes and changes["context"] is not None:
        changes["context"] = _clean_context({**task.context, **changes["context"]})
    diff: dict[str, list[Any]] = {}
    for field, value in changes.items():
        if field in ("status", "checklist", "context") and value is None:
            continue
        old = getattr(task, field)
        if old != value:
            diff[field] = [_jsonable(old), _jsonable(value)]
            setattr(task, field, value)
    if not diff:
        return task
    now = utcnow()
    task.updated_at = now
    session.add(TaskActivity(**_activity(task.id, workspace_id, "updated", actor, diff, now=now)))
    if "status" in diff and task.status == "done":
        await outbox.emit(
            session,
            workspace_id=workspace_id,
            event_type=outbox.TASK_COMPLETED,
            data=outbox.task_data(task),
            department=task.department,
            now=now,
        )
        if task.kind == KIND_REWORK:
            await _resubmit_handoff(session, rework=task, actor=actor, now=now)
    await session.flush()
    return task


def _merge_checklist(
    current: list[dict[str, Any]], incoming: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Replace the checklist; items keep their id, new items (no id) get one."""
    known = {item["id"]: item for item in current}
    merged = []
    for item in incoming:
        item_id = item.get("id")
        if item_id is not None and item_id not in known:
            raise InvalidInput(f"checklist item {item_id!r} does not exist on this task")
        base = known.get(item_id, {}) if item_id else {}
        text = item.get("text") if item.get("text") is not None else base.get("text")
        if not text:
            raise InvalidInput("a new checklist item needs a text")
        merged.append(
            {
                "id": item_id or uuid.uuid4().hex[:12],
                "text": text,
                "done": bool(item.get("done", base.get("done", False))),
            }
        )
    return merged


async def set_checklist_item(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    task_id: uuid.UUID,
    item_id: str,
    done: bool,
    actor: str | None,
) -> Task:
    task = await get_task(session, workspace_id=workspace_id, task_id=task_id)
    if not any(item["id"] == item_id for item in task.checklist):
        raise NotFound(f"checklist item {item_id!r} not found on task {task_id}")
    checklist = [
        {**item, "done": done} if item["id"] == item_id else item for item in task.checklist
    ]
    return await update_task(
        session,
        workspace_id=workspace_id,
        task_id=task_id,
        changes={"checklist": checklist},
        actor=actor,
    )


async def accept_handoff(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    task_id: uuid.UUID,
    actor: str | None,
    assignee_id: str | None = None,
    assignee_name: str | None = None,
    comment: str | None = None,
) -> Task:
    task = await _pending_handoff(session, workspace_id, task_id)
    await schedules.cancel_handoff_sla(session, workspace_id=workspace_id, task_id=task.id)
    now = utcnow()
    diff: dict[str, list[Any]] = {"handoff_status": ["pending", "accepted"]}
    task.handoff_status = "accepted"
    if task.status == "open":
        diff["status"] = ["open", "in_progress"]
        task.status = "in_progress"
    if assignee_id is not None and assignee_id != task.assignee_id:
        diff["assignee_id"] = [task.assignee_id, assignee_id]
        task.assignee_id, task.assignee_name = assignee_id, assignee_name
    task.updated_at = now
    session.add(
        TaskActivity(**_activity(task.id, workspace_id, "accepted", actor, diff, comment, now))
    )
    await outbox.emit(
        session,
        workspace_id=workspace_id,
        event_type=outbox.HANDOFF_ACCEPTED,
        data=outbox.task_data(task),
        department=task.department,
        now=now,
    )
    await session.flush()
    return task


async def reject_handoff(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    task_id: uuid.UUID,
    reason: str,
    actor: str | None,
) -> tuple[Task, Task]:
    """Send a handoff back: it is closed as rejected and the previous quarterback gets a task."""
    if not reason or not reason.strip():
        raise InvalidInput(
            "rejecting a handoff needs a reason the previous quarterback can act on",
            errors=[{"field": "reason", "in": "body", "message": "required"}],
        )
    task = await _pending_handoff(session, workspace_id, task_id)
    await schedules.cancel_handoff_sla(session, workspace_id=workspace_id, task_id=task.id)
    if task.from_department is None:
        raise Conflict("this handoff has no previous quarterback to return it to")
    now = utcnow()
    task.handoff_status, task.handoff_reason = "rejected", reason
    previous_status, task.status = task.status, "cancelled"
    task.updated_at = now
    diff = {"handoff_status": ["pending", "rejected"], "status": [previous_status, "cancelled"]}
    session.add(
        TaskActivity(**_activity(task.id, workspace_id, "rejected", actor, diff, reason, now))
    )
    account = await _require_account(session, workspace_id, task.account_id)
    owner = await _owner(session, task.account_id, task.from_department)
    timezone, calendar = await _calendar(session, workspace_id)
    rework = Task(
        workspace_id=workspace_id,
        account_id=task.account_id,
        kind=KIND_REWORK,
        title=(
            f"Handoff returned: {account.name} — "
            f"{await department_name(session, workspace_id, task.department)} "
            f"needs more from {await department_name(session, workspace_id, task.from_department)}"
        ),
        department=task.from_department,
        priority="high",
        assignee_id=owner.user_id if owner else None,
        assignee_name=owner.user_name if owner else None,
        due_on=add_business_days(local_today(now, timezone), REWORK_DUE_BUSINESS_DAYS, calendar),
        checklist=checklist_items(("Address the reason the handoff was returned",)),
        from_department=task.from_department,
        to_department=task.to_department,
        from_stage=task.from_stage,
        to_stage=task.to_stage,
        context={**task.context, "rejection_reason": reason},
        handoff_reason=reason,
        transition_id=task.transition_id,
        parent_task_id=task.id,
        created_at=now,
        updated_at=now,
    )
    session.add(rework)
    session.add(
        TaskActivity(
            **_activity(rework.id, workspace_id, "created", actor, comment=reason, now=now)
        )
    )
    await outbox.emit(
        session,
        workspace_id=workspace_id,
        event_type=outbox.HANDOFF_REJECTED,
        data={**outbox.task_data(task), "reason": reason, "returned_task_id": rework.id},
        department=task.from_department,
        now=now,
    )
    await session.flush()
    return task, rework


async def _resubmit_handoff(
    session: AsyncSession, *, rework: Task, actor: str | None, now: datetime
) -> None:
    """A finished rework hands the customer over again, with the updated context."""
    account = await _require_account(session, rework.workspace_id, rework.account_id)
    context = {key: rework.context.get(key) for key in ("notes", "links", "risks")}
    to_department = rework.to_department or rework.department
    from_department = rework.from_department or rework.department
    owner = await _owner(session, rework.account_id, to_department)
    timezone, calendar = await _calendar(session, rework.workspace_id)
    stage = await session.scalar(
        select(Stage).where(
            col(Stage.workspace_id) == rework.workspace_id, col(Stage.key) == rework.to_stage
        )
    )
    await raise_handoff(
        session,
        workspace_id=rework.workspace_id,
        account_id=rework.account_id,
        account_name=account.name,
        from_department=from_department,
        to_department=to_department,
        from_name=await department_name(session, rework.workspace_id, from_department),
        to_name=await department_name(session, rework.workspace_id, to_department),
        from_stage=rework.from_stage,
        to_stage=rework.to_stage,
        transition_id=rework.transition_id,
        timezone=timezone,
        calendar=calendar,
        context=context,
        assignee_id=owner.user_id if owner else None,
        assignee_name=owner.user_name if owner else None,
        checklist=stage.handoff_checklist if stage else (),
        due_in_business_days=stage.handoff_due_days if stage else 2,
        accept_within_days=stage.accept_within_days if stage else 2,
        actor=actor,
        parent_task_id=rework.id,
        now=now,
    )


async def _owner(
    session: AsyncSession, account_id: uuid.UUID, department: str
) -> AccountOwner | None:
    return await session.scalar(
        select(AccountOwner).where(
            col(AccountOwner.account_id) == account_id, col(AccountOwner.department) == department
        )
    )


async def _calendar(session: AsyncSession, workspace_id: uuid.UUID) -> tuple[str, str | None]:
    """The workspace's time zone and holiday calendar, which due dates are counted in."""
    row = (
        await session.execute(
            select(col(Workspace.timezone), col(Workspace.holiday_calendar)).where(
                col(Workspace.id) == workspace_id
            )
        )
    ).first()
    return (row.timezone, row.holiday_calendar) if row else ("UTC", None)


async def _pending_handoff(
    session: AsyncSession, workspace_id: uuid.UUID, task_id: uuid.UUID
) -> Task:
    task = await get_task(session, workspace_id=workspace_id, task_id=task_id, for_update=True)
    if task.kind != KIND_HANDOFF:
        raise Conflict(f"task {task_id} is a {task.kind}, not a handoff")
    if task.handoff_status != "pending":
        raise Conflict(
            f"this handoff was already {task.handoff_status}", handoff_status=task.handoff_status
        )
    return task
