"""Reading operational plans: each plan with its goals (actual, progress, pace, trend), its
deliverables and what its items need from other departments.

`plan_views` builds any number of plans of one workspace in five queries: goals, deliverables,
dependencies (joined with both ends), recent weekly updates, and lifecycle actuals.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from service.alignment import progress, sources
from service.alignment.models import (
    OperationalDeliverable,
    OperationalDependency,
    OperationalGoal,
    OperationalPlan,
    WeeklyUpdate,
)
from service.db.types import utcnow
from service.errors import NotFound
from service.kit.dates import local_today
from service.kit.fiscal import FiscalQuarter
from service.workspaces.models import Workspace


@dataclass(frozen=True)
class Calendar:
    """The workspace's fiscal year and time zone, and its today."""

    start_month: int
    timezone: str
    today: date

    def dates(self, quarter: str) -> tuple[date, date]:
        parsed = FiscalQuarter.parse(quarter)
        return parsed.starts_on(self.start_month), parsed.ends_on(self.start_month)

    def window(self, quarter: str, as_of: date) -> sources.Window:
        """The quarter up to the end of `as_of`, as UTC instants of the workspace's days."""
        starts_on, ends_on = self.dates(quarter)
        return sources.Window(self._midnight(starts_on), self._midnight(min(ends_on, as_of) + _DAY))

    def _midnight(self, day: date) -> datetime:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


_DAY = timedelta(days=1)


