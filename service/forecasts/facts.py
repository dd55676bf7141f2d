"""Renewal facts: per contract, what the forecast's signals read, kept in one table.

Joining contracts to accounts, owners, open tasks, success plans (with outcomes and
measurements), renewal opportunities and overrides on every forecast was most of its cost:
at 100k renewals the joins took ~2.5x the raw aggregate (bench/forecast.py). The forecast
now reads `renewal_facts`, and this module brings that table up to date first:

* database triggers (migration 0013) mark an account in `renewal_facts_stale` in the same
  transaction as any change to a row its facts come from, whichever code writes it;
* before a forecast reads, the marked accounts' facts are computed again from the live
  tables (`live_facts`, the same statement the forecast used to run), and the marks go;
* overdue tasks and plan health are facts as of a day, so on a new day in the workspace's
  time zone the whole workspace is computed again (by a worker at midnight,
  service.forecasts.facts_schedule, else by the day's first forecast), as it is when the
  department that owns renewals changes. `renewal_facts_state` records both, and the last
  day a forecast read the facts.

So a forecast is as fresh as a live query: a change committed before the forecast starts is
in it. Marks are taken off before the facts are computed again, in the same transaction: a
change that commits in between keeps its mark (at worst its account is computed twice).
Refreshes of one workspace take turns (a transaction-scoped advisory lock on PostgreSQL;
SQLite writers already do).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.selectable import Select, Subquery
from sqlmodel import col

from service.accounts.models import Account, AccountOwner
from service.db import tables
from service.db.types import utcnow
from service.deals.models import Contract, Opportunity
from service.forecasts.models import ForecastOverride
from service.forecasts.plan_signals import plan_facts
from service.forecasts.sqldates import plan_for_these_values
from service.plans.models import SuccessPlan
from service.tasks.models import Task

OPEN_TASK = ("open", "in_progress")
ESCALATION = "escalation"
# Beyond this many marked accounts, one pass over the workspace costs less than looking each
# up (and keeps the statement's list of ids far below either database's parameter limit).
MOST_ACCOUNTS_REFRESHED_ONE_BY_ONE = 2_000

_WORKSPACE = bindparam("facts_workspace", type_=tables.contracts.c.workspace_id.type)
_AS_OF = bindparam("facts_as_of", type_=tables.contracts.c.ends_on.type)
_RENEWAL_OWNER = bindparam("facts_renewal_owner", type_=tables.account_owners.c.department.type)
_ACCOUNTS = bindparam("facts_accounts", type_=tables.contracts.c.account_id.type, expanding=True)


def _latest_per_contract(model: Any, value: Any, *where: Any) -> Subquery:
    """The newest row's `value` per contract (ids are time-ordered), as a joinable table."""
    rank = (
        func.row_number()
        .over(partition_by=col(model.contract_id), order_by=col(model.id).desc())
        .label("rank")
    )
    ranked = (
        select(col(model.contract_id).label("contract_id"), value.label("value"), rank)
        .where(col(model.workspace_id) == _WORKSPACE, *where)
        .subquery()
    )
    return (
        select(ranked.c.contract_id, ranked.c.value)
        .where(ranked.c.rank == 1)
        .subquery(f"latest_{model.__tablename__}")
    )


