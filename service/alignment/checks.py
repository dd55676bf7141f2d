"""The alignment check: what leadership would find reading every department's plan for a
quarter side by side (the seed's "Determining Priorities in Alignment Across Departments").

Each finding has a stable `kind`, a severity, the departments that have to talk, and a message
saying what to do. The quarter's plans are read with `plan_views` (five queries whatever their
number) plus the workspace, its stages and the plans themselves: eight statements in all.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.alignment import progress
from service.alignment.models import OperationalPlan
from service.alignment.views import DependencyView, GoalView, PlanView, calendar, plan_views
from service.kit.fiscal import parse_quarter
from service.lifecycle import service as lifecycle_service
from service.lifecycle.models import Stage

SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


@dataclass(frozen=True)
class Misalignment:
    kind: str
    severity: str
    departments: list[str]
    message: str
    stage: str | None = None
    plan_id: uuid.UUID | None = None
    goal_id: uuid.UUID | None = None
    deliverable_id: uuid.UUID | None = None
    dependency_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Alignment:
    quarter: str
    starts_on: date
    ends_on: date
    as_of: date
    past_mid_quarter: bool
    plans: int
    misalignments: list[Misalignment] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def check_alignment(
    session: AsyncSession, *, workspace_id: uuid.UUID, quarter: str, as_of: date | None = None
) -> Alignment:
    """Every misalignment of the quarter's plans, most severe first. `as_of` (default: today
    in the workspace's time zone) decides whether the quarter is past its middle."""
    label = str(parse_quarter(quarter, "quarter", "query"))
    cal = await calendar(session, workspace_id)
    as_of = as_of or cal.today
    starts_on, ends_on = cal.dates(label)
    stages = await lifecycle_service.list_stages(session, workspace_id=workspace_id)
    plans = list(
        await session.scalars(
            select(OperationalPlan)
            .where(
                col(OperationalPlan.workspace_id) == workspace_id,
                col(OperationalPlan.quarter) == label,
            )
            .order_by(col(OperationalPlan.department))
        )
    )
    views = await plan_views(session, cal, plans, as_of)
    past_middle = progress.past_mid_quarter(starts_on, ends_on, as_of)
    found: list[Misalignment] = []
    for view in views:
        found += [m for dep in view.dependencies if (m := _dependency(view, dep)) is not None]
        if past_middle:
            found += [m for goal in view.goals if (m := _off_track(view, goal)) is not None]
    found += _stage_coverage(label, stages, views)
    # Stable: within a kind, plans by department and stages in lifecycle order.
    found.sort(key=lambda m: (SEVERITY_ORDER[m.severity], m.kind))
    return Alignment(label, starts_on, ends_on, as_of, past_middle, len(plans), found)


def _dependency(view: PlanView, dep: DependencyView) -> Misalignment | None:
    if dep.from_status == "cancelled":
        return None  # nobody needs it any more
    department = view.plan.department
    refs: dict[str, Any] = {
        "plan_id": view.plan.id,
        f"{dep.from_kind}_id": dep.from_id,
        "dependency_id": dep.dependency.id,
    }
    departments = sorted({department, dep.needs_department})
    needs = f"the {dep.needs_department} {dep.needs_kind} {dep.needs_name!r}"
    dependent = f"{department} {dep.from_kind} {dep.from_name!r}"
    if dep.needs_status == "cancelled":
        return Misalignment(
            kind="dependency_cancelled",
            severity="high",
            departments=departments,
            message=f"The {dependent} ({dep.needed_by}) needs {needs}, which was cancelled: "
            f"{dep.needs_department} and {department} should agree on a replacement, or "
            f"{department} should re-plan or cancel its {dep.from_kind}",
            **refs,
        )
    if dep.needs_due_quarter > dep.needed_by and dep.needs_status != "done":
        return Misalignment(
            kind="dependency_due_late",
            severity="high",
            departments=departments,
            message=f"The {dependent} is due in {dep.needed_by} but needs {needs}, due only in "
            f"{dep.needs_due_quarter}: {dep.needs_department} should bring it into "
            f"{dep.needed_by}, or {department} should move or re-target its {dep.from_kind}",
            **refs,
        )
    return None


def _off_track(view: PlanView, goal: GoalView) -> Misalignment | None:
    if goal.goal.status == "cancelled":
        return None
    latest = goal.latest
    if latest is not None and latest.status == "done":
        return None
    department = view.plan.department
    refs: dict[str, Any] = {
        "plan_id": view.plan.id,
        "goal_id": goal.goal.id,
        "stage": goal.goal.stage,
    }
    name = f"{department} goal {goal.goal.name!r} ({goal.goal.metric}, target {goal.goal.target})"
    if latest is not None and latest.status == "off_track":
        return Misalignment(
            kind="goal_off_track",
            severity="high",
            departments=[department],
            message=f"The {name} was reported off track in the week of {latest.week}"
            + (f" ({latest.comment})" if latest.comment else "")
            + f" past mid-quarter: {goal.goal.owner} should bring a recovery plan to the "
            "leadership review, or the target should be changed",
            **refs,
        )
    if goal.behind_pace:
        expected = progress.tidy(goal.goal.target * goal.expected_progress)
        actual = "no value yet" if goal.actual is None else f"{goal.actual:f}"
        return Misalignment(
            kind="goal_behind_pace",
            severity="medium",
            departments=[department],
            message=f"The {name} is behind pace past mid-quarter: {actual} where a steady pace "
            f"would have {expected:f} by {view.as_of}; {goal.goal.owner} should say whether "
            "it will catch up or the target should change",
            **refs,
        )
    return None


def _stage_coverage(label: str, stages: list[Stage], views: list[PlanView]) -> list[Misalignment]:
    """Stages no goal serves, and stages whose quarterback department has no plan. A stage
    with no way forward (CHURNED) ends the lifecycle and needs no quarterly goal."""
    served = {
        goal.goal.stage for view in views for goal in view.goals if goal.goal.status != "cancelled"
    }
    planning = {view.plan.department for view in views}
    found = []
    for stage in stages:
        if not stage.next_stages:
            continue
        owner = stage.quarterback
        if owner not in planning:
            found.append(
                Misalignment(
                    kind="quarterback_without_plan",
                    severity="high",
                    departments=[owner],
                    stage=stage.key,
                    message=f"{stage.quarterback_name or owner} quarterbacks {stage.key} but has "
                    f"no plan for {label}: {owner} should publish its {label} plan so the other "
                    "departments can align with it",
                )
            )
        if stage.key not in served:
            supporting = [d for d in stage.supporting if d != owner]
            found.append(
                Misalignment(
                    kind="stage_without_goal",
                    severity="medium",
                    departments=[owner, *supporting],
                    stage=stage.key,
                    message=f"no department has a {label} goal for {stage.key}: {owner}, its "
                    "quarterback, should add one (or a supporting department"
                    + (f": {', '.join(supporting)}" if supporting else "")
                    + ")",
                )
            )
    return found
