"""Scheduled forecast snapshots: a durable timer per due day, each one setting the next.

The cadence is the playbook's `forecast.snapshots` (weekly by default: Mondays at midnight in
the workspace's time zone). A new contract term sets the next timer (a workspace without
contracts has nothing to forecast), as does a snapshot taken on demand; a fired timer takes
the snapshot and sets the next one. A timer left from an older cadence fires without a
snapshot and sets the current cadence's. After downtime the chain resumes from today: one
snapshot, not one per missed week.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.db.types import utcnow
from service.forecasts.settings import settings_from
from service.forecasts.snapshots import next_snapshot_day, take_snapshot
from service.kit.dates import local_today
from service.playbooks import service as playbooks_service
from service.playbooks.schedules import start_of_day
from service.timers import service as timers_service
from service.timers.models import Timer
from service.workspaces.models import Workspace

SNAPSHOT_KIND = "forecast_snapshot"


async def schedule_next_snapshot(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    forecast_section: dict[str, Any] | None,
    timezone: str | None = None,
    after: date | None = None,
) -> None:
    """Set the timer of the next scheduled snapshot (idempotent: its key is its day)."""
    if timezone is None:
        timezone = (await session.get_one(Workspace, workspace_id)).timezone
    today = local_today(utcnow(), timezone)
    cadence = settings_from(forecast_section).snapshots
    day = next_snapshot_day(max(today, after or today), cadence)
    if day is None:
        return
    await timers_service.schedule(
        session,
        workspace_id=workspace_id,
        key=f"{SNAPSHOT_KIND}:{day.isoformat()}",
        kind=SNAPSHOT_KIND,
        due_at=start_of_day(day, timezone),
        payload={"cadence": cadence, "day": day.isoformat()},
    )


async def fire_snapshot(session: AsyncSession, timer: Timer) -> None:
    playbook = await playbooks_service.current_playbook(session, workspace_id=timer.workspace_id)
    section = playbook.document.get("forecast")
    cadence = settings_from(section).snapshots
    if cadence == timer.payload.get("cadence"):
        await take_snapshot(
            session,
            workspace_id=timer.workspace_id,
            kind="scheduled",
            taken_by=f"time rule: {cadence} forecast snapshot",
        )
    await schedule_next_snapshot(
        session,
        workspace_id=timer.workspace_id,
        forecast_section=section,
        after=date.fromisoformat(timer.payload["day"]),
    )


timers_service.register(SNAPSHOT_KIND, fire_snapshot)
