"""Lifecycle events: every change comes in as one, and `apply_event` decides what it does.

One transaction per event: record it (unique per workspace, source and sender id), resolve
or create the account, decide (apply / pending / ignored, with a reason), move the stage
through `transition_account`, and retry the account's pending events once it moved.

The decision is the workspace's playbook's (service/playbooks/rules.py), and the history,
the event row and the tasks record which playbook version and rule made it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from sqlalchemy import and_, bindparam, exists, join, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.accounts import service as accounts_service
from service.accounts.models import Account, AccountExternalId, AccountOwner
from service.db import tables
from service.db.types import utcnow, uuid7
from service.deals import service as deals_service
from service.errors import Conflict, InvalidInput, NotFound, QuarterbackError
from service.lifecycle.models import LifecycleEvent
from service.lifecycle.transitions import transition_account
from service.plans import service as plans_service
from service.playbooks import hooks as playbook_hooks
from service.playbooks import service as playbooks_service
from service.playbooks.effects import Owner, plan_effects
from service.playbooks.rules import Decision, Facts, Playbook, decide
from service.tasks import service as tasks_service
from service.workspaces.models import Workspace

EVENTS = Counter("qb_events", "Lifecycle events decided, by outcome.", ["outcome"])
logger = logging.getLogger("quarterback.events")

# Events that may create the account they name when it is not known yet.
CREATES_ACCOUNT = frozenset({"opportunity_created"})


@dataclass(frozen=True)
class EventOutcome:
    event: LifecycleEvent
    duplicate: bool


@dataclass(frozen=True)
class _Found:
    """The account an event names, and what the same round trip read beside it."""

    account: Account | None
    playbook_version: int | None  # the workspace's, in force
    created: bool = False  # by this event
    waiting: bool = False  # pending events name the account this event created


# Built once: every delivery runs these, and building a statement costs more than its
# cached compilation.
_INSERT_IGNORING_DUPLICATES = tables.insert_unless_present(
    LifecycleEvent, ["workspace_id", "source", "external_id"]
)
_COUNT_DUPLICATE = (
    update(LifecycleEvent)
    .where(
        col(LifecycleEvent.workspace_id) == bindparam("workspace"),
        col(LifecycleEvent.source) == bindparam("from_source"),
        col(LifecycleEvent.external_id) == bindparam("external"),
    )
    .values(duplicates=col(LifecycleEvent.duplicates) + 1, last_duplicate_at=bindparam("now"))
    .returning(LifecycleEvent)
)


# The account an event names by its sender's id. For an event that may create the account,
# the same round trip says whether pending events already wait for that id (they are
# adopted once it exists): a left join from one row, so the answer comes without an account.
_BY_EXTERNAL_ID = and_(
    col(AccountExternalId.workspace_id) == bindparam("workspace"),
    col(AccountExternalId.source) == bindparam("from_source"),
    col(AccountExternalId.external_id) == bindparam("external"),
)
# Each lookup also reads the workspace's playbook version, which the decision needs next.
_PLAYBOOK_VERSION = (
    select(col(Workspace.playbook_version))
    .where(col(Workspace.id) == bindparam("workspace"))
    .scalar_subquery()
    .label("playbook_version")
)
_ACCOUNT_BY_ID = select(Account, _PLAYBOOK_VERSION).where(
    col(Account.workspace_id) == bindparam("workspace"), col(Account.id) == bindparam("account")
)
_ACCOUNT_BY_EXTERNAL_ID = (
    select(Account, _PLAYBOOK_VERSION)
    .join(AccountExternalId, col(AccountExternalId.account_id) == col(Account.id))
    .where(_BY_EXTERNAL_ID)
)
_WAITING_FOR_ACCOUNT = and_(
    col(LifecycleEvent.workspace_id) == bindparam("workspace"),
    col(LifecycleEvent.account_id).is_(None),
    col(LifecycleEvent.outcome) == "pending",
    col(LifecycleEvent.source) == bindparam("from_source"),
    col(LifecycleEvent.payload)["account"]["external_id"].as_string() == bindparam("external"),
)
_ONE_ROW = select(literal(1).label("one")).subquery("one_row")


def _first_stage_column(column: Any, label: str) -> Any:
    """A column of the workspace's first stage, where an account it creates starts."""
    stages = tables.stages
    return (
        select(column)
        .where(stages.c.workspace_id == bindparam("workspace"))
        .order_by(stages.c.position)
        .limit(1)
        .scalar_subquery()
        .label(label)
    )


