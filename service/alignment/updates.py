"""Weekly updates: each goal's value, status and comment for a week, the rhythm the seed's
leadership reviews progress by. One update per goal and week; recording it again corrects it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.alignment import sources
from service.alignment.models import OperationalGoal, OperationalPlan, WeeklyUpdate
from service.alignment.service import invalid, plan_row, plan_view, quantity
from service.alignment.views import Calendar, PlanView, calendar
from service.db.types import utcnow
from service.errors import Conflict


def _week_of(plan: OperationalPlan, cal: Calendar, day: date) -> date:
    """The Monday of `day`'s week, if that week overlaps the plan's quarter."""
    monday = day - timedelta(days=day.weekday())
    starts_on, ends_on = cal.dates(plan.quarter)
    if monday > ends_on or monday + timedelta(days=6) < starts_on:
        raise invalid(
            "week",
            f"the week of {monday} is outside {plan.quarter} ({starts_on} to {ends_on})",
        )
    return monday


async def record_update(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    plan_id: uuid.UUID,
    week: date,
    goals: Sequence[dict[str, Any]],
    author: str | None = None,
) -> PlanView:
    """Record each listed goal's progress for a week; a second update of the same goal and
    week replaces the first (corrections). Goals with a source take their value from the
    lifecycle data up to the end of that week."""
    plan = await plan_row(session, workspace_id, plan_id, for_update=True)
    cal = await calendar(session, workspace_id)
    monday = _week_of(plan, cal, week)
    on_plan = {
        goal.id: goal
        for goal in await session.scalars(
            select(OperationalGoal).where(
                col(OperationalGoal.workspace_id) == workspace_id,
                col(OperationalGoal.plan_id) == plan.id,
            )
        )
    }
    seen: set[uuid.UUID] = set()
    for index, item in enumerate(goals):
        field = f"goals.{index}"
        goal = on_plan.get(item["goal_id"])
        if goal is None:
            raise invalid(f"{field}.goal_id", f"goal {item['goal_id']} is not on this plan")
        if goal.id in seen:
            raise invalid(f"{field}.goal_id", "the same goal is listed twice")
        seen.add(goal.id)
        if goal.status == "cancelled":
            raise Conflict(f"goal {goal.name!r} is cancelled; reactivate it to record progress")
        if goal.source and item.get("value") is not None:
            raise invalid(
                f"{field}.value",
                f"leave it out: this goal reads its value from {goal.source}",
            )
        if not goal.source:
            if item.get("value") is None:
                raise invalid(f"{field}.value", "required: the goal's value this week")
            item["value"] = quantity(item["value"], f"{field}.value")
    week_end = monday + timedelta(days=6)
    measured = await sources.actuals(
        session,
        workspace_id,
        [
            (goal.source, cal.window(plan.quarter, week_end))
            for goal in on_plan.values()
            if goal.source and goal.id in seen
        ],
    )
    existing = {
        update.goal_id: update
        for update in await session.scalars(
            select(WeeklyUpdate).where(
                col(WeeklyUpdate.workspace_id) == workspace_id,
                col(WeeklyUpdate.goal_id).in_(list(seen)),
                col(WeeklyUpdate.week) == monday,
            )
        )
    }
    now = utcnow()
    for item in goals:
        goal = on_plan[item["goal_id"]]
        value = (
            measured[(goal.source, cal.window(plan.quarter, week_end))]
            if goal.source
            else item["value"]
        )
        fields = {
            "value": value,
            "status": item["status"],
            "comment": item.get("comment"),
            "author": author,
            "recorded_at": now,
        }
        update = existing.get(goal.id)
        if update is None:
            session.add(
                WeeklyUpdate(
                    workspace_id=workspace_id,
                    plan_id=plan.id,
                    goal_id=goal.id,
                    week=monday,
                    **fields,
                )
            )
        else:
            for name, field_value in fields.items():
                setattr(update, name, field_value)
    return await plan_view(session, plan)
