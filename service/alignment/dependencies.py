"""Dependencies between departments' work: a goal or deliverable of one plan needs another
department's goal or deliverable. A dependency never points at its own item or department,
and never closes a loop (a loop can never be delivered)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.alignment.models import (
    OperationalDeliverable,
    OperationalDependency,
    OperationalGoal,
    OperationalPlan,
)
from service.alignment.service import invalid, item_of_plan, plan_row, plan_view
from service.alignment.views import PlanView
from service.db.types import utcnow
from service.errors import Conflict, InvalidInput, NotFound
from service.workspaces.models import Workspace


class SelfDependency(InvalidInput):
    """A goal or deliverable cannot need itself."""

    code, title = "self_dependency", "Self dependency"


class SameDepartmentDependency(InvalidInput):
    """Dependencies link departments; a department orders its own work in its plan."""

    code, title = "same_department_dependency", "Dependency within one department"


class DependencyCycle(InvalidInput):
    """The new dependency would close a loop that can never be scheduled."""

    code, title = "dependency_cycle", "Dependency cycle"


async def _needed_item(
    session: AsyncSession, workspace_id: uuid.UUID, model: Any, item_id: uuid.UUID, field: str
) -> tuple[Any, OperationalPlan]:
    row = (
        await session.execute(
            select(model, OperationalPlan)
            .join(OperationalPlan, col(OperationalPlan.id) == col(model.plan_id))
            .where(col(model.workspace_id) == workspace_id, col(model.id) == item_id)
        )
    ).one_or_none()
    if row is None:
        kind = "goal" if model is OperationalGoal else "deliverable"
        raise NotFound(f"{field}: {kind} {item_id} not found in this workspace")
    return row[0], row[1]


def reaches(
    edges: Mapping[uuid.UUID, Iterable[uuid.UUID]], start: uuid.UUID, target: uuid.UUID
) -> bool:
    """Whether following `edges` (item -> the items it needs) from `start` arrives at `target`."""
    seen, frontier = {start}, [start]
    while frontier:
        for needed in edges.get(frontier.pop(), ()):
            if needed == target:
                return True
            if needed not in seen:
                seen.add(needed)
                frontier.append(needed)
    return False


async def _closes_a_loop(
    session: AsyncSession, workspace_id: uuid.UUID, needed: uuid.UUID, dependent: uuid.UUID
) -> bool:
    """Whether `needed` already needs `dependent`, directly or through others: the workspace's
    dependencies are read as edges in one query (a few hundred rows a quarter at most)."""
    from_node = func.coalesce(
        col(OperationalDependency.from_goal_id), col(OperationalDependency.from_deliverable_id)
    )
    needs_node = func.coalesce(
        col(OperationalDependency.needs_goal_id), col(OperationalDependency.needs_deliverable_id)
    )
    edges: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    rows = await session.execute(
        select(from_node, needs_node).where(col(OperationalDependency.workspace_id) == workspace_id)
    )
    for item, item_needs in rows:
        edges[uuid.UUID(str(item))].append(uuid.UUID(str(item_needs)))
    return reaches(edges, needed, dependent)


async def add_dependency(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    plan_id: uuid.UUID,
    from_goal_id: uuid.UUID | None = None,
    from_deliverable_id: uuid.UUID | None = None,
    needs_goal_id: uuid.UUID | None = None,
    needs_deliverable_id: uuid.UUID | None = None,
    note: str | None = None,
) -> PlanView:
    """Record that an item of this plan needs another department's goal or deliverable."""
    plan = await plan_row(session, workspace_id, plan_id, for_update=True)
    if from_goal_id is not None:
        dependent = await item_of_plan(session, OperationalGoal, plan, from_goal_id)
    elif from_deliverable_id is not None:
        dependent = await item_of_plan(session, OperationalDeliverable, plan, from_deliverable_id)
    else:
        raise invalid("from_goal_id", "give exactly one of from_goal_id and from_deliverable_id")
    if needs_goal_id is not None:
        needed, needed_plan = await _needed_item(
            session, workspace_id, OperationalGoal, needs_goal_id, "needs_goal_id"
        )
    elif needs_deliverable_id is not None:
        needed, needed_plan = await _needed_item(
            session,
            workspace_id,
            OperationalDeliverable,
            needs_deliverable_id,
            "needs_deliverable_id",
        )
    else:
        raise invalid("needs_goal_id", "give exactly one of needs_goal_id and needs_deliverable_id")
    if needed.id == dependent.id:
        raise SelfDependency(
            f"{dependent.name!r} cannot depend on itself; name another department's goal or "
            "deliverable it needs"
        )
    if needed_plan.department == plan.department:
        raise SameDepartmentDependency(
            f"{needed.name!r} is {plan.department}'s own work; dependencies link departments "
            "(order your own work inside the plan)"
        )
    duplicate = await session.scalar(
        select(col(OperationalDependency.id)).where(
            col(OperationalDependency.workspace_id) == workspace_id,
            or_(
                col(OperationalDependency.from_goal_id) == dependent.id,
                col(OperationalDependency.from_deliverable_id) == dependent.id,
            ),
            or_(
                col(OperationalDependency.needs_goal_id) == needed.id,
                col(OperationalDependency.needs_deliverable_id) == needed.id,
            ),
        )
    )
    if duplicate is not None:
        raise Conflict(
            f"{dependent.name!r} already depends on {needed.name!r} (dependency {duplicate})",
            dependency_id=str(duplicate),
        )
    # Two plans adding the two halves of a loop at once would each see no loop: dependency
    # changes of a workspace take turns on its row (NO KEY UPDATE: inserts elsewhere that
    # only reference the workspace are not blocked).
    await session.execute(
        select(col(Workspace.id))
        .where(col(Workspace.id) == workspace_id)
        .with_for_update(key_share=True)
    )
    if await _closes_a_loop(session, workspace_id, needed.id, dependent.id):
        raise DependencyCycle(
            f"{needed.name!r} ({needed_plan.department}) already depends on {dependent.name!r}, "
            "directly or through other work; a loop can never be delivered, so remove one of "
            "the dependencies first"
        )
    session.add(
        OperationalDependency(
            workspace_id=workspace_id,
            plan_id=plan.id,
            from_goal_id=from_goal_id,
            from_deliverable_id=from_deliverable_id,
            needs_goal_id=needs_goal_id,
            needs_deliverable_id=needs_deliverable_id,
            note=note,
        )
    )
    plan.updated_at = utcnow()
    return await plan_view(session, plan)


async def remove_dependency(
    session: AsyncSession, *, workspace_id: uuid.UUID, plan_id: uuid.UUID, dependency_id: uuid.UUID
) -> PlanView:
    plan = await plan_row(session, workspace_id, plan_id, for_update=True)
    dependency = await session.scalar(
        select(OperationalDependency).where(
            col(OperationalDependency.workspace_id) == workspace_id,
            col(OperationalDependency.plan_id) == plan.id,
            col(OperationalDependency.id) == dependency_id,
        )
    )
    if dependency is None:
        raise NotFound(f"dependency {dependency_id} is not on operational plan {plan_id}")
    await session.delete(dependency)
    plan.updated_at = utcnow()
    return await plan_view(session, plan)
