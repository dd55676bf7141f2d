"""Department operational plans: creating, listing and editing them, their goals and their
deliverables. Every change returns the plan as it now stands (service/alignment/views.py).

Dependencies between departments' work are service/alignment/dependencies.py, weekly
progress service/alignment/updates.py, the alignment check service/alignment/checks.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.alignment import sources
from service.alignment.models import (
    OperationalDeliverable,
    OperationalGoal,
    OperationalPlan,
)
from service.alignment.views import PlanView, calendar, plan_views
from service.db.types import QUANTITY_SCALE, utcnow
from service.errors import Conflict, InvalidInput, NotFound
from service.kit.fiscal import parse_quarter
from service.kit.pagination import decode_cursor, trim_page
from service.lifecycle import service as lifecycle_service

MAX_QUANTITY = Decimal(10) ** 14


def invalid(field: str, message: str, detail: str | None = None) -> InvalidInput:
    return InvalidInput(
        detail or f"{field}: {message}", errors=[{"field": field, "in": "body", "message": message}]
    )


def quantity(value: Decimal, field: str) -> Decimal:
    value = Decimal(value)
    if not value.is_finite() or abs(value) >= MAX_QUANTITY:
        raise invalid(field, f"must be a number below {MAX_QUANTITY:,} in size")
    if value != round(value, QUANTITY_SCALE):
        raise invalid(field, f"at most {QUANTITY_SCALE} decimal places")
    return value


async def _department(session: AsyncSession, workspace_id: uuid.UUID, key: str) -> str:
    known = await lifecycle_service.department_keys(session, workspace_id=workspace_id)
    if key not in known:
        raise invalid(
            "department", f"unknown department {key!r}; one of {', '.join(sorted(known))}"
        )
    return key


def _checked_goal(fields: dict[str, Any], stages: list[str], field: str) -> dict[str, Any]:
    """Goal fields with stage, source and target checked against the workspace's stages."""
    if "stage" in fields and fields["stage"] not in stages:
        message = f"unknown stage {fields['stage']!r}; one of {', '.join(stages)}"
        raise invalid(f"{field}.stage", message)
    if fields.get("source") is not None:
        fields["source"] = sources.check_source(fields["source"], stages, f"{field}.source")
    if "target" in fields:
        fields["target"] = quantity(fields["target"], f"{field}.target")
        if fields["target"] <= 0:
            raise invalid(f"{field}.target", "must be above zero: the value the goal reaches")
    return fields


def _due_quarter(plan: OperationalPlan, due_quarter: str | None, field: str) -> str:
    if due_quarter is None:
        return plan.quarter
    due = str(parse_quarter(due_quarter, field))
    if due < plan.quarter:
        raise invalid(field, f"must be {plan.quarter} (the plan's quarter) or later, not {due}")
    return due


async def plan_row(
    session: AsyncSession, workspace_id: uuid.UUID, plan_id: uuid.UUID, for_update: bool = False
) -> OperationalPlan:
    statement = select(OperationalPlan).where(
        col(OperationalPlan.workspace_id) == workspace_id, col(OperationalPlan.id) == plan_id
    )
    if for_update:
        statement = statement.with_for_update()
    plan = await session.scalar(statement)
    if plan is None:
        raise NotFound(f"operational plan {plan_id} not found")
    return plan


async def plan_view(
    session: AsyncSession, plan: OperationalPlan, as_of: date | None = None
) -> PlanView:
    await session.flush()
    cal = await calendar(session, plan.workspace_id)
    return (await plan_views(session, cal, [plan], as_of or cal.today))[0]


async def create_plan(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    department: str,
    quarter: str,
    summary: str | None = None,
    goals: Sequence[dict[str, Any]] = (),
    deliverables: Sequence[dict[str, Any]] = (),
) -> PlanView:
    """A department's plan for a fiscal quarter; one per department and quarter."""
    label = str(parse_quarter(quarter))
    await _department(session, workspace_id, department)
    existing = await session.scalar(
        select(col(OperationalPlan.id)).where(
            col(OperationalPlan.workspace_id) == workspace_id,
            col(OperationalPlan.department) == department,
            col(OperationalPlan.quarter) == label,
        )
    )
    if existing is not None:
        raise Conflict(
            f"{department} already has a plan for {label} ({existing}); edit it with "
            f"PATCH /v1/plans/operational/{existing} and its goals and deliverables",
            plan_id=str(existing),
        )
    now = utcnow()
    plan = OperationalPlan(
        workspace_id=workspace_id,
        department=department,
        quarter=label,
        summary=summary,
        created_at=now,
        updated_at=now,
    )
    session.add(plan)
    await session.flush()
    stages = await lifecycle_service.stage_keys(session, workspace_id=workspace_id)
    for index, fields in enumerate(goals):
        _add_goal(session, plan, dict(fields), stages, f"goals.{index}")
    for index, fields in enumerate(deliverables):
        _add_deliverable(session, plan, dict(fields), f"deliverables.{index}")
    return await plan_view(session, plan)


async def get_plan(
    session: AsyncSession, *, workspace_id: uuid.UUID, plan_id: uuid.UUID, as_of: date | None = None
) -> PlanView:
    return await plan_view(session, await plan_row(session, workspace_id, plan_id), as_of)


