"""What the playbook's timers do when they fire (scheduling is in `schedules.py`).

- `before_contract_end`: N days before a contract ends, submit the rule's event (e.g.
  renewal_window_opened) through the normal event path (`service.timers.events`).
- `stuck_in_stage`: N days after an account entered a stage, if it is still there (same
  entry) and the `unless` event has not arrived, raise the rule's escalation task.
- handoff acceptance SLA: when a handoff is still pending at its deadline, raise one
  escalation task for the receiving department.
- success-plan touchpoints: a task for the touchpoint's department on each due date.

Every handler re-checks the facts when it fires, so a timer that outlived its reason does
nothing; each timer key is unique, so each fires at most once.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.accounts.models import Account, AccountOwner, StageTransition
from service.lifecycle.models import LifecycleEvent
from service.plans.calendar import touchpoint_schedule
from service.plans.models import SuccessPlan
from service.playbooks.effects import render_title
from service.playbooks.schedules import HANDOFF_SLA_KIND, STUCK_KIND, TOUCHPOINT_KIND
from service.tasks import service as tasks_service
from service.tasks.models import Task
from service.timers import service as timers_service
from service.timers.models import Timer
from service.workspaces.models import Workspace

ESCALATION = "escalation"


async def _workspace(session: AsyncSession, workspace_id: uuid.UUID) -> Workspace:
    return await session.get_one(Workspace, workspace_id)


async def _account(session: AsyncSession, timer: Timer) -> Account | None:
    if timer.account_id is None:
        return None
    return await session.scalar(
        select(Account).where(
            col(Account.workspace_id) == timer.workspace_id, col(Account.id) == timer.account_id
        )
    )


async def _owner(session: AsyncSession, account_id: uuid.UUID, department: str) -> Any:
    return await session.scalar(
        select(AccountOwner).where(
            col(AccountOwner.account_id) == account_id, col(AccountOwner.department) == department
        )
    )


async def fire_stuck(session: AsyncSession, timer: Timer) -> None:
    account = await _account(session, timer)
    payload = timer.payload
    if account is None or account.stage != payload["stage"]:
        return
    latest = await session.scalar(
        select(col(StageTransition.id))
        .where(col(StageTransition.account_id) == account.id)
        .order_by(col(StageTransition.id).desc())
        .limit(1)
    )
    if str(latest) != payload["transition_id"]:
        return  # it left the stage and came back: that entry has its own timer
    rule = payload["rule"]
    unless = rule.get("unless")
    if unless:
        seen = await session.scalar(
            select(col(LifecycleEvent.id)).where(
                col(LifecycleEvent.workspace_id) == timer.workspace_id,
                col(LifecycleEvent.account_id) == account.id,
                col(LifecycleEvent.type) == unless,
                col(LifecycleEvent.received_at) >= account.stage_entered_at,
            )
        )
        if seen is not None:
            return
    workspace = await _workspace(session, timer.workspace_id)
    template = rule["task"]
    department = template.get("owner_role") or template.get("department")
    department = workspace.renewal_quarterback if department == "renewal_owner" else department
    owner = await _owner(session, account.id, department) if template.get("owner_role") else None
    await tasks_service.raise_task(
        session,
        workspace_id=timer.workspace_id,
        account_id=account.id,
        title=render_title(
            template["title"],
            {
                "account.name": account.name,
                "account.domain": account.domain or "",
                "account.segment": account.segment,
                "stage": account.stage,
            },
        ),
        department=department,
        timezone=workspace.timezone,
        calendar=workspace.holiday_calendar,
        due_in_business_days=template.get("due_in_business_days", 2),
        priority=template.get("priority", "urgent"),
        checklist=template.get("checklist", ()),
        assignee_id=owner.user_id if owner else None,
        assignee_name=owner.user_name if owner else None,
        kind=ESCALATION,
        actor=f"time rule: {rule.get('name') or STUCK_KIND}",
    )


async def fire_handoff_sla(session: AsyncSession, timer: Timer) -> None:
    task = await session.scalar(
        select(Task).where(
            col(Task.workspace_id) == timer.workspace_id,
            col(Task.id) == uuid.UUID(timer.payload["task_id"]),
        )
    )
    if task is None or task.handoff_status != "pending" or task.status == "cancelled":
        return
    account = await session.get_one(Account, task.account_id)
    workspace = await _workspace(session, timer.workspace_id)
    days = timer.payload.get("days")
    label = await tasks_service.department_name(session, timer.workspace_id, task.department)
    await tasks_service.raise_task(
        session,
        workspace_id=timer.workspace_id,
        account_id=task.account_id,
        title=(
            f"Escalation: the handoff of {account.name} to {label} was not accepted "
            f"within {days} business days"
        ),
        department=task.department,
        timezone=workspace.timezone,
        calendar=workspace.holiday_calendar,
        due_in_business_days=1,
        priority="urgent",
        checklist=("Accept or reject the handoff", "Tell the previous quarterback why it waited"),
        kind=ESCALATION,
        parent_task_id=task.id,
        actor="handoff SLA",
    )


async def fire_touchpoint(session: AsyncSession, timer: Timer) -> None:
    account = await _account(session, timer)
    if account is None or account.stage == "CHURNED":
        return
    payload = timer.payload
    plan = await session.scalar(
        select(SuccessPlan).where(
            col(SuccessPlan.workspace_id) == timer.workspace_id,
            col(SuccessPlan.id) == uuid.UUID(payload["plan_id"]),
        )
    )
    if plan is None or payload["due_on"] not in {
        due.due_on.isoformat()
        for due in touchpoint_schedule(plan.starts_on, plan.ends_on, plan.touchpoints)
        if due.name == payload["name"]
    }:
        return  # the plan's cadence or dates changed since this timer was set
    workspace = await _workspace(session, timer.workspace_id)
    department = payload["department"]
    owner = await _owner(session, account.id, department)
    await tasks_service.raise_task(
        session,
        workspace_id=timer.workspace_id,
        account_id=account.id,
        title=f"{payload['name']} with {account.name} (Q{payload['quarter']})",
        department=department,
        timezone=workspace.timezone,
        calendar=workspace.holiday_calendar,
        due_on=date.fromisoformat(payload["due_on"]),
        priority="normal",
        checklist=("Review the success plan outcomes", "Agree next quarter's focus"),
        assignee_id=owner.user_id if owner else None,
        assignee_name=owner.user_name if owner else None,
        actor="success plan cadence",
    )


timers_service.register(STUCK_KIND, fire_stuck)
timers_service.register(HANDOFF_SLA_KIND, fire_handoff_sla)
timers_service.register(TOUCHPOINT_KIND, fire_touchpoint)
