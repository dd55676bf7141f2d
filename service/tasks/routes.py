"""`/v1/tasks`: the work queues of each department, handoffs included."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import Query, status

from service.kit.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from service.kit.routing import PrefixedRouter
from service.lifecycle import service as lifecycle_service
from service.tasks import service as tasks_service
from service.tasks.schemas import (
    ChecklistTick,
    HandoffAccept,
    HandoffReject,
    HandoffRejected,
    Status,
    TaskActivityList,
    TaskCreate,
    TaskPage,
    TaskRead,
    TaskUpdate,
)
from service.workspaces.auth import Reader, SessionDep, Writer

router = PrefixedRouter(prefix="/v1/tasks", tags=["tasks"])


@router.get("", response_model=TaskPage)
async def list_tasks(
    session: SessionDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
    department: str | None = None,
    status: Annotated[list[Status] | None, Query(description="Repeat for several.")] = None,
    account_id: uuid.UUID | None = None,
    assignee: Annotated[str | None, Query(description="Assignee user id.")] = None,
    due_before: date | None = None,
    kind: str | None = None,
) -> object:
    tasks, next_cursor = await tasks_service.list_tasks(
        session,
        workspace_id=principal.workspace_id,
        filters=tasks_service.TaskFilter(
            department=department,
            status=list(status) if status else None,
            account_id=account_id,
            assignee_id=assignee,
            due_before=due_before,
            kind=kind,
        ),
        limit=limit,
        cursor=cursor,
    )
    return {"items": tasks, "next_cursor": next_cursor}


@router.post("", response_model=TaskRead, status_code=status.HTTP_201_CREATED)
async def create_task(session: SessionDep, principal: Writer, body: TaskCreate) -> object:
    return await tasks_service.create_task(
        session,
        workspace_id=principal.workspace_id,
        account_id=body.account_id,
        title=body.title,
        department=body.department,
        due_on=body.due_on,
        priority=body.priority,
        checklist=list(body.checklist),
        assignee_id=body.assignee_id,
        assignee_name=body.assignee_name,
        actor=principal.actor,
        known_departments=await lifecycle_service.department_keys(
            session, workspace_id=principal.workspace_id
        ),
    )


@router.get("/{task_id}", response_model=TaskRead)
async def read_task(session: SessionDep, principal: Reader, task_id: uuid.UUID) -> object:
    return await tasks_service.get_task(
        session, workspace_id=principal.workspace_id, task_id=task_id
    )


@router.patch(
    "/{task_id}",
    response_model=TaskRead,
    responses={409: {"description": "The status change is not allowed (allowed_statuses)."}},
)
async def update_task(
    session: SessionDep, principal: Writer, task_id: uuid.UUID, body: TaskUpdate
) -> object:
    changes = body.model_dump(exclude_unset=True)
    if body.context is not None:
        changes["context"] = body.context.model_dump(exclude_unset=True)
    return await tasks_service.update_task(
        session,
        workspace_id=principal.workspace_id,
        task_id=task_id,
        changes=changes,
        actor=principal.actor,
    )


@router.put("/{task_id}/checklist/{item_id}", response_model=TaskRead)
async def tick_checklist_item(
    session: SessionDep, principal: Writer, task_id: uuid.UUID, item_id: str, body: ChecklistTick
) -> object:
    return await tasks_service.set_checklist_item(
        session,
        workspace_id=principal.workspace_id,
        task_id=task_id,
        item_id=item_id,
        done=body.done,
        actor=principal.actor,
    )


@router.post("/{task_id}/accept", response_model=TaskRead)
async def accept_handoff(
    session: SessionDep, principal: Writer, task_id: uuid.UUID, body: HandoffAccept | None = None
) -> object:
    """The receiving quarterback takes the customer over; the task moves to in_progress."""
    body = body or HandoffAccept()
    return await tasks_service.accept_handoff(
        session,
        workspace_id=principal.workspace_id,
        task_id=task_id,
        actor=principal.actor,
        assignee_id=body.assignee_id,
        assignee_name=body.assignee_name,
        comment=body.comment,
    )


@router.post("/{task_id}/reject", response_model=HandoffRejected)
async def reject_handoff(
    session: SessionDep, principal: Writer, task_id: uuid.UUID, body: HandoffReject
) -> object:
    """Return the handoff with a reason; the previous quarterback gets a task to act on it."""
    handoff, returned = await tasks_service.reject_handoff(
        session,
        workspace_id=principal.workspace_id,
        task_id=task_id,
        reason=body.reason,
        actor=principal.actor,
    )
    return {"handoff": handoff, "returned_task": returned}


@router.get("/{task_id}/activity", response_model=TaskActivityList)
async def list_task_activity(session: SessionDep, principal: Reader, task_id: uuid.UUID) -> object:
    items = await tasks_service.list_activity(
        session, workspace_id=principal.workspace_id, task_id=task_id
    )
    return {"items": items}