_ACCOUNT_OR_WAITING = (
    select(
        Account,
        exists().where(_WAITING_FOR_ACCOUNT).label("waiting"),
        _PLAYBOOK_VERSION,
        # Read here so that creating the account needs no lookup of its own.
        _first_stage_column(tables.stages.c.key, "first_stage"),
        _first_stage_column(tables.stages.c.quarterback, "first_quarterback"),
    )
    .select_from(_ONE_ROW)
    .outerjoin(
        join(AccountExternalId, Account, col(AccountExternalId.account_id) == col(Account.id)),
        _BY_EXTERNAL_ID,
    )
)
_ADOPT_WAITING = (
    update(LifecycleEvent)
    .where(_WAITING_FOR_ACCOUNT)
    .values(account_id=bindparam("account"))
    .returning(col(LifecycleEvent.id))
    .execution_options(synchronize_session=False)
)


async def apply_event(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    source: str,
    event: dict[str, Any],
    account_id: uuid.UUID | None = None,
    actor: str | None = None,
    keep_on_fault: bool = True,
    note: str | None = None,
) -> EventOutcome:
    """Record and apply one canonical event; a duplicate changes nothing and returns the first.

    With `keep_on_fault` an unexpected error rolls the event's effects back to a savepoint
    and keeps the event as `failed`; a caller that already runs this in a savepoint of its
    own and keeps failures itself (webhook ingestion) passes False and saves the round trips.
    `note` (an adapter's remark) becomes the applied event's reason when the decision gives
    none, written with the decision rather than by an UPDATE of its own.
    """
    record, duplicate = await _record(
        session,
        workspace_id=workspace_id,
        source=source,
        external_id=event["id"],
        event_type=event["type"],
        occurred_at=event["occurred_at"],
        payload=_jsonable(event),
    )
    if duplicate:
        return EventOutcome(event=record, duplicate=True)
    found = await _resolve_account(session, workspace_id, source, event, account_id, actor)
    account = found.account
    if account is None:
        _decide(record, "pending", f"no account {_account_ref(event)} in this workspace yet")
        return EventOutcome(event=record, duplicate=False)
    # Events that came before the account existed wait for it (a CRM redelivers in its own
    # order): once this one creates it, they are the account's pending events.
    waiting = found.waiting and await _adopt_waiting_events(session, record, account.id)
    process = _process_or_keep if keep_on_fault else _process
    await process(
        session,
        record,
        account,
        actor,
        playbook_version=found.playbook_version,
        new_account=found.created and not waiting,
        note=note,
    )
    return EventOutcome(event=record, duplicate=False)


async def record_unapplied(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    source: str,
    external_id: str,
    label: str,
    outcome: str,
    reason: str,
    payload: dict[str, Any],
) -> EventOutcome:
    """Keep a delivered item that raises nothing (a mapping miss: `ignored`; an item the
    event path refused: `failed`), once per (source, id), so people can see why."""
    record, duplicate = await _record(
        session,
        workspace_id=workspace_id,
        source=source,
        external_id=external_id,
        event_type=label[:60] or "unmapped",
        occurred_at=utcnow(),
        payload=_jsonable(payload),
    )
    if not duplicate:
        _decide(record, outcome, reason[:2000])
        await session.flush()
    return EventOutcome(event=record, duplicate=duplicate)


async def _record(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    source: str,
    external_id: str,
    event_type: str,
    occurred_at: Any,
    payload: dict[str, Any],
) -> tuple[LifecycleEvent, bool]:
    """Insert the event row unless (workspace, source, id) exists; on a repeat, count it and
    return the first row. The unique constraint decides, so concurrent repeats are safe."""
    inserted = await session.scalar(
        _INSERT_IGNORING_DUPLICATES[session.get_bind().dialect.name],
        {
            "id": uuid7(),
            "workspace_id": workspace_id,
            "source": source,
            "external_id": external_id,
            "type": event_type,
            "occurred_at": occurred_at,
            "payload": payload,
            "outcome": "received",
            "duplicates": 0,
            "received_at": utcnow(),
        },
    )
    if inserted is not None:
        return inserted, False
    first = await session.scalar(
        _COUNT_DUPLICATE,
        {
            "workspace": workspace_id,
            "from_source": source,
            "external": external_id,
            "now": utcnow(),
        },
    )
    assert first is not None
    return first, True


async def _process_or_keep(
    session: AsyncSession,
    record: LifecycleEvent,
    account: Account,
    actor: str | None,
    *,
    playbook_version: int | None,
    new_account: bool = False,
    note: str | None = None,
) -> None:
    """Process the event; if something unexpected breaks, keep it as `failed` for replay.

    Domain errors (bad input, conflicts) still propagate: the caller gets a 4xx and nothing
    is acknowledged. Anything else is a fault on our side, and an acknowledged event must
    not be lost to it: its effects roll back to a savepoint and the event row stays.
    """
    # Rolling back the savepoint expires what it touched: keep what we need to say why.
    account_id, label = account.id, f"{record.source}:{record.external_id}"
    try:
        async with session.begin_nested():
            await _process(
                session,
                record,
                account,
                actor,
                playbook_version=playbook_version,
                new_account=new_account,
                note=note,
            )
    except QuarterbackError:
        raise
    except Exception as exc:
        logger.exception("event %s failed; kept for replay", label)
        await session.refresh(record)
        record.account_id = account_id
        _decide(record, "failed", f"{type(exc).__name__}: {exc}"[:2000])
        await session.flush()