async def list_plans(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    quarter: str | None = None,
    department: str | None = None,
    limit: int,
    cursor: str | None = None,
    as_of: date | None = None,
) -> tuple[list[PlanView], str | None]:
    """Plans in the order they were created, optionally of one quarter and department."""
    statement = select(OperationalPlan).where(col(OperationalPlan.workspace_id) == workspace_id)
    if quarter is not None:
        label = str(parse_quarter(quarter, "quarter", "query"))
        statement = statement.where(col(OperationalPlan.quarter) == label)
    if department is not None:
        statement = statement.where(col(OperationalPlan.department) == department)
    after = decode_cursor(cursor)
    if after is not None:
        statement = statement.where(col(OperationalPlan.id) > after)
    rows = list(await session.scalars(statement.order_by(col(OperationalPlan.id)).limit(limit + 1)))
    plans, next_cursor = trim_page(rows, limit, lambda plan: plan.id)
    cal = await calendar(session, workspace_id)
    return await plan_views(session, cal, plans, as_of or cal.today), next_cursor


async def update_plan(
    session: AsyncSession, *, workspace_id: uuid.UUID, plan_id: uuid.UUID, changes: dict[str, Any]
) -> PlanView:
    """Change the plan's own fields (its summary); department and quarter are its identity."""
    plan = await plan_row(session, workspace_id, plan_id, for_update=True)
    if "summary" in changes:
        plan.summary = changes["summary"]
        plan.updated_at = utcnow()
    return await plan_view(session, plan)


def _add_goal(
    session: AsyncSession,
    plan: OperationalPlan,
    fields: dict[str, Any],
    stages: list[str],
    field: str,
) -> OperationalGoal:
    fields = _checked_goal(fields, stages, field)
    now = utcnow()
    goal = OperationalGoal(
        workspace_id=plan.workspace_id, plan_id=plan.id, created_at=now, updated_at=now, **fields
    )
    session.add(goal)
    return goal


def _add_deliverable(
    session: AsyncSession, plan: OperationalPlan, fields: dict[str, Any], field: str
) -> OperationalDeliverable:
    fields["due_quarter"] = _due_quarter(plan, fields.get("due_quarter"), f"{field}.due_quarter")
    now = utcnow()
    deliverable = OperationalDeliverable(
        workspace_id=plan.workspace_id, plan_id=plan.id, created_at=now, updated_at=now, **fields
    )
    session.add(deliverable)
    return deliverable


async def add_goal(
    session: AsyncSession, *, workspace_id: uuid.UUID, plan_id: uuid.UUID, fields: dict[str, Any]
) -> PlanView:
    plan = await plan_row(session, workspace_id, plan_id, for_update=True)
    stages = await lifecycle_service.stage_keys(session, workspace_id=workspace_id)
    _add_goal(session, plan, dict(fields), stages, "body")
    plan.updated_at = utcnow()
    return await plan_view(session, plan)


async def add_deliverable(
    session: AsyncSession, *, workspace_id: uuid.UUID, plan_id: uuid.UUID, fields: dict[str, Any]
) -> PlanView:
    plan = await plan_row(session, workspace_id, plan_id, for_update=True)
    _add_deliverable(session, plan, dict(fields), "body")
    plan.updated_at = utcnow()
    return await plan_view(session, plan)


async def item_of_plan(
    session: AsyncSession, model: Any, plan: OperationalPlan, item_id: uuid.UUID
) -> Any:
    item = await session.scalar(
        select(model).where(
            col(model.workspace_id) == plan.workspace_id,
            col(model.plan_id) == plan.id,
            col(model.id) == item_id,
        )
    )
    if item is None:
        kind = "goal" if model is OperationalGoal else "deliverable"
        raise NotFound(f"{kind} {item_id} is not on operational plan {plan.id}")
    return item


async def update_goal(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    plan_id: uuid.UUID,
    goal_id: uuid.UUID,
    changes: dict[str, Any],
) -> PlanView:
    """Change a goal's fields; `status: cancelled` cancels it, `active` brings it back."""
    plan = await plan_row(session, workspace_id, plan_id, for_update=True)
    goal = await item_of_plan(session, OperationalGoal, plan, goal_id)
    for name in ("name", "stage", "metric", "target", "owner", "status"):
        if name in changes and changes[name] is None:
            raise invalid(name, "may not be null; leave it out to keep it")
    stages = await lifecycle_service.stage_keys(session, workspace_id=workspace_id)
    changes = _checked_goal(dict(changes), stages, "body")
    _apply(goal, changes)
    plan.updated_at = goal.updated_at
    return await plan_view(session, plan)


async def update_deliverable(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    plan_id: uuid.UUID,
    deliverable_id: uuid.UUID,
    changes: dict[str, Any],
) -> PlanView:
    """Change a deliverable: rename, move its due quarter, set its status (cancelled too)."""
    plan = await plan_row(session, workspace_id, plan_id, for_update=True)
    deliverable = await item_of_plan(session, OperationalDeliverable, plan, deliverable_id)
    for name in ("name", "due_quarter", "status"):
        if name in changes and changes[name] is None:
            raise invalid(name, "may not be null; leave it out to keep it")
    changes = dict(changes)
    if "due_quarter" in changes:
        changes["due_quarter"] = _due_quarter(plan, changes["due_quarter"], "due_quarter")
    _apply(deliverable, changes)
    plan.updated_at = deliverable.updated_at
    return await plan_view(session, plan)


def _apply(row: Any, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
