"""Accounts: create, read, list (with their owners and external ids in two batched queries)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Insert, Select, delete, func, insert, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import col

from service.accounts.models import Account, AccountExternalId, AccountOwner, StageTransition
from service.db import tables
from service.db.types import utcnow, uuid7
from service.errors import Conflict, InvalidInput, NotFound
from service.kit.pagination import (
    decode_cursor,
    decode_keyset_cursor,
    encode_keyset_cursor,
    invalid_cursor,
    trim_page,
)
from service.lifecycle import service as lifecycle_service
from service.lifecycle.models import Stage
from service.lifecycle.transitions import INSERT_TRANSITION, initial_stage_row

# Rows of a new account's owners and ids: nothing reads them back as objects.
INSERT_OWNERS = insert(tables.account_owners)
INSERT_EXTERNAL_IDS = insert(tables.account_external_ids)


def _insert_new_account(with_external_id: bool) -> Insert:
    """PostgreSQL: a new account, its first history row and, if asked, its one external id,
    in one round trip; the account is a WITH clause, and the other rows' foreign keys are
    checked at the end of the statement. (SQLite has no INSERT inside WITH.)"""
    ctes = [tables.insert_every_column(tables.accounts, "account_").cte("new_account")]
    if with_external_id:
        id_insert = tables.insert_every_column(tables.account_external_ids, "external_id_")
        ctes.append(id_insert.cte("new_external_id"))
    return tables.insert_every_column(tables.stage_transitions, "history_").add_cte(*ctes)


# By how many external ids the new account has (events create accounts with one).
_INSERT_NEW_ACCOUNT = {count: _insert_new_account(count == 1) for count in (0, 1)}


@dataclass
class AccountView:
    """An account with what belongs to it, ready to render."""

    account: Account
    quarterback: str | None
    owners: dict[str, dict[str, Any]] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.account.model_dump(),
            "quarterback": self.quarterback,
            "owners": self.owners,
            "external_ids": self.external_ids,
        }


@dataclass(frozen=True)
class AccountFilter:
    stage: str | None = None
    segment: str | None = None
    owner_id: str | None = None
    search: str | None = None
    external_id: str | None = None


def parse_external_ref(value: str) -> tuple[str, str]:
    source, sep, external_id = value.partition(":")
    if not sep or not source or not external_id:
        raise InvalidInput(
            "external_id must look like SOURCE:ID, e.g. hubspot:123",
            errors=[{"field": "external_id", "in": "query", "message": "expected SOURCE:ID"}],
        )
    return source, external_id


async def _check_departments(
    session: AsyncSession, workspace_id: uuid.UUID, departments: set[str]
) -> None:
    if not departments:
        return
    known = await lifecycle_service.department_keys(session, workspace_id=workspace_id)
    unknown = sorted(departments - known)
    if unknown:
        raise InvalidInput(
            f"unknown department {', '.join(unknown)}; one of {', '.join(sorted(known))}",
            errors=[{"field": "owners", "in": "body", "message": "unknown department"}],
        )


async def _check_external_ids_free(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    external_ids: dict[str, str],
    account_id: uuid.UUID | None = None,
) -> None:
    if not external_ids:
        return
    clauses = [
        (col(AccountExternalId.source) == source)
        & (col(AccountExternalId.external_id) == external_id)
        for source, external_id in external_ids.items()
    ]
    statement = select(AccountExternalId).where(
        col(AccountExternalId.workspace_id) == workspace_id, or_(*clauses)
    )
    for taken in (await session.scalars(statement)).all():
        if taken.account_id != account_id:
            raise Conflict(
                f"{taken.source}:{taken.external_id} already belongs to account {taken.account_id}",
                account_id=str(taken.account_id),
            )


async def create_account(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    name: str,
    domain: str | None = None,
    segment: str = "mid_touch",
    arr: Decimal = Decimal("0"),
    currency: str = "USD",
    stage: str | None = None,
    owners: dict[str, dict[str, Any]] | None = None,
    external_ids: dict[str, str] | None = None,
    actor: str | None = None,
    external_ids_checked: bool = False,
    first_stage: tuple[str, str] | None = None,
) -> AccountView:
    """Create an account at `stage` (default: the workspace's first stage).

    `external_ids_checked` skips the query that refuses ids already taken, and `first_stage`
    (the first stage's key and quarterback) the query of the stages, for a caller that has
    just read them itself (the event path); the unique constraint still holds.
    """
    owners = owners or {}
    external_ids = external_ids or {}
    if stage is None and first_stage is not None:
        stage, quarterback = first_stage
    else:
        stages = await lifecycle_service.stage_quarterbacks(session, workspace_id=workspace_id)
        stage = stage or next(iter(stages), None)  # the playbook's first stage
        if stage is None or stage not in stages:
            raise InvalidInput(
                f"unknown stage {stage!r}; one of {', '.join(stages)}",
                errors=[{"field": "stage", "in": "body", "message": "unknown stage"}],
            )
        quarterback = stages[stage]
    await _check_departments(session, workspace_id, set(owners))
    if not external_ids_checked:
        await _check_external_ids_free(session, workspace_id, external_ids)
    now = utcnow()
    account = Account(
        id=uuid7(),
        workspace_id=workspace_id,
        name=name,
        domain=domain,
        segment=segment,
        arr=arr,
        currency=currency,
        stage=stage,
        stage_entered_at=now,
        created_at=now,
        updated_at=now,
    )
    history = initial_stage_row(
        workspace_id=workspace_id, account_id=account.id, stage=stage, actor=actor, now=now
    )
    id_rows = _external_id_rows(account, external_ids)
    connection = await session.connection()
    if connection.dialect.name == "postgresql" and not owners and len(id_rows) <= 1:
        values = {column.name: getattr(account, column.name) for column in tables.accounts.c}
        await connection.execute(
            _INSERT_NEW_ACCOUNT[len(id_rows)],
            tables.prefixed(values, "account_")
            | tables.prefixed(history, "history_")
            | (tables.prefixed(id_rows[0], "external_id_") if id_rows else {}),
        )
        # Persistent as if just loaded: the session has nothing left to insert for it.
        make_transient_to_detached(account)
        session.add(account)
    else:
        session.add(account)
        await session.flush()
        await _write_owners(session, account, owners, new=True)
        if id_rows:
            await connection.execute(INSERT_EXTERNAL_IDS, id_rows)
        await connection.execute(INSERT_TRANSITION, history)
    return AccountView(
        account=account,
        quarterback=quarterback,
        owners={
            dept: {"user_id": o["user_id"], "name": o.get("name")} for dept, o in owners.items()
        },
        external_ids=dict(external_ids),
    )


async def _write_owners(
    session: AsyncSession,
    account: Account,
    owners: Mapping[str, dict[str, Any] | None],
    new: bool = False,
) -> None:
    if not owners:
        return
    if not new:  # a new account has nothing to replace
        await session.execute(
            delete(AccountOwner).where(
                col(AccountOwner.account_id) == account.id,
                col(AccountOwner.department).in_(list(owners)),
            )
        )
    rows = [
        {
            "id": uuid7(),
            "workspace_id": account.workspace_id,
            "account_id": account.id,
            "department": department,
            "user_id": owner["user_id"],
            "user_name": owner.get("name"),
        }
        for department, owner in owners.items()
        if owner is not None
    ]
    if rows:
        connection = await session.connection()
        await connection.execute(INSERT_OWNERS, rows)


async def _write_external_ids(
    session: AsyncSession,
    account: Account,
    external_ids: Mapping[str, str | None],
    new: bool = False,
) -> None:
    if not external_ids:
        return
    if not new:  # a new account has nothing to replace
        await session.execute(
            delete(AccountExternalId).where(
                col(AccountExternalId.account_id) == account.id,
                col(AccountExternalId.source).in_(list(external_ids)),
            )
        )
    rows = _external_id_rows(account, external_ids)
    if rows:
        connection = await session.connection()
        await connection.execute(INSERT_EXTERNAL_IDS, rows)


def _external_id_rows(
    account: Account, external_ids: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid7(),
            "workspace_id": account.workspace_id,
            "account_id": account.id,
            "source": source,
            "external_id": external_id,
        }
        for source, external_id in external_ids.items()
        if external_id is not None
    ]


async def _views(
    session: AsyncSession, workspace_id: uuid.UUID, accounts: list[Account]
) -> list[AccountView]:
    """Attach owners, external ids and quarterbacks: three queries whatever the page size."""
    if not accounts:
        return []
    ids = [account.id for account in accounts]
    quarterbacks = dict(
        (
            await session.execute(
                select(col(Stage.key), col(Stage.quarterback)).where(
                    col(Stage.workspace_id) == workspace_id
                )
            )
        ).all()
    )
    owners: dict[uuid.UUID, dict[str, dict[str, Any]]] = defaultdict(dict)
    owner_rows = await session.scalars(
        select(AccountOwner).where(
            col(AccountOwner.workspace_id) == workspace_id, col(AccountOwner.account_id).in_(ids)
        )
    )
    for owner in owner_rows:
        owners[owner.account_id][owner.department] = {
            "user_id": owner.user_id,
            "name": owner.user_name,
        }
    external: dict[uuid.UUID, dict[str, str]] = defaultdict(dict)
    external_rows = await session.scalars(
        select(AccountExternalId).where(
            col(AccountExternalId.workspace_id) == workspace_id,
            col(AccountExternalId.account_id).in_(ids),
        )
    )
    for ref in external_rows:
        external[ref.account_id][ref.source] = ref.external_id
    return [
        AccountView(
            account=account,
            quarterback=quarterbacks.get(account.stage),
            owners=owners.get(account.id, {}),
            external_ids=external.get(account.id, {}),
        )
        for account in accounts
    ]


async def get_account_row(
    session: AsyncSession, workspace_id: uuid.UUID, account_id: uuid.UUID
) -> Account:
    """The account in this workspace, or NotFound."""
    account = await session.scalar(
        select(Account).where(
            col(Account.workspace_id) == workspace_id, col(Account.id) == account_id
        )
    )
    if account is None:
        raise NotFound(f"account {account_id} not found")
    return account


async def get_account(
    session: AsyncSession, *, workspace_id: uuid.UUID, account_id: uuid.UUID
) -> AccountView:
    account = await get_account_row(session, workspace_id, account_id)
    return (await _views(session, workspace_id, [account]))[0]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(workspace_id: uuid.UUID, filters: AccountFilter) -> Select[Any]:
    statement = select(Account).where(col(Account.workspace_id) == workspace_id)
    if filters.stage:
        statement = statement.where(col(Account.stage) == filters.stage)
    if filters.segment:
        statement = statement.where(col(Account.segment) == filters.segment)
    if filters.owner_id:
        statement = statement.where(
            col(Account.id).in_(
                select(col(AccountOwner.account_id)).where(
                    col(AccountOwner.workspace_id) == workspace_id,
                    col(AccountOwner.user_id) == filters.owner_id,
                )
            )
        )
    if filters.search:
        pattern = f"%{_escape_like(filters.search.lower())}%"
        statement = statement.where(func.lower(col(Account.name)).like(pattern, escape="\\"))
    if filters.external_id:
        source, external_id = parse_external_ref(filters.external_id)
        statement = statement.where(
            col(Account.id).in_(
                select(col(AccountExternalId.account_id)).where(
                    col(AccountExternalId.workspace_id) == workspace_id,
                    col(AccountExternalId.source) == source,
                    col(AccountExternalId.external_id) == external_id,
                )
            )
        )
    return statement


# Orders a list can take besides creation (id) order; each is a keyset on (column, id).
ACCOUNT_ORDERS: dict[str, Any] = {
    "name": col(Account.name),
    "arr": col(Account.arr),
    "stage_entered_at": col(Account.stage_entered_at),
}


def _after_sort_key(order_by: str, cursor: str) -> tuple[Any, uuid.UUID]:
    value, after = decode_keyset_cursor(cursor)
    try:
        if order_by == "arr":
            return Decimal(value), after
        if order_by == "stage_entered_at":
            return datetime.fromisoformat(value), after
        if not isinstance(value, str):
            raise ValueError(value)
    except (ValueError, ArithmeticError):
        raise invalid_cursor() from None
    return value, after


async def list_accounts(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    filters: AccountFilter,
    limit: int,
    cursor: str | None,
    order_by: str = "id",
    descending: bool = False,
) -> tuple[list[AccountView], str | None]:
    """A page of accounts with their owners, external ids and quarterbacks."""
    accounts, next_cursor = await list_account_rows(
        session,
        workspace_id=workspace_id,
        filters=filters,
        limit=limit,
        cursor=cursor,
        order_by=order_by,
        descending=descending,
    )
    return await _views(session, workspace_id, accounts), next_cursor


async def list_account_rows(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    filters: AccountFilter,
    limit: int,
    cursor: str | None,
    order_by: str = "id",
    descending: bool = False,
) -> tuple[list[Account], str | None]:
    """A page of account rows in creation order, or by name, ARR or stage entry
    (`order_by`), ties broken by id; `next_cursor` continues in the same order."""
    statement = _filtered(workspace_id, filters)
    if order_by == "id":
        after = decode_cursor(cursor)
        if after is not None:
            statement = statement.where(
                col(Account.id) < after if descending else col(Account.id) > after
            )
        id_order = col(Account.id).desc() if descending else col(Account.id)
        accounts = list(
            (await session.scalars(statement.order_by(id_order).limit(limit + 1))).all()
        )
        return trim_page(accounts, limit, lambda account: account.id)
    column = ACCOUNT_ORDERS.get(order_by)
    if column is None:
        raise InvalidInput(f"accounts can be ordered by id, {', '.join(ACCOUNT_ORDERS)}")
    if cursor:
        value, after = _after_sort_key(order_by, cursor)
        key = tuple_(column, col(Account.id))
        bound = tuple_(literal(value, column.type), literal(after))
        statement = statement.where(key < bound if descending else key > bound)
    ordering = (column.desc(), col(Account.id).desc()) if descending else (column, col(Account.id))
    accounts = list((await session.scalars(statement.order_by(*ordering).limit(limit + 1))).all())
    next_cursor = None
    if len(accounts) > limit:
        accounts = accounts[:limit]
        last = accounts[-1]
        next_cursor = encode_keyset_cursor(getattr(last, order_by), last.id)
    return accounts, next_cursor


async def count_accounts(
    session: AsyncSession, *, workspace_id: uuid.UUID, filters: AccountFilter
) -> int:
    """How many accounts match the filters (the total behind a paged list)."""
    inner = _filtered(workspace_id, filters).with_only_columns(col(Account.id)).subquery()
    return int(await session.scalar(select(func.count()).select_from(inner)) or 0)


async def update_account(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    changes: dict[str, Any],
) -> AccountView:
    account = await get_account_row(session, workspace_id, account_id)
    owners = changes.pop("owners", None)
    external_ids = changes.pop("external_ids", None)
    if owners:
        await _check_departments(session, workspace_id, set(owners))
    if external_ids:
        await _check_external_ids_free(
            session,
            workspace_id,
            {k: v for k, v in external_ids.items() if v is not None},
            account_id=account.id,
        )
    for name, value in changes.items():
        if value is None and name != "domain":
            raise InvalidInput(f"{name} cannot be null", errors=[{"field": name, "in": "body"}])
        setattr(account, name, value)
    account.updated_at = utcnow()
    await session.flush()
    if owners:
        await _write_owners(session, account, owners)
    if external_ids:
        await _write_external_ids(session, account, external_ids)
    return (await _views(session, workspace_id, [account]))[0]


async def list_transitions(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    limit: int,
    cursor: str | None,
) -> tuple[list[StageTransition], str | None]:
    await get_account_row(session, workspace_id, account_id)
    statement = select(StageTransition).where(
        col(StageTransition.workspace_id) == workspace_id,
        col(StageTransition.account_id) == account_id,
    )
    after = decode_cursor(cursor)
    if after is not None:
        statement = statement.where(col(StageTransition.id) > after)
    rows = list(
        (await session.scalars(statement.order_by(col(StageTransition.id)).limit(limit + 1))).all()
    )
    return trim_page(rows, limit, lambda row: row.id)
