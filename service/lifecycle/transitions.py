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

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import tables
from service.db.types import utcnow, uuid7
from service.errors import InvalidInput, NotFound, StageChanged, TransitionNotAllowed
from service.kit import live
from service.outbound import outbox
from service.playbooks import schedules
from service.tasks import service as tasks_service

# Statements are built once: constructing them per call cost more CPU than running them.
_owner = tables.account_owners.alias("receiving_owner")
_a, _s, _w = tables.accounts.c, tables.stages.c, tables.workspaces.c


def _receiving_owner(column: str) -> Any:
    return (
        select(_owner.c[column])
        .where(_owner.c.account_id == _a.id, _owner.c.department == _s.quarterback)
        .scalar_subquery()
    )


# One round trip: lock the account, and read the current and target stages, the workspace's
# time zone and the account's owner in each stage's quarterback department.
LOCK_ACCOUNT = (
    select(
        _a.name,
        _a.stage,
        _s.key,
        _s.quarterback,
        _s.quarterback_name,
        _s.next_stages,
        _s.backward_stages,
        _s.handoff_checklist,
        _s.handoff_due_days,
        _s.accept_within_days,
        _s.stuck_rules,
        _w.timezone,
        _w.holiday_calendar,
        _w.playbook_version,
        _w.has_subscriptions,
        _receiving_owner("user_id").label("owner_id"),
        _receiving_owner("user_name").label("owner_name"),
    )
    .select_from(tables.accounts)
    .join(tables.workspaces, _w.id == _a.workspace_id)
    .outerjoin(
        tables.stages,
        and_(
            _s.workspace_id == _a.workspace_id,
            or_(_s.key == _a.stage, _s.key == bindparam("to_stage")),
        ),
    )
    .where(_a.workspace_id == bindparam("workspace_id"), _a.id == bindparam("account_id"))
    .with_for_update(of=tables.accounts)
)
MOVE_ACCOUNT = (
    update(tables.accounts)
    .where(_a.workspace_id == bindparam("in_workspace"), _a.id == bindparam("account"))
    .values(
        stage=bindparam("new_stage"), stage_entered_at=bindparam("at"), updated_at=bindparam("at")
    )
)
INSERT_TRANSITION = insert(tables.stage_transitions)
# PostgreSQL moves the account and writes its history row in one round trip, the move as a
# WITH clause, once the handoff task the row names exists. (SQLite: no UPDATE inside WITH.)
MOVE_AND_RECORD = tables.insert_every_column(tables.stage_transitions, "history_").add_cte(
    MOVE_ACCOUNT.cte("moved")
)


@dataclass(frozen=True)
class TransitionResult:
    """The history row written and the handoff raised, as plain column dicts."""

    transition: dict[str, Any]
    handoff_task: dict[str, Any] | None


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
    skipped_stages: tuple[str, ...] = (),
    now: datetime | None = None,
) -> TransitionResult:
    """Move an account along an allowed move; raise a handoff when the quarterback changes.

    `skipped_stages` is for the playbook's out-of-order policy `apply_skipping`: the move
    jumps over those stages along forward moves, and the history records them.
    """
    now = now or utcnow()
    # Core statements on the session's own connection: the ORM adds nothing on this path.
    connection = await session.connection()
    rows = (
        await connection.execute(
            LOCK_ACCOUNT,
            {"workspace_id": workspace_id, "account_id": account_id, "to_stage": to_stage},
        )
    ).all()
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
    # A skip is vouched for by the playbook's decision; check that it starts with a real move.
    skipping = bool(skipped_stages) and skipped_stages[0] in current.next_stages
    if to_stage not in allowed and not skipping:
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

    move = {"in_workspace": workspace_id, "account": account_id, "new_stage": to_stage, "at": now}
    in_one_statement = connection.dialect.name == "postgresql"
    if not in_one_statement:
        await connection.execute(MOVE_ACCOUNT, move)
    target = stages[to_stage]
    transition: dict[str, Any] = {
        "id": uuid7(),
        "workspace_id": workspace_id,
        "account_id": account_id,
        "from_stage": current_stage,
        "to_stage": to_stage,
        "reason": reason,
        "cause": cause,
        "actor": actor,
        "backward": backward,
        "skipped_stages": list(skipped_stages) if skipping else [],
        "playbook_version": rows[0].playbook_version,
        "occurred_at": now,
        "handoff_task_id": None,
    }
    handoff = None
    if target.quarterback != current.quarterback:
        handoff = await tasks_service.raise_handoff(
            session,
            workspace_id=workspace_id,
            account_id=account_id,
            account_name=rows[0].name,
            from_department=current.quarterback,
            to_department=target.quarterback,
            from_name=current.quarterback_name,
            to_name=target.quarterback_name,
            from_stage=current_stage,
            to_stage=to_stage,
            transition_id=transition["id"],
            context=handoff_context,
            assignee_id=target.owner_id,
            assignee_name=target.owner_name,
            checklist=target.handoff_checklist,
            due_in_business_days=target.handoff_due_days,
            accept_within_days=target.accept_within_days,
            notify=rows[0].has_subscriptions,
            timezone=rows[0].timezone,
            calendar=rows[0].holiday_calendar,
            actor=actor,
            now=now,
        )
        transition["handoff_task_id"] = handoff["id"]
    if in_one_statement:
        await connection.execute(MOVE_AND_RECORD, move | tables.prefixed(transition, "history_"))
    else:
        await connection.execute(INSERT_TRANSITION, transition)
    # For `accountStageChanged` subscribers: a note in the session, sent after the commit.
    live.announce(
        session,
        live.STAGE_CHANGED,
        workspace_id=workspace_id,
        id=transition["id"],
        account_id=account_id,
        department=target.quarterback,
    )
    if rows[0].has_subscriptions:
        await outbox.emit(
            session,
            workspace_id=workspace_id,
            event_type=outbox.STAGE_CHANGED,
            data={
                "account_id": account_id,
                "account_name": rows[0].name,
                "from_stage": current_stage,
                "to_stage": to_stage,
                "quarterback": target.quarterback,
                "previous_quarterback": current.quarterback,
                "transition_id": transition["id"],
                "handoff_task_id": transition["handoff_task_id"],
                "cause": cause,
                "occurred_at": now,
            },
            department=target.quarterback,
            now=now,
        )
    if target.stuck_rules:
        await schedules.schedule_stuck_rules(
            session,
            workspace_id=workspace_id,
            account_id=account_id,
            transition_id=transition["id"],
            stage=to_stage,
            rules=target.stuck_rules,
            entered_at=now,
        )
    return TransitionResult(transition=transition, handoff_task=handoff)


def initial_stage_row(
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    stage: str,
    actor: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The first history row of an account: where it entered the lifecycle."""
    return {
        "id": uuid7(),
        "workspace_id": workspace_id,
        "account_id": account_id,
        "from_stage": None,
        "to_stage": stage,
        "reason": "account created",
        "cause": "created",
        "actor": actor,
        "backward": False,
        "skipped_stages": [],
        "playbook_version": None,
        "occurred_at": now,
        "handoff_task_id": None,
    }