async def calendar(session: AsyncSession, workspace_id: uuid.UUID) -> Calendar:
    row = (
        await session.execute(
            select(col(Workspace.fiscal_year_start_month), col(Workspace.timezone)).where(
                col(Workspace.id) == workspace_id
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"workspace {workspace_id} not found")
    start_month, timezone = row
    return Calendar(start_month, timezone, local_today(utcnow(), timezone))


@dataclass(frozen=True)
class GoalView:
    goal: OperationalGoal
    actual: Decimal | None
    expected_progress: Decimal
    recent: list[WeeklyUpdate]  # oldest first

    @property
    def latest(self) -> WeeklyUpdate | None:
        return self.recent[-1] if self.recent else None

    @property
    def progress(self) -> Decimal | None:
        return progress.progress(self.actual, self.goal.target)

    @property
    def behind_pace(self) -> bool:
        return progress.behind_pace(self.actual, self.goal.target, self.expected_progress)

    @property
    def direction(self) -> str | None:
        return progress.direction([update.value for update in self.recent])

    def as_dict(self) -> dict[str, Any]:
        latest = self.latest
        return {
            **self.goal.model_dump(),
            "actual": self.actual,
            "progress": self.progress,
            "expected_progress": self.expected_progress,
            "behind_pace": self.behind_pace,
            "latest_update": latest.model_dump() if latest else None,
            "trend": {
                "values": [update.model_dump() for update in self.recent],
                "direction": self.direction,
            },
        }


@dataclass(frozen=True)
class DependencyView:
    dependency: OperationalDependency
    from_kind: str
    from_id: uuid.UUID
    from_name: str
    from_status: str
    needed_by: str  # the quarter the dependent item is due in
    needs_kind: str
    needs_id: uuid.UUID
    needs_name: str
    needs_department: str
    needs_plan_id: uuid.UUID
    needs_due_quarter: str
    needs_status: str

    def as_dict(self) -> dict[str, Any]:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        del fields["dependency"]
        return {**fields, **self.dependency.model_dump()}


@dataclass(frozen=True)
class PlanView:
    plan: OperationalPlan
    starts_on: date
    ends_on: date
    as_of: date
    goals: list[GoalView]
    deliverables: list[OperationalDeliverable]
    dependencies: list[DependencyView]

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.plan.model_dump(),
            "starts_on": self.starts_on,
            "ends_on": self.ends_on,
            "as_of": self.as_of,
            "goals": [goal.as_dict() for goal in self.goals],
            "deliverables": [item.model_dump() for item in self.deliverables],
            "dependencies": [item.as_dict() for item in self.dependencies],
        }


def _grouped(rows: Sequence[Any], key: str) -> dict[uuid.UUID, list[Any]]:
    grouped: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[getattr(row, key)].append(row)
    return grouped


async def plan_views(
    session: AsyncSession, cal: Calendar, plans: Sequence[OperationalPlan], as_of: date
) -> list[PlanView]:
    if not plans:
        return []
    workspace_id = plans[0].workspace_id
    plan_ids = [plan.id for plan in plans]
    goals = (
        await session.scalars(
            select(OperationalGoal)
            .where(
                col(OperationalGoal.workspace_id) == workspace_id,
                col(OperationalGoal.plan_id).in_(plan_ids),
            )
            .order_by(col(OperationalGoal.id))
        )
    ).all()
    deliverables = (
        await session.scalars(
            select(OperationalDeliverable)
            .where(
                col(OperationalDeliverable.workspace_id) == workspace_id,
                col(OperationalDeliverable.plan_id).in_(plan_ids),
            )
            .order_by(col(OperationalDeliverable.id))
        )
    ).all()
    dependencies = await _dependencies(session, workspace_id, plan_ids)
    recent = await _recent_updates(session, workspace_id, [goal.id for goal in goals])
    quarter_of = {plan.id: plan.quarter for plan in plans}
    wanted = {
        goal.id: (goal.source, cal.window(quarter_of[goal.plan_id], as_of))
        for goal in goals
        if goal.source
    }
    found = await sources.actuals(session, workspace_id, wanted.values())
    goals_by_plan = _grouped(goals, "plan_id")
    deliverables_by_plan = _grouped(deliverables, "plan_id")
    dependencies_by_plan: dict[uuid.UUID, list[DependencyView]] = defaultdict(list)
    for view in dependencies:
        dependencies_by_plan[view.dependency.plan_id].append(view)
    views = []
    for plan in plans:
        starts_on, ends_on = cal.dates(plan.quarter)
        expected = progress.elapsed(starts_on, ends_on, as_of)
        goal_views = []
        for goal in goals_by_plan[plan.id]:
            history = recent.get(goal.id, [])
            if goal.source:
                actual: Decimal | None = found[wanted[goal.id]]
            else:
                actual = history[-1].value if history else None
            goal_views.append(GoalView(goal, actual, expected, history))
        views.append(
            PlanView(
                plan=plan,
                starts_on=starts_on,
                ends_on=ends_on,
                as_of=as_of,
                goals=goal_views,
                deliverables=deliverables_by_plan[plan.id],
                dependencies=dependencies_by_plan[plan.id],
            )
        )
    return views


def _recent_updates_statement() -> Any:
    rank = (
        func.row_number()
        .over(partition_by=col(WeeklyUpdate.goal_id), order_by=col(WeeklyUpdate.week).desc())
        .label("rank")
    )
    ranked = (
        select(WeeklyUpdate, rank)
        .where(
            col(WeeklyUpdate.workspace_id) == bindparam("workspace_id"),
            col(WeeklyUpdate.goal_id).in_(bindparam("goal_ids", expanding=True)),
        )
        .subquery()
    )
    update = aliased(WeeklyUpdate, ranked)
    return (
        select(update)
        .where(ranked.c.rank <= progress.TREND_WEEKS)
        .order_by(ranked.c.goal_id, ranked.c.week)
    )


# Built once: aliasing costs more than running these statements (cached compiled forms).
_RECENT_UPDATES = _recent_updates_statement()


async def _recent_updates(
    session: AsyncSession, workspace_id: uuid.UUID, goal_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[WeeklyUpdate]]:
    """Each goal's last weekly updates, oldest first: one windowed query. All recorded
    updates count whatever `as_of` is: it moves the pace, not what people reported."""
    if not goal_ids:
        return {}
    rows = await session.scalars(
        _RECENT_UPDATES, {"workspace_id": workspace_id, "goal_ids": goal_ids}
    )
    return _grouped(list(rows), "goal_id")


def _dependencies_statement() -> Any:
    dep = OperationalDependency
    from_plan = aliased(OperationalPlan)
    from_goal = aliased(OperationalGoal)
    from_item = aliased(OperationalDeliverable)
    needs_goal = aliased(OperationalGoal)
    needs_goal_plan = aliased(OperationalPlan)
    needs_item = aliased(OperationalDeliverable)
    needs_item_plan = aliased(OperationalPlan)
    return (
        select(
            dep,
            col(from_plan.quarter),
            col(from_goal.name),
            col(from_goal.status),
            col(from_item.name),
            col(from_item.status),
            col(from_item.due_quarter),
            col(needs_goal.name),
            col(needs_goal.status),
            col(needs_goal_plan.id),
            col(needs_goal_plan.quarter),
            col(needs_goal_plan.department),
            col(needs_item.name),
            col(needs_item.status),
            col(needs_item.due_quarter),
            col(needs_item_plan.id),
            col(needs_item_plan.department),
        )
        .join(from_plan, col(from_plan.id) == col(dep.plan_id))
        .outerjoin(from_goal, col(from_goal.id) == col(dep.from_goal_id))
        .outerjoin(from_item, col(from_item.id) == col(dep.from_deliverable_id))
        .outerjoin(needs_goal, col(needs_goal.id) == col(dep.needs_goal_id))
        .outerjoin(needs_goal_plan, col(needs_goal_plan.id) == col(needs_goal.plan_id))
        .outerjoin(needs_item, col(needs_item.id) == col(dep.needs_deliverable_id))
        .outerjoin(needs_item_plan, col(needs_item_plan.id) == col(needs_item.plan_id))
        .where(
            col(dep.workspace_id) == bindparam("workspace_id"),
            col(dep.plan_id).in_(bindparam("plan_ids", expanding=True)),
        )
        .order_by(col(dep.id))
    )


_DEPENDENCIES = _dependencies_statement()


async def _dependencies(
    session: AsyncSession, workspace_id: uuid.UUID, plan_ids: list[uuid.UUID]
) -> list[DependencyView]:
    """The plans' dependencies with both ends (names, statuses, quarters): one query."""
    params = {"workspace_id": workspace_id, "plan_ids": plan_ids}
    views = []
    for found in await session.execute(_DEPENDENCIES, params):
        row: tuple[Any, ...] = tuple(found)
        (dependency, plan_quarter, g_name, g_status, d_name, d_status, d_due) = row[:7]
        (ng_name, ng_status, ng_plan, ng_quarter, ng_department) = row[7:12]
        (nd_name, nd_status, nd_due, nd_plan, nd_department) = row[12:]
        from_goal_side = dependency.from_goal_id is not None
        needs_goal_side = dependency.needs_goal_id is not None
        views.append(
            DependencyView(
                dependency=dependency,
                from_kind="goal" if from_goal_side else "deliverable",
                from_id=_either(dependency.from_goal_id, dependency.from_deliverable_id),
                from_name=g_name if from_goal_side else d_name,
                from_status=g_status if from_goal_side else d_status,
                needed_by=plan_quarter if from_goal_side else d_due,
                needs_kind="goal" if needs_goal_side else "deliverable",
                needs_id=_either(dependency.needs_goal_id, dependency.needs_deliverable_id),
                needs_name=ng_name if needs_goal_side else nd_name,
                needs_department=ng_department if needs_goal_side else nd_department,
                needs_plan_id=ng_plan if needs_goal_side else nd_plan,
                needs_due_quarter=ng_quarter if needs_goal_side else nd_due,
                needs_status=ng_status if needs_goal_side else nd_status,
            )
        )
    return views


def _either(goal_id: uuid.UUID | None, deliverable_id: uuid.UUID | None) -> uuid.UUID:
    item_id = goal_id or deliverable_id
    assert item_id is not None, "a dependency names a goal or a deliverable at each end"
    return item_id
