"""Lifecycle events: every change comes in as one, and `apply_event` decides what it does.

One transaction per event: record it (unique per workspace, source and sender id), resolve
or create the account, decide (apply / pending / ignored, with a reason), move the stage
through `transition_account`, and retry the account's pending events once it moved.

Until playbooks (plan rules as versioned documents) land, the decision uses the default
lifecycle's mapping of event types to stages below.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.accounts import service as accounts_service
from service.accounts.models import Account, AccountExternalId
from service.db import tables
from service.db.types import utcnow, uuid7
from service.errors import Conflict, InvalidInput, NotFound
from service.lifecycle.models import LifecycleEvent, Stage
from service.lifecycle.transitions import transition_account

# Which stage each event type moves an account to in the default lifecycle.
EVENT_TARGETS: dict[str, str] = {
    "opportunity_created": "ACQUIRE",
    "closed_won": "IMPLEMENT",
    "closed_lost": "QUALIFY",
    "go_live": "VALUE",
    "renewal_window_opened": "RENEW",
    "renewal_won": "VALUE",
    "renewal_lost": "CHURNED",
    "expansion_opportunity_created": "EXPAND",
    "churned": "CHURNED",
}
# Events that may create the account they name when it is not known yet.
CREATES_ACCOUNT = frozenset({"opportunity_created"})


@dataclass(frozen=True)
class EventOutcome:
    event: LifecycleEvent
    duplicate: bool


def _insert_ignoring_duplicates(dialect: str) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    return (
        module.insert(tables.lifecycle_events)
        .on_conflict_do_nothing(index_elements=["workspace_id", "source", "external_id"])
        .returning(tables.lifecycle_events.c.id)
    )


async def apply_event(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    source: str,
    event: dict[str, Any],
    account_id: uuid.UUID | None = None,
    actor: str | None = None,
) -> EventOutcome:
    """Record and apply one canonical event; a duplicate changes nothing and returns the first."""
    connection = await session.connection()
    event_id = uuid7()
    inserted = (
        await connection.execute(
            _insert_ignoring_duplicates(connection.dialect.name),
            {
                "id": event_id,
                "workspace_id": workspace_id,
                "source": source,
                "external_id": event["id"],
                "type": event["type"],
                "occurred_at": event["occurred_at"],
                "payload": _jsonable(event),
                "outcome": "received",
                "received_at": utcnow(),
            },
        )
    ).first()
    if inserted is None:
        first = await session.scalar(
            select(LifecycleEvent).where(
                col(LifecycleEvent.workspace_id) == workspace_id,
                col(LifecycleEvent.source) == source,
                col(LifecycleEvent.external_id) == event["id"],
            )
        )
        assert first is not None
        return EventOutcome(event=first, duplicate=True)

    record = await session.get_one(LifecycleEvent, event_id)
    account = await _resolve_account(session, workspace_id, source, event, account_id, actor)
    if account is None:
        _decide(record, "pending", f"no account {_account_ref(event)} in this workspace yet")
        return EventOutcome(event=record, duplicate=False)
    record.account_id = account.id
    await _evaluate(session, record, account, actor)
    if record.outcome == "applied":
        await _retry_pending(session, workspace_id, account.id, actor)
    await session.flush()
    return EventOutcome(event=record, duplicate=False)


def _jsonable(event: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, list):
            return [convert(item) for item in value]
        if hasattr(value, "isoformat"):
            return value.isoformat()
        if isinstance(value, uuid.UUID):
            return str(value)
        return value if isinstance(value, str | int | float | bool | None) else str(value)

    return convert(event)


def _account_ref(event: dict[str, Any]) -> str:
    ref = event.get("account") or {}
    return str(ref.get("id") or ref.get("external_id") or "?")


def _decide(record: LifecycleEvent, outcome: str, reason: str | None) -> None:
    record.outcome, record.reason, record.decided_at = outcome, reason, utcnow()


async def _resolve_account(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    source: str,
    event: dict[str, Any],
    account_id: uuid.UUID | None,
    actor: str | None,
) -> Account | None:
    ref = event.get("account") or {}
    account_id = account_id or (uuid.UUID(str(ref["id"])) if ref.get("id") else None)
    if account_id is not None:
        return await accounts_service.get_account_row(session, workspace_id, account_id)
    external_id = ref.get("external_id")
    account = await session.scalar(
        select(Account)
        .join(AccountExternalId, col(AccountExternalId.account_id) == col(Account.id))
        .where(
            col(AccountExternalId.workspace_id) == workspace_id,
            col(AccountExternalId.source) == source,
            col(AccountExternalId.external_id) == external_id,
        )
    )
    if account is not None or event["type"] not in CREATES_ACCOUNT:
        return account
    if not ref.get("name"):
        raise InvalidInput(
            f"account {source}:{external_id} is unknown; send account.name to create it",
            errors=[{"field": "account.name", "in": "body", "message": "required to create"}],
        )
    view = await accounts_service.create_account(
        session,
        workspace_id=workspace_id,
        name=ref["name"],
        domain=ref.get("domain"),
        external_ids={source: str(external_id)},
        actor=actor,
    )
    return view.account


async def _evaluate(
    session: AsyncSession, record: LifecycleEvent, account: Account, actor: str | None
) -> None:
    payload = record.payload
    target = payload.get("to_stage") if record.type == "stage_changed" else None
    target = target or EVENT_TARGETS.get(record.type)
    if target is None:
        _decide(record, "ignored", f"{record.type} moves no stage")
        return
    stages = {
        stage.key: stage
        for stage in await session.scalars(
            select(Stage).where(col(Stage.workspace_id) == record.workspace_id)
        )
    }
    current = stages.get(account.stage)
    if target not in stages or current is None:
        _decide(record, "ignored", f"{target} is not a stage of this workspace's lifecycle")
        return
    if account.stage == target:
        _decide(record, "ignored", f"the account is already in {target}")
        return
    if target not in current.next_stages and target not in current.backward_stages:
        if stages[target].position > current.position:
            _decide(
                record,
                "pending",
                f"{record.type} needs the account in a stage that can move to {target}; "
                f"it is in {account.stage}",
            )
        else:
            _decide(record, "ignored", f"an account in {account.stage} does not go to {target}")
        return
    result = await transition_account(
        session,
        workspace_id=record.workspace_id,
        account_id=account.id,
        to_stage=target,
        reason=f"{record.type} ({record.source}:{record.external_id})",
        cause="event",
        actor=actor,
        now=None,
    )
    record.transition_id = result.transition["id"]
    _decide(record, "applied", None)


async def _retry_pending(
    session: AsyncSession, workspace_id: uuid.UUID, account_id: uuid.UUID, actor: str | None
) -> None:
    """Apply the account's pending events that the last move made possible, oldest first."""
    while True:
        pending = list(
            await session.scalars(
                select(LifecycleEvent)
                .where(
                    col(LifecycleEvent.workspace_id) == workspace_id,
                    col(LifecycleEvent.account_id) == account_id,
                    col(LifecycleEvent.outcome) == "pending",
                )
                .order_by(col(LifecycleEvent.occurred_at), col(LifecycleEvent.id))
            )
        )
        # The transition moved the row with Core statements: reload the account's stage.
        account = await session.get_one(Account, account_id, populate_existing=True)
        progressed = False
        for record in pending:
            await _evaluate(session, record, account, actor)
            if record.outcome == "applied":
                progressed = True
                break
        await session.flush()
        if not progressed:
            return


