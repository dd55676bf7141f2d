"""Moving an account between stages: the hot path every later trigger goes through.

`transition_account` runs inside the caller's transaction (a request, a webhook, a time
rule) and only flushes. It takes the account's row lock and reads the stage model, the
workspace's time zone and the receiving owner in one round trip, then writes the stage,
the history row and, when the quarterback changes, the handoff task, with Core statements
and no lazy loads.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, inspect, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.accounts.models import Account, AccountOwner, StageTransition
from service.db.types import utcnow, uuid7
from service.errors import InvalidInput, NotFound, StageChanged, TransitionNotAllowed
from service.lifecycle.models import Stage
from service.tasks import service as tasks_service
from service.tasks.models import Task
from service.workspaces.models import Workspace


@dataclass(frozen=True)
class TransitionResult:
    transition: StageTransition
    handoff_task: Task | None


async def transition_account(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    to_stage: str,
    reason: str | None = None,
    cause: str = "manual",
    actor: str | None = None,
    expected_stage: str | None = None,
    handoff_context: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> TransitionResult:
    """Move an account along an allowed move; raise a handoff when the quarterback changes."""
    now = now or utcnow()
    # inspect(Model).local_table is Model.__table__, which SQLModel does not declare for mypy.
    owner = inspect(AccountOwner).local_table.alias("receiving_owner")
    owner_id = (
        select(owner.c.user_id)
        .where(owner.c.account_id == col(Account.id), owner.c.department == col(Stage.quarterback))
        .scalar_subquery()
    )
    owner_name = (
        select(owner.c.user_name)
        .where(owner.c.account_id == col(Account.id), owner.c.department == col(Stage.quarterback))
        .scalar_subquery()
    )
    statement = (
        select(
            col(Account.name),
            col(Account.stage),
            col(Stage.key),
            col(Stage.name).label("stage_name"),
            col(Stage.quarterback),
            col(Stage.next_stages),
            col(Stage.backward_stages),
            col(Workspace.timezone),
            owner_id.label("owner_id"),
            owner_name.label("owner_name"),
        )
        .join(Workspace, col(Workspace.id) == col(Account.workspace_id))
        .outerjoin(
            Stage,
            and_(
                col(Stage.workspace_id) == col(Account.workspace_id),
                or_(col(Stage.key) == col(Account.stage), col(Stage.key) == to_stage),
            ),
        )
        .where(col(Account.workspace_id) == workspace_id, col(Account.id) == account_id)
        .with_for_update(of=inspect(Account).local_table)
    )
    rows = (await session.execute(statement)).all()
    if not rows:
        raise NotFound(f"account {account_id} not found")
    current_stage = rows[0].stage
    stages = {row.key: row for row in rows if row.key is not None}
    if to_stage not in stages:
        raise InvalidInput(
            f"{to_stage!r} is not a stage of this workspace's lifecycle; see GET /v1/lifecycle",
            errors=[{"field": "to_stage", "in": "body", "message": "unknown stage"}],
        )
    if expected_stage is not None and expected_stage != current_stage:
        raise StageChanged(
            f"the account is in {current_stage}, not {expected_stage}; reload and retry",
            current_stage=current_stage,
        )
    current = stages[current_stage]
    allowed = list(current.next_stages) + list(current.backward_stages)
    if to_stage not in allowed:
        raise TransitionNotAllowed(
            f"an account in {current_stage} can move to "
            f"{', '.join(allowed) if allowed else 'no other stage'}, not {to_stage}",
            current_stage=current_stage,
            allowed_stages=allowed,
        )
    backward = to_stage in current.backward_stages
    if backward and not (reason and reason.strip()):
        raise InvalidInput(
            f"moving back from {current_stage} to {to_stage} needs a reason",
            errors=[{"field": "reason", "in": "body", "message": "required for a backward move"}],
        )

    await session.execute(
        update(Account)
        .where(col(Account.workspace_id) == workspace_id, col(Account.id) == account_id)
        .values(stage=to_stage, stage_entered_at=now, updated_at=now)
    )
    target = stages[to_stage]
    transition = StageTransition(
        id=uuid7(),
        workspace_id=workspace_id,
        account_id=account_id,
        from_stage=current_stage,
        to_stage=to_stage,
        reason=reason,
        cause=cause,
        actor=actor,
        backward=backward,
        occurred_at=now,
    )
    handoff = None
    if target.quarterback != current.quarterback:
        handoff = await tasks_service.raise_handoff(
            session,
            workspace_id=workspace_id,
            account_id=account_id,
            account_name=rows[0].name,
            from_department=current.quarterback,
            to_department=target.quarterback,
            from_stage=current_stage,
            to_stage=to_stage,
            transition_id=transition.id,
            context=handoff_context,
            assignee_id=target.owner_id,
            assignee_name=target.owner_name,
            timezone=rows[0].timezone,
            actor=actor,
            now=now,
        )
        transition.handoff_task_id = handoff.id
    await session.execute(insert(StageTransition).values(**transition.model_dump()))
    return TransitionResult(transition=transition, handoff_task=handoff)


async def record_initial_stage(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    stage: str,
    actor: str | None,
    now: datetime,
) -> None:
    """The first history row of an account: where it entered the lifecycle."""
    await session.execute(
        insert(StageTransition).values(
            id=uuid7(),
            workspace_id=workspace_id,
            account_id=account_id,
            from_stage=None,
            to_stage=stage,
            reason="account created",
            cause="created",
            actor=actor,
            backward=False,
            occurred_at=now,
        )
    )