async def _process(
    session: AsyncSession,
    record: LifecycleEvent,
    account: Account,
    actor: str | None,
    *,
    playbook_version: int | None,
    new_account: bool = False,
    note: str | None = None,
) -> None:
    """Record the deal facts the event carries, let the playbook decide, catch up pending.

    The event row's own changes (account, outcome, rule) are written by the one flush at the
    end; setting them earlier would make every query in between flush a separate UPDATE.
    """
    payload = record.payload
    # Opportunities and contracts are facts from the sender, whatever the stage decision.
    facts = await deals_service.record_deal_facts(
        session,
        workspace_id=record.workspace_id,
        account_id=account.id,
        source=record.source,
        event_type=record.type,
        opportunity=payload.get("opportunity"),
        contract=payload.get("contract"),
        occurred_at=record.occurred_at,
    )
    if facts.contract_created and facts.contract is not None:
        await playbook_hooks.contract_created(
            session,
            workspace_id=record.workspace_id,
            account_id=account.id,
            contract_id=facts.contract.id,
            ends_on=facts.contract.ends_on,
        )
    playbook = await playbooks_service.playbook_in_force(
        session, workspace_id=record.workspace_id, version=playbook_version
    )
    await _evaluate(session, record, account, actor, playbook)
    record.account_id = account.id
    # A pending event waits for a move of an account it names; one just created has none.
    if record.outcome == "applied" and not new_account:
        await _retry_pending(session, record.workspace_id, account.id, actor)
    if note and record.reason is None:
        record.reason = note
    await session.flush()


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
    EVENTS.labels(outcome).inc()


async def _resolve_account(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    source: str,
    event: dict[str, Any],
    account_id: uuid.UUID | None,
    actor: str | None,
) -> _Found:
    """The account the event names; an `opportunity_created` for an unknown one creates it."""
    ref = event.get("account") or {}
    account_id = account_id or (uuid.UUID(str(ref["id"])) if ref.get("id") else None)
    if account_id is not None:
        by_id = {"workspace": workspace_id, "account": account_id}
        row = (await session.execute(_ACCOUNT_BY_ID, by_id)).first()
        if row is None:
            raise NotFound(f"account {account_id} not found")
        return _Found(row.Account, row.playbook_version)
    external_id = ref.get("external_id")
    names = {"workspace": workspace_id, "from_source": source, "external": external_id}
    if event["type"] not in CREATES_ACCOUNT:
        row = (await session.execute(_ACCOUNT_BY_EXTERNAL_ID, names)).first()
        return _Found(row.Account, row.playbook_version) if row else _Found(None, None)
    row = (await session.execute(_ACCOUNT_OR_WAITING, names)).one()
    if row.Account is not None:
        return _Found(row.Account, row.playbook_version)
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
        external_ids_checked=True,  # the lookup above found no account under this id
        first_stage=(row.first_stage, row.first_quarterback) if row.first_stage else None,
    )
    return _Found(view.account, row.playbook_version, created=True, waiting=row.waiting)


def _facts(record: LifecycleEvent, account: Account) -> Facts:
    payload = record.payload
    return Facts(
        event_type=record.type,
        event_id=record.external_id,
        source=record.source,
        stage=account.stage,
        segment=account.segment,
        arr=account.arr,
        data=dict(payload.get("data") or {}),
        to_stage=payload.get("to_stage"),
    )


async def _evaluate(
    session: AsyncSession,
    record: LifecycleEvent,
    account: Account,
    actor: str | None,
    playbook: Playbook | None = None,
) -> None:
    """Let the playbook (by default the one in force now) decide, then carry the decision
    out in this transaction."""
    if playbook is None:
        playbook = await playbooks_service.current_playbook(
            session, workspace_id=record.workspace_id
        )
    facts = _facts(record, account)
    decision = decide(playbook, facts)
    record.playbook_version = playbook.version or None
    record.rule = decision.rule.name if decision.rule else None
    if decision.outcome != "apply":
        _decide(record, decision.outcome, decision.reason)
        return
    transition_id = None
    if decision.to_stage is not None:
        rule = f"; rule {decision.rule.name!r}" if decision.rule else ""
        result = await transition_account(
            session,
            workspace_id=record.workspace_id,
            account_id=account.id,
            to_stage=decision.to_stage,
            reason=f"{record.type} ({record.source}:{record.external_id}){rule}",
            cause="event",
            actor=actor,
            skipped_stages=decision.skipped,
        )
        transition_id = result.transition["id"]
    if decision.rule is not None and decision.rule.tasks:
        await _raise_rule_tasks(session, playbook, decision, facts, account, transition_id, actor)
    note = None
    if decision.rule is not None and decision.rule.scaffold_plan:
        note = await _scaffold_plan(session, playbook, record, account, actor)
    record.transition_id = transition_id
    _decide(record, "applied", note)


