"""When the playbook's clock rings: durable timers for time rules, SLAs and touchpoints.

Scheduling only: what a timer does when it fires is in `time_rules.py`. Keys are
deterministic, so scheduling the same thing twice makes one timer, and each fires once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from service.kit.dates import add_business_days
from service.timers import service as timers_service

STUCK_KIND = "stuck_in_stage"
HANDOFF_SLA_KIND = "handoff_sla"
TOUCHPOINT_KIND = "touchpoint"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def start_of_day(day: date, timezone: str) -> datetime:
    """Midnight of `day` in the workspace's time zone, in UTC."""
    return datetime.combine(day, time(0), tzinfo=_zone(timezone)).astimezone(UTC)


def business_deadline(now: datetime, days: int, timezone: str, calendar: str | None) -> datetime:
    """The same local time of day, `days` business days later."""
    local = now.astimezone(_zone(timezone))
    day = add_business_days(local.date(), days, calendar)
    return datetime.combine(day, local.timetz()).astimezone(UTC)


async def schedule_contract_rules(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    contract_id: uuid.UUID,
    ends_on: date,
    time_rules: Any,
    timezone: str,
) -> None:
    """Timers for the `before_contract_end` rules of one contract term."""
    from service.timers.events import schedule_event  # the event timer imports the event path

    for rule in time_rules:
        if rule.kind != "before_contract_end" or rule.emit is None:
            continue
        key = f"{rule.emit}:{contract_id}:{rule.days}"
        # Already inside the window (a short or late-entered contract): due at once.
        due_at = start_of_day(ends_on - timedelta(days=rule.days), timezone)
        await schedule_event(
            session,
            workspace_id=workspace_id,
            key=key,
            due_at=due_at,
            event={"type": rule.emit, "account": {"id": str(account_id)}},
            account_id=account_id,
        )


async def schedule_stuck_rules(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    transition_id: uuid.UUID,
    stage: str,
    rules: list[dict[str, Any]],
    entered_at: datetime,
) -> None:
    for index, rule in enumerate(rules):
        await timers_service.schedule(
            session,
            workspace_id=workspace_id,
            key=f"stuck:{transition_id}:{index}",
            kind=STUCK_KIND,
            due_at=entered_at + timedelta(days=int(rule["days"])),
            payload={"stage": stage, "transition_id": str(transition_id), "rule": rule},
            account_id=account_id,
        )


def handoff_sla_timer(
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    task_id: uuid.UUID,
    accept_within_days: int,
    now: datetime,
    timezone: str,
    calendar: str | None,
) -> dict[str, Any]:
    """The row of a new handoff's SLA timer: the task's service writes it with the task (its
    key names the new task, so no timer can hold it yet)."""
    return timers_service.timer_row(
        workspace_id=workspace_id,
        key=f"handoff-sla:{task_id}",
        kind=HANDOFF_SLA_KIND,
        due_at=business_deadline(now, accept_within_days, timezone, calendar),
        payload={"task_id": str(task_id), "days": accept_within_days},
        account_id=account_id,
    )


async def cancel_handoff_sla(
    session: AsyncSession, *, workspace_id: uuid.UUID, task_id: uuid.UUID
) -> None:
    """The handoff was answered in time: its SLA timer has nothing left to do."""
    await timers_service.cancel(session, workspace_id=workspace_id, key=f"handoff-sla:{task_id}")


async def schedule_touchpoints(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    plan_id: uuid.UUID,
    schedule: list[Any],
    timezone: str,
) -> None:
    for due in schedule:
        await timers_service.schedule(
            session,
            workspace_id=workspace_id,
            key=f"touchpoint:{plan_id}:{due.name}:{due.due_on.isoformat()}",
            kind=TOUCHPOINT_KIND,
            # Raised two weeks ahead, due on the last day of its quarter.
            due_at=start_of_day(due.due_on - timedelta(days=14), timezone),
            payload={
                "plan_id": str(plan_id),
                "name": due.name,
                "department": due.department,
                "quarter": due.quarter,
                "due_on": due.due_on.isoformat(),
            },
            account_id=account_id,
        )
