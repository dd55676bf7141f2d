"""The renewal facts of a new day, computed by a worker at midnight instead of by the day's
first forecast.

Overdue tasks and plan health are facts of a day, so each day every contract's renewal facts
are computed again (service.forecasts.facts). Left to the first forecast of the day, that
request would take several times as long as a forecast (100k renewals: `new day` in
bench/forecast.py). A durable timer per day does it at midnight in the workspace's time zone.

The chain starts when a forecast computes every contract's facts (the first one ever, or
after a pause), and each fired timer sets the next. It stops once no forecast (scheduled
snapshots included) has read the facts for `IDLE_DAYS`: a workspace nobody forecasts for
costs nothing, and its next forecast starts the chain again.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.db import tables
from service.db.types import utcnow
from service.forecasts import facts
from service.kit.dates import local_today
from service.playbooks.schedules import start_of_day
from service.timers import service as timers_service
from service.timers.models import Timer
from service.workspaces.models import Workspace

FACTS_DAY_KIND = "renewal_facts_day"
IDLE_DAYS = 7


async def schedule_day(
    session: AsyncSession, *, workspace_id: uuid.UUID, day: date, timezone: str
) -> None:
    """Set the timer that computes the facts of `day` (idempotent: its key is the day)."""
    await timers_service.schedule(
        session,
        workspace_id=workspace_id,
        key=f"{FACTS_DAY_KIND}:{day.isoformat()}",
        kind=FACTS_DAY_KIND,
        due_at=start_of_day(day, timezone),
        payload={"day": day.isoformat()},
    )


_WORKSPACE = (
    select(
        col(Workspace.timezone),
        col(Workspace.renewal_quarterback),
        tables.renewal_facts_state.c.read_on,
    )
    .outerjoin(
        tables.renewal_facts_state,
        tables.renewal_facts_state.c.workspace_id == col(Workspace.id),
    )
    .where(col(Workspace.id) == bindparam("workspace"))
)


async def fire_new_day(session: AsyncSession, timer: Timer) -> None:
    connection = await session.connection()
    workspace = (await connection.execute(_WORKSPACE, {"workspace": timer.workspace_id})).first()
    if workspace is None:
        return
    # Today: the day the timer is for, or a later one if it fires late (after downtime).
    day = local_today(utcnow(), workspace.timezone)
    if workspace.read_on is None or (day - workspace.read_on).days > IDLE_DAYS:
        return  # nobody forecasts here: the chain ends
    await facts.bring_up_to_date(
        session,
        workspace_id=timer.workspace_id,
        as_of=day,
        renewal_owner=workspace.renewal_quarterback,
    )
    await schedule_day(
        session,
        workspace_id=timer.workspace_id,
        day=day + timedelta(days=1),
        timezone=workspace.timezone,
    )


timers_service.register(FACTS_DAY_KIND, fire_new_day)
