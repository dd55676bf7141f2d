"""`/v1/plans/operational` (department quarterly plans) and `/v1/alignment` (what is misaligned
across them). Every change answers with the whole plan as it now stands, which is what a plan
editor redraws; goals, deliverables and dependencies are sub-resources with their own ids,
because dependencies and weekly updates point at them."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import Query, status

from service.alignment import checks, dependencies, updates
from service.alignment import service as alignment_service
from service.alignment.schemas import (
    AlignmentRead,
    OperationalDeliverableChanges,
    OperationalDeliverableCreate,
    OperationalDependencyCreate,
    OperationalGoalChanges,
    OperationalGoalCreate,
    OperationalPlanChanges,
    OperationalPlanCreate,
    OperationalPlanPage,
    OperationalPlanRead,
    WeeklyUpdateCreate,
)
from service.kit.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from service.kit.routing import PrefixedRouter
from service.workspaces.auth import Reader, SessionDep, Writer

router = PrefixedRouter(prefix="/v1/plans/operational", tags=["operational plans"])
alignment_router = PrefixedRouter(prefix="/v1/alignment", tags=["operational plans"])

AsOf = Annotated[
    date | None,
    Query(description="Compute progress, pace and mid-quarter as of this day; default today."),
]
QuarterQuery = Annotated[str, Query(description="Fiscal quarter, `2027-Q1` or `FY2027-Q1`.")]


@router.post("", response_model=OperationalPlanRead, status_code=status.HTTP_201_CREATED)
async def create_plan(
    session: SessionDep, principal: Writer, body: OperationalPlanCreate
) -> object:
    """A department's plan for a fiscal quarter, optionally with its first goals and
    deliverables; 409 when the department already has one for that quarter."""
    view = await alignment_service.create_plan(
        session,
        workspace_id=principal.workspace_id,
        department=body.department,
        quarter=body.quarter,
        summary=body.summary,
        goals=[goal.model_dump() for goal in body.goals],
        deliverables=[item.model_dump() for item in body.deliverables],
    )
    return view.as_dict()


@router.get("", response_model=OperationalPlanPage)
async def list_plans(
    session: SessionDep,
    principal: Reader,
    quarter: Annotated[str | None, Query(description="`2027-Q1` or `FY2027-Q1`.")] = None,
    department: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
    as_of: AsOf = None,
) -> object:
    views, next_cursor = await alignment_service.list_plans(
        session,
        workspace_id=principal.workspace_id,
        quarter=quarter,
        department=department,
        limit=limit,
        cursor=cursor,
        as_of=as_of,
    )
    return {"items": [view.as_dict() for view in views], "next_cursor": next_cursor}


@router.get("/{plan_id}", response_model=OperationalPlanRead)
async def read_plan(
    session: SessionDep, principal: Reader, plan_id: uuid.UUID, as_of: AsOf = None
) -> object:
    """The plan with each goal's actual, progress against target, pace and trend."""
    view = await alignment_service.get_plan(
        session, workspace_id=principal.workspace_id, plan_id=plan_id, as_of=as_of
    )
    return view.as_dict()


@router.patch("/{plan_id}", response_model=OperationalPlanRead)
async def update_plan(
    session: SessionDep, principal: Writer, plan_id: uuid.UUID, body: OperationalPlanChanges
) -> object:
    """The plan's summary; department and quarter identify the plan and do not change."""
    view = await alignment_service.update_plan(
        session,
        workspace_id=principal.workspace_id,
        plan_id=plan_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return view.as_dict()


@router.post(
    "/{plan_id}/goals", response_model=OperationalPlanRead, status_code=status.HTTP_201_CREATED
)
async def add_goal(
    session: SessionDep, principal: Writer, plan_id: uuid.UUID, body: OperationalGoalCreate
) -> object:
    view = await alignment_service.add_goal(
        session, workspace_id=principal.workspace_id, plan_id=plan_id, fields=body.model_dump()
    )
    return view.as_dict()


@router.patch("/{plan_id}/goals/{goal_id}", response_model=OperationalPlanRead)
async def update_goal(
    session: SessionDep,
    principal: Writer,
    plan_id: uuid.UUID,
    goal_id: uuid.UUID,
    body: OperationalGoalChanges,
) -> object:
    """Edit a goal; `{"status": "cancelled"}` cancels it."""
    view = await alignment_service.update_goal(
        session,
        workspace_id=principal.workspace_id,
        plan_id=plan_id,
        goal_id=goal_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return view.as_dict()


@router.post(
    "/{plan_id}/deliverables",
    response_model=OperationalPlanRead,
    status_code=status.HTTP_201_CREATED,
)
async def add_deliverable(
    session: SessionDep, principal: Writer, plan_id: uuid.UUID, body: OperationalDeliverableCreate
) -> object:
    view = await alignment_service.add_deliverable(
        session, workspace_id=principal.workspace_id, plan_id=plan_id, fields=body.model_dump()
    )
    return view.as_dict()


@router.patch("/{plan_id}/deliverables/{deliverable_id}", response_model=OperationalPlanRead)
async def update_deliverable(
    session: SessionDep,
    principal: Writer,
    plan_id: uuid.UUID,
    deliverable_id: uuid.UUID,
    body: OperationalDeliverableChanges,
) -> object:
    """Edit a deliverable; move `due_quarter`, or `{"status": "cancelled"}` to cancel it."""
    view = await alignment_service.update_deliverable(
        session,
        workspace_id=principal.workspace_id,
        plan_id=plan_id,
        deliverable_id=deliverable_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return view.as_dict()


@router.post(
    "/{plan_id}/dependencies",
    response_model=OperationalPlanRead,
    status_code=status.HTTP_201_CREATED,
)
async def add_dependency(
    session: SessionDep, principal: Writer, plan_id: uuid.UUID, body: OperationalDependencyCreate
) -> object:
    """An item of this plan needs another department's goal or deliverable. 422 for an
    item needing itself, its own department's work, or a loop."""
    view = await dependencies.add_dependency(
        session, workspace_id=principal.workspace_id, plan_id=plan_id, **body.model_dump()
    )
    return view.as_dict()


@router.delete("/{plan_id}/dependencies/{dependency_id}", response_model=OperationalPlanRead)
async def remove_dependency(
    session: SessionDep, principal: Writer, plan_id: uuid.UUID, dependency_id: uuid.UUID
) -> object:
    view = await dependencies.remove_dependency(
        session, workspace_id=principal.workspace_id, plan_id=plan_id, dependency_id=dependency_id
    )
    return view.as_dict()


@router.post(
    "/{plan_id}/updates", response_model=OperationalPlanRead, status_code=status.HTTP_201_CREATED
)
async def record_update(
    session: SessionDep, principal: Writer, plan_id: uuid.UUID, body: WeeklyUpdateCreate
) -> object:
    """The weekly update: each goal's value, status and comment for a week. Recording the
    same goal and week again replaces it. Answers with the plan's progress and trends."""
    view = await updates.record_update(
        session,
        workspace_id=principal.workspace_id,
        plan_id=plan_id,
        week=body.week,
        goals=[item.model_dump() for item in body.goals],
        author=body.author or principal.actor,
    )
    return view.as_dict()


@alignment_router.get("", response_model=AlignmentRead)
async def read_alignment(
    session: SessionDep, principal: Reader, quarter: QuarterQuery, as_of: AsOf = None
) -> object:
    """Every misalignment across the departments' plans for the quarter, most severe first."""
    result = await checks.check_alignment(
        session, workspace_id=principal.workspace_id, quarter=quarter, as_of=as_of
    )
    return result.as_dict()