async def list_events(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    outcome: str | None,
    account_id: uuid.UUID | None,
    limit: int,
    after: uuid.UUID | None,
) -> list[LifecycleEvent]:
    statement = select(LifecycleEvent).where(col(LifecycleEvent.workspace_id) == workspace_id)
    if outcome:
        statement = statement.where(col(LifecycleEvent.outcome) == outcome)
    if account_id:
        statement = statement.where(col(LifecycleEvent.account_id) == account_id)
    if after:
        statement = statement.where(col(LifecycleEvent.id) > after)
    return list(await session.scalars(statement.order_by(col(LifecycleEvent.id)).limit(limit)))


async def replay_event(
    session: AsyncSession, *, workspace_id: uuid.UUID, event_id: uuid.UUID, actor: str | None
) -> LifecycleEvent:
    """Evaluate a pending event again (e.g. after its account was created)."""
    record = await session.scalar(
        select(LifecycleEvent).where(
            col(LifecycleEvent.workspace_id) == workspace_id, col(LifecycleEvent.id) == event_id
        )
    )
    if record is None:
        raise NotFound(f"event {event_id} not found")
    if record.outcome not in ("pending", "failed"):
        raise Conflict(f"only pending or failed events are replayed; this one is {record.outcome}")
    account = await _resolve_account(
        session, workspace_id, record.source, record.payload, record.account_id, actor
    )
    if account is None:
        _decide(record, "pending", f"no account {_account_ref(record.payload)} yet")
    else:
        record.account_id = account.id
        await _evaluate(session, record, account, actor)
        if record.outcome == "applied":
            await _retry_pending(session, workspace_id, account.id, actor)
    await session.flush()
    return record
