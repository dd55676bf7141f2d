"""GraphQL types of tasks and handoffs; the `tasks`, `task` and `handoffQueue` queries and
the mutations a work queue needs (accept, reject, assign, start, complete, cancel, tick)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from pydantic import ValidationError
from strawberry.scalars import JSON

from service.graphql.context import CanRead, CanWrite, context_of
from service.graphql.errors import invalid_input
from service.graphql.pagination import Connection, connection, id_cursor, nested_limit, page_size
from service.graphql.rows import from_row
from service.lifecycle.graphql import Department, department_of
from service.tasks import service as tasks_service
from service.tasks.schemas import HandoffAccept, HandoffReject, TaskUpdate

if TYPE_CHECKING:
    from service.accounts.graphql import Account, Quarterback


@strawberry.enum(description="Where a task stands. DONE and CANCELLED are final.")
class TaskStatus(enum.Enum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


@strawberry.enum
class TaskPriority(enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


@strawberry.enum(description="How the receiving quarterback took a handoff.")
class HandoffStatus(enum.Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@strawberry.type(description="One item of a task's checklist.")
class ChecklistItem:
    id: str = strawberry.field(description="Pass it to `tickChecklistItem`.")
    text: str
    done: bool


@strawberry.type(description="One change of a task: who did what, fields before and after.")
class TaskActivity:
    id: uuid.UUID
    action: str = strawberry.field(description="created, updated, accepted or rejected.")
    actor: str | None
    changes: JSON = strawberry.field(description="Changed fields: {field: [before, after]}.")
    comment: str | None
    occurred_at: datetime


@strawberry.type(
    description="Work for a department on an account. A handoff (kind `handoff`) is raised "
    "when an account's quarterback changes; the receiving department accepts or rejects it."
)
class Task:
    id: uuid.UUID
    account_id: uuid.UUID
    kind: str = strawberry.field(description="task, handoff or handoff_rework.")
    title: str
    department_key: str = strawberry.field(description="The department that does the work.")
    status: TaskStatus
    priority: TaskPriority
    assignee_id: str | None
    assignee_name: str | None
    due_on: date | None
    checklist: list[ChecklistItem]
    from_department: str | None = strawberry.field(
        description="Handoffs: the department handing over."
    )
    to_department: str | None = strawberry.field(description="Handoffs: the one receiving.")
    from_stage: str | None
    to_stage: str | None
    context: JSON = strawberry.field(
        description="Notes, links and risks the previous quarterback left with a handoff."
    )
    handoff_status: HandoffStatus | None
    handoff_reason: str | None = strawberry.field(description="Why a handoff was rejected.")
    transition_id: uuid.UUID | None
    parent_task_id: uuid.UUID | None = strawberry.field(
        description="The handoff a rework answers, or the rework a handoff resubmits."
    )
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    async def department(self, info: strawberry.Info) -> Department:
        row = await context_of(info).loaders.department.load(self.department_key)
        return department_of(row, self.department_key)

    @strawberry.field(description="The account the task is about.")
    async def account(
        self, info: strawberry.Info
    ) -> Annotated[Account, strawberry.lazy("service.accounts.graphql")]:
        from service.accounts.graphql import account_of

        row = await context_of(info).loaders.account.load(self.account_id)
        assert row is not None  # tasks are deleted with their account
        return account_of(row)

    @strawberry.field(
        description="Handoffs: the quarterback handing the customer over (department and the "
        "account's owner there), to ask when something is missing."
    )
    async def previous_quarterback(
        self, info: strawberry.Info
    ) -> Annotated[Quarterback, strawberry.lazy("service.accounts.graphql")] | None:
        from service.accounts.graphql import quarterback_of

        if self.from_department is None:
            return None
        return await quarterback_of(info, self.account_id, self.from_department)

    @strawberry.field(description="The changes made to the task, newest first (1..100).")
    async def activity(self, info: strawberry.Info, last: int = 20) -> list[TaskActivity]:
        rows = await context_of(info).loaders.task_activity.load(
            (self.id, nested_limit(last, "last"))
        )
        return [from_row(TaskActivity, row) for row in rows]


def task_of(row: Any) -> Task:
    department = row["department"] if isinstance(row, dict) else row.department
    return from_row(
        Task,
        row,
        department_key=department,
        checklist=[ChecklistItem(**item) for item in _get(row, "checklist")],
    )


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name)


@strawberry.input(description="Which tasks to list; all given conditions apply.")
class TaskFilter:
    department: str | None = None
    status: list[TaskStatus] | None = None
    account_id: uuid.UUID | None = None
    assignee_id: str | None = None
    due_before: date | None = None
    kind: str | None = strawberry.field(default=None, description="task, handoff, handoff_rework.")


@strawberry.input(description="A checklist item: keep `id` for existing items, omit it to add.")
class ChecklistItemInput:
    id: str | None = None
    text: str | None = None
    done: bool | None = None


@strawberry.input(description="Changes to a task; fields left out stay as they are.")
class UpdateTaskInput:
    status: TaskStatus | None = strawberry.UNSET
    priority: TaskPriority | None = strawberry.UNSET
    assignee_id: str | None = strawberry.UNSET
    assignee_name: str | None = strawberry.UNSET
    due_on: date | None = strawberry.UNSET
    checklist: list[ChecklistItemInput] | None = strawberry.field(
        default=strawberry.UNSET, description="The whole checklist, in order."
    )
    notes: str | None = strawberry.field(default=strawberry.UNSET, description="Handoff notes.")
    links: list[str] | None = strawberry.UNSET
    risks: list[str] | None = strawberry.UNSET


@strawberry.type(description="A rejected handoff and the task it raised for the sender.")
class HandoffRejected:
    handoff: Task
    returned_task: Task = strawberry.field(
        description="The rework task of the previous quarterback."
    )


def _update_changes(input: UpdateTaskInput) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for name in ("status", "priority", "assignee_id", "assignee_name", "due_on"):
        value = getattr(input, name)
        if value is not strawberry.UNSET:
            given[name] = value.value if isinstance(value, enum.Enum) else value
    if input.checklist is not strawberry.UNSET:
        given["checklist"] = (
            None
            if input.checklist is None
            else [
                {k: v for k, v in vars(item).items() if v is not None} for item in input.checklist
            ]
        )
    context = {
        name: getattr(input, name)
        for name in ("notes", "links", "risks")
        if getattr(input, name) is not strawberry.UNSET
    }
    if context:
        given["context"] = context
    try:
        body = TaskUpdate.model_validate(given)
    except ValidationError as exc:
        raise invalid_input(exc) from None
    # As the REST route: the partial update, with the handoff context's given fields.
    changes = body.model_dump(exclude_unset=True)
    if body.context is not None:
        changes["context"] = body.context.model_dump(exclude_unset=True)
    return changes


async def _update(info: strawberry.Info, task_id: uuid.UUID, changes: dict[str, Any]) -> Task:
    async with context_of(info).writing() as (session, principal):
        task = await tasks_service.update_task(
            session,
            workspace_id=principal.workspace_id,
            task_id=task_id,
            changes=changes,
            actor=principal.actor,
        )
    return task_of(task)


@strawberry.type
class Query:
    @strawberry.field(
        description="Tasks, oldest first (first ≤ 100).", permission_classes=[CanRead]
    )
    async def tasks(
        self,
        info: strawberry.Info,
        filter: TaskFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Task]:
        context = context_of(info)
        limit = page_size(first)
        filter = filter or TaskFilter()
        async with context.reading() as session:
            rows, next_cursor = await tasks_service.list_tasks(
                session,
                workspace_id=context.workspace_id,
                filters=tasks_service.TaskFilter(
                    department=filter.department,
                    status=[item.value for item in filter.status] if filter.status else None,
                    account_id=filter.account_id,
                    assignee_id=filter.assignee_id,
                    due_before=filter.due_before,
                    kind=filter.kind,
                ),
                limit=limit,
                cursor=after,
            )
        return connection([task_of(row) for row in rows], next_cursor, lambda t: id_cursor(t.id))

    @strawberry.field(
        description="A department's handoffs waiting to be accepted, oldest first: each with "
        "its account (`account`) and who hands it over (`previousQuarterback`).",
        permission_classes=[CanRead],
    )
    async def handoff_queue(
        self,
        info: strawberry.Info,
        department: str,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Task]:
        context = context_of(info)
        limit = page_size(first)
        async with context.reading() as session:
            rows, next_cursor = await tasks_service.list_tasks(
                session,
                workspace_id=context.workspace_id,
                filters=tasks_service.TaskFilter(
                    department=department, status=["open"], kind=tasks_service.KIND_HANDOFF
                ),
                limit=limit,
                cursor=after,
            )
        return connection([task_of(row) for row in rows], next_cursor, lambda t: id_cursor(t.id))

    @strawberry.field(
        description="One task; null when this workspace has none with this id.",
        permission_classes=[CanRead],
    )
    async def task(self, info: strawberry.Info, id: uuid.UUID) -> Task | None:
        row = await context_of(info).loaders.task.load(id)
        return task_of(row) if row else None


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Take a handoff over: it moves to IN_PROGRESS, optionally reassigned.",
        permission_classes=[CanWrite],
    )
    async def accept_handoff(
        self,
        info: strawberry.Info,
        task_id: uuid.UUID,
        assignee_id: str | None = None,
        assignee_name: str | None = None,
        comment: str | None = None,
    ) -> Task:
        try:
            body = HandoffAccept(
                assignee_id=assignee_id, assignee_name=assignee_name, comment=comment
            )
        except ValidationError as exc:
            raise invalid_input(exc) from None
        async with context_of(info).writing() as (session, principal):
            task = await tasks_service.accept_handoff(
                session,
                workspace_id=principal.workspace_id,
                task_id=task_id,
                actor=principal.actor,
                assignee_id=body.assignee_id,
                assignee_name=body.assignee_name,
                comment=body.comment,
            )
        return task_of(task)

    @strawberry.mutation(
        description="Return a handoff with a reason; the previous quarterback gets a task.",
        permission_classes=[CanWrite],
    )
    async def reject_handoff(
        self, info: strawberry.Info, task_id: uuid.UUID, reason: str
    ) -> HandoffRejected:
        try:
            body = HandoffReject(reason=reason)
        except ValidationError as exc:
            raise invalid_input(exc) from None
        async with context_of(info).writing() as (session, principal):
            handoff, returned = await tasks_service.reject_handoff(
                session,
                workspace_id=principal.workspace_id,
                task_id=task_id,
                reason=body.reason,
                actor=principal.actor,
            )
        return HandoffRejected(handoff=task_of(handoff), returned_task=task_of(returned))

    @strawberry.mutation(
        description="Change a task (status, priority, assignee, due date, checklist, handoff "
        "notes). A status change the task's state does not allow fails with code "
        "`task_status_not_allowed` and `allowed_statuses`.",
        permission_classes=[CanWrite],
    )
    async def update_task(
        self, info: strawberry.Info, id: uuid.UUID, input: UpdateTaskInput
    ) -> Task:
        return await _update(info, id, _update_changes(input))

    @strawberry.mutation(description="Assign a task to a person.", permission_classes=[CanWrite])
    async def assign_task(
        self, info: strawberry.Info, id: uuid.UUID, assignee_id: str, assignee_name: str | None
    ) -> Task:
        return await _update(
            info,
            id,
            _update_changes(UpdateTaskInput(assignee_id=assignee_id, assignee_name=assignee_name)),
        )

    @strawberry.mutation(description="Start working: IN_PROGRESS.", permission_classes=[CanWrite])
    async def start_task(self, info: strawberry.Info, id: uuid.UUID) -> Task:
        return await _update(info, id, {"status": "in_progress"})

    @strawberry.mutation(description="Finish a task: DONE.", permission_classes=[CanWrite])
    async def complete_task(self, info: strawberry.Info, id: uuid.UUID) -> Task:
        return await _update(info, id, {"status": "done"})

    @strawberry.mutation(description="Drop a task: CANCELLED.", permission_classes=[CanWrite])
    async def cancel_task(self, info: strawberry.Info, id: uuid.UUID) -> Task:
        return await _update(info, id, {"status": "cancelled"})

    @strawberry.mutation(
        description="Tick or untick one checklist item.", permission_classes=[CanWrite]
    )
    async def tick_checklist_item(
        self, info: strawberry.Info, task_id: uuid.UUID, item_id: str, done: bool = True
    ) -> Task:
        async with context_of(info).writing() as (session, principal):
            task = await tasks_service.set_checklist_item(
                session,
                workspace_id=principal.workspace_id,
                task_id=task_id,
                item_id=item_id,
                done=done,
                actor=principal.actor,
            )
        return task_of(task)