def live_facts(*, some_accounts: bool) -> Select[Any]:
    """Each contract of the workspace (or of the accounts `_ACCOUNTS`) with its facts, from
    the live tables, in the columns of `renewal_facts`.

    Per-account facts (tasks, plans, opportunities, overrides) are aggregated once and joined,
    rather than looked up per contract, so the statement stays a few hash joins."""
    ws = _WORKSPACE

    def of_accounts(column: Any) -> list[Any]:
        return [column.in_(_ACCOUNTS)] if some_accounts else []

    task_facts = (
        select(
            col(Task.account_id).label("account_id"),
            func.sum(case((col(Task.due_on) < _AS_OF, 1), else_=0)).label("overdue"),
            func.sum(case((col(Task.kind) == ESCALATION, 1), else_=0)).label("escalations"),
        )
        .where(
            col(Task.workspace_id) == ws,
            col(Task.status).in_(OPEN_TASK),
            *of_accounts(col(Task.account_id)),
        )
        .group_by(col(Task.account_id))
        .subquery("task_facts")
    )
    plans = plan_facts(ws, _AS_OF, *of_accounts(col(SuccessPlan.account_id)))
    opportunity = _latest_per_contract(
        Opportunity,
        col(Opportunity.status),
        col(Opportunity.kind) == "renewal",
        *of_accounts(col(Opportunity.account_id)),
    )
    override = _latest_per_contract(
        ForecastOverride,
        col(ForecastOverride.probability),
        *of_accounts(col(ForecastOverride.account_id)),
    )
    owner = and_(
        col(AccountOwner.workspace_id) == ws,
        col(AccountOwner.account_id) == col(Contract.account_id),
        col(AccountOwner.department) == _RENEWAL_OWNER,
    )
    return (
        select(
            col(Contract.id).label("contract_id"),
            col(Contract.workspace_id).label("workspace_id"),
            col(Contract.account_id).label("account_id"),
            col(Account.name).label("account_name"),
            col(Contract.ends_on).label("renewal_date"),
            col(Contract.currency).label("currency"),
            type_coerce(col(Contract.arr), BigInteger).label("arr_cents"),
            col(Contract.status).label("status"),
            case((col(Contract.auto_renew), 1), else_=0).label("auto_renew"),
            col(Account.segment).label("segment"),
            col(Account.stage).label("stage"),
            col(Account.stage_entered_at).label("stage_entered_at"),
            col(AccountOwner.user_id).label("owner_id"),
            col(AccountOwner.user_name).label("owner_name"),
            func.coalesce(plans.c.outcomes_achieved, 0).label("outcomes_achieved"),
            func.coalesce(plans.c.outcomes_missed, 0).label("outcomes_missed"),
            plans.c.plan_health.label("plan_health"),
            func.coalesce(task_facts.c.overdue, 0).label("overdue_tasks"),
            func.coalesce(task_facts.c.escalations, 0).label("escalations"),
            opportunity.c.value.label("renewal_opportunity"),
            override.c.value.label("override"),
        )
        .select_from(Contract)
        .join(
            Account,
            and_(col(Account.id) == col(Contract.account_id), col(Account.workspace_id) == ws),
        )
        .outerjoin(AccountOwner, owner)
        .outerjoin(task_facts, task_facts.c.account_id == col(Contract.account_id))
        .outerjoin(plans, plans.c.account_id == col(Contract.account_id))
        .outerjoin(opportunity, opportunity.c.contract_id == col(Contract.id))
        .outerjoin(override, override.c.contract_id == col(Contract.id))
        .where(col(Contract.workspace_id) == ws, *of_accounts(col(Contract.account_id)))
    )


# Built once: each is a fixed shape run with bound values.
_facts = tables.renewal_facts
_stale = tables.renewal_facts_stale
_state = tables.renewal_facts_state
_COLUMNS = [column.name for column in _facts.c]


def _upsert(some_accounts: bool) -> dict[str, Any]:
    """Per dialect, INSERT the live facts, updating a contract's row only where a fact
    differs: a day's refresh of a whole workspace rewrites the few rows that changed, not all
    of them (each rewritten row is a dead tuple and WAL on PostgreSQL).

    No row is ever deleted here: a deleted contract takes its facts with it (foreign key
    cascade), and every contract of the workspace has a row of `live_facts`."""
    statements = {}
    for module in (postgresql, sqlite):
        statement = module.insert(_facts).from_select(
            _COLUMNS, live_facts(some_accounts=some_accounts)
        )
        facts = [name for name in _COLUMNS if name not in ("contract_id", "workspace_id")]
        statements[module.dialect.name] = statement.on_conflict_do_update(
            index_elements=[_facts.c.contract_id],
            set_={name: statement.excluded[name] for name in facts},
            where=or_(
                *(_facts.c[name].is_distinct_from(statement.excluded[name]) for name in facts)
            ),
        )
    return statements


