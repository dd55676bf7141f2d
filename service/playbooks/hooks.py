"""Facts that set the playbook's clock: a new contract term, a new success-plan year."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.plans.calendar import touchpoint_schedule
from service.plans.models import SuccessPlan
from service.playbooks import schedules
from service.playbooks import service as playbooks_service
from service.workspaces.models import Workspace


async def _timezone(session: AsyncSession, workspace_id: uuid.UUID) -> str:
    zone = await session.scalar(
        select(col(Workspace.timezone)).where(col(Workspace.id) == workspace_id)
    )
    return zone or "UTC"


async def contract_created(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    contract_id: uuid.UUID,
    ends_on: date,
) -> None:
    """Set the contract's `before_contract_end` timers (the renewal window by default), and
    the workspace's next forecast snapshot (a workspace with contracts has a forecast)."""
    from service.forecasts.snapshot_schedule import schedule_next_snapshot

    playbook = await playbooks_service.current_playbook(session, workspace_id=workspace_id)
    timezone = await _timezone(session, workspace_id)
    await schedules.schedule_contract_rules(
        session,
        workspace_id=workspace_id,
        account_id=account_id,
        contract_id=contract_id,
        ends_on=ends_on,
        time_rules=playbook.time_rules,
        timezone=timezone,
    )
    await schedule_next_snapshot(
        session,
        workspace_id=workspace_id,
        forecast_section=playbook.document.get("forecast"),
        timezone=timezone,
    )


async def plan_scaffolded(session: AsyncSession, *, plan: SuccessPlan) -> None:
    """Set a timer for each touchpoint of the plan's year (a business review each quarter)."""
    await schedules.schedule_touchpoints(
        session,
        workspace_id=plan.workspace_id,
        account_id=plan.account_id,
        plan_id=plan.id,
        schedule=touchpoint_schedule(plan.starts_on, plan.ends_on, plan.touchpoints),
        timezone=await _timezone(session, plan.workspace_id),
    )