async def _scaffold_plan(
    session: AsyncSession,
    playbook: Playbook,
    record: LifecycleEvent,
    account: Account,
    actor: str | None,
) -> str | None:
    """The year's success plan, dated by the contract the event produced when there is one."""
    contract = await deals_service.latest_active_contract(
        session, workspace_id=record.workspace_id, account_id=account.id
    )
    starts_on = contract.starts_on if contract else record.occurred_at.date()
    template = playbook.success_plan
    try:
        plan = await plans_service.scaffold_plan(
            session,
            workspace_id=record.workspace_id,
            account_id=account.id,
            starts_on=starts_on,
            ends_on=contract.ends_on if contract else None,
            timeline=template.get("timeline"),
            touchpoints=template.get("touchpoints"),
            actor=actor,
        )
    except Conflict as exc:
        # The move stands; the plan needs a person (its dates clash with an existing year).
        return f"success plan not scaffolded: {exc.detail}"
    await playbook_hooks.plan_scaffolded(session, plan=plan)
    return None


async def _raise_rule_tasks(
    session: AsyncSession,
    playbook: Playbook,
    decision: Decision,
    facts: Facts,
    account: Account,
    transition_id: uuid.UUID | None,
    actor: str | None,
) -> None:
    workspace = (
        await session.execute(
            select(
                col(Workspace.renewal_quarterback),
                col(Workspace.timezone),
                col(Workspace.holiday_calendar),
            ).where(col(Workspace.id) == account.workspace_id)
        )
    ).one()
    owners = {
        owner.department: Owner(owner.user_id, owner.user_name)
        for owner in await session.scalars(
            select(AccountOwner).where(col(AccountOwner.account_id) == account.id)
        )
    }
    effects = plan_effects(
        playbook,
        decision,
        facts,
        account={"name": account.name, "domain": account.domain, "segment": account.segment},
        owners=owners,
        renewal_owner=workspace.renewal_quarterback,
    )
    for task in effects.tasks:
        await tasks_service.raise_task(
            session,
            workspace_id=account.workspace_id,
            account_id=account.id,
            title=task.title,
            department=task.department,
            timezone=workspace.timezone,
            calendar=workspace.holiday_calendar,
            due_in_business_days=task.due_in_business_days,
            priority=task.priority,
            checklist=task.checklist,
            assignee_id=task.assignee.user_id if task.assignee else None,
            assignee_name=task.assignee.name if task.assignee else None,
            transition_id=transition_id,
            actor=actor,
        )


async def _adopt_waiting_events(
    session: AsyncSession, record: LifecycleEvent, account_id: uuid.UUID
) -> bool:
    """Give the account just created the pending events that named it before it existed.

    They were kept `pending` with no account ("no account … yet"); from now on they are the
    account's pending events, retried after each move like any other. True if there were any.
    """
    external_id = (record.payload.get("account") or {}).get("external_id")
    if external_id is None:
        return False
    adopted = await session.execute(
        _ADOPT_WAITING,
        {
            "workspace": record.workspace_id,
            "from_source": record.source,
            "external": str(external_id),
            "account": account_id,
        },
    )
    return adopted.first() is not None


async def _retry_pending(
    session: AsyncSession, workspace_id: uuid.UUID, account_id: uuid.UUID, actor: str | None
) -> None:
    """Apply the account's pending events that the last move made possible, oldest first."""
    while True:
        await session.flush()  # the query below must see the outcomes decided so far
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
    if outcome == "duplicate":
        statement = statement.where(col(LifecycleEvent.duplicates) > 0)
    elif outcome:
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
    found = await _resolve_account(
        session, workspace_id, record.source, record.payload, record.account_id, actor
    )
    if found.account is None:
        _decide(record, "pending", f"no account {_account_ref(record.payload)} yet")
        await session.flush()
    else:
        waiting = found.waiting and await _adopt_waiting_events(session, record, found.account.id)
        await _process_or_keep(
            session,
            record,
            found.account,
            actor,
            playbook_version=found.playbook_version,
            new_account=found.created and not waiting,
        )
    return record