_UPSERT_ALL = _upsert(some_accounts=False)
_UPSERT_SOME = _upsert(some_accounts=True)
_UNMARK_ALL = delete(_stale).where(_stale.c.workspace_id == _WORKSPACE)
_TAKE_MARKS = _UNMARK_ALL.returning(_stale.c.account_id)
_STATE = select(_state.c.as_of, _state.c.renewal_owner, _state.c.read_on).where(
    _state.c.workspace_id == _WORKSPACE
)
_FORGET_STATE = delete(_state).where(_state.c.workspace_id == _WORKSPACE)
_READ_ON = bindparam("facts_read_on", type_=_state.c.read_on.type)
_RECORD_STATE = insert(_state).values(
    workspace_id=_WORKSPACE,
    as_of=_AS_OF,
    renewal_owner=_RENEWAL_OWNER,
    refreshed_at=bindparam("facts_refreshed_at", type_=_state.c.refreshed_at.type),
    read_on=_READ_ON,
)
_NOTE_READ = update(_state).where(_state.c.workspace_id == _WORKSPACE).values(read_on=_READ_ON)
# Two keys: this module's, and the workspace's (hashtext of its id; a collision only makes two
# workspaces' refreshes take turns).
_TAKE_TURNS = text(
    "SELECT pg_advisory_xact_lock(hashtext('quarterback.renewal_facts'), hashtext(:workspace))"
)


def is_current(held: tuple[date | None, str | None, bool], as_of: date, renewal_owner: str) -> bool:
    """Whether facts that are held for day `held[0]` and department `held[1]`, with marked
    accounts or not (`held[2]`), can be read as they are."""
    held_as_of, held_owner, any_marked = held
    return held_as_of == as_of and held_owner == renewal_owner and not any_marked


async def bring_up_to_date(
    session: AsyncSession, *, workspace_id: uuid.UUID, as_of: date, renewal_owner: str
) -> bool:
    """Compute again what changed of the workspace's renewal facts, or all of them when they
    are of another day or renewal department (then return True). Call it when `is_current`
    says they are not."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(_TAKE_TURNS, {"workspace": str(workspace_id)})
    values = {_WORKSPACE.key: workspace_id, _AS_OF.key: as_of, _RENEWAL_OWNER.key: renewal_owner}
    # Read again after taking our turn: the refresh before ours may have done the work.
    held = (await connection.execute(_STATE, values)).first()
    read_on = held.read_on if held is not None else None
    if held is None or (held.as_of, held.renewal_owner) != (as_of, renewal_owner):
        await _refresh_all(session, values | {_READ_ON.key: read_on})
        return True
    marked = list(set((await connection.execute(_TAKE_MARKS, values)).scalars()))
    if len(marked) > MOST_ACCOUNTS_REFRESHED_ONE_BY_ONE:
        await _refresh_all(session, values | {_READ_ON.key: read_on})
        return True
    if marked:
        dialect = connection.dialect.name
        await connection.execute(_UPSERT_SOME[dialect], values | {_ACCOUNTS.key: marked})
    return False


async def note_read(session: AsyncSession, *, workspace_id: uuid.UUID, on: date) -> None:
    """Record that a forecast read the workspace's facts on day `on` (done once a day)."""
    connection = await session.connection()
    await connection.execute(_NOTE_READ, {_WORKSPACE.key: workspace_id, _READ_ON.key: on})


async def _refresh_all(session: AsyncSession, values: dict[str, Any]) -> None:
    await plan_for_these_values(session)
    connection = await session.connection()
    # Marks first: a change committing after this point keeps its mark.
    await connection.execute(_UNMARK_ALL, values)
    written = await connection.execute(_UPSERT_ALL[connection.dialect.name], values)
    await connection.execute(_FORGET_STATE, values)
    await connection.execute(_RECORD_STATE, values | {"facts_refreshed_at": utcnow()})
    if connection.dialect.name == "postgresql":
        await _analyze_if_unknown(connection, written.rowcount)


# Rows written by one refresh from which the planner's lack of statistics matters: without
# them PostgreSQL takes the table for empty and sorts 100k renewals to group them.
_WORTH_ANALYZING = 10_000
_ROWS_KNOWN = text("SELECT reltuples FROM pg_class WHERE oid = 'renewal_facts'::regclass")


async def _analyze_if_unknown(connection: AsyncConnection, written: int) -> None:
    """ANALYZE the facts when a refresh wrote many more rows than the statistics know of.

    Autovacuum would, within a minute or so; a workspace's first forecast after a large
    import should not be planned as if it had no renewals until then. Once the table has
    statistics, a day's refresh rewrites only what changed and this does nothing."""
    if written < _WORTH_ANALYZING:
        return
    known = (await connection.execute(_ROWS_KNOWN)).scalar_one()
    if known < written / 2:  # -1 when the table was never analyzed
        await connection.execute(text("ANALYZE renewal_facts"))


__all__ = ["bring_up_to_date", "is_current", "live_facts", "note_read"]
