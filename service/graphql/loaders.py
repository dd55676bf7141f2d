"""Per-request dataloaders: every relation a GraphQL type follows is one batched query.

A page of 100 accounts asking for owners, open tasks and the last five transitions runs one
query per relation, not one per account. Lists per parent are capped with a window function
(`row_number() over (partition by parent ...)`), which SQLite and PostgreSQL both run.
Every query filters by the caller's workspace. Results come back in key order.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import SQLModel, col
from strawberry.dataloader import DataLoader

from service.accounts.models import Account, AccountExternalId, AccountOwner, StageTransition
from service.deals.models import Contract, Opportunity
from service.lifecycle.models import Department, LifecycleEvent, Stage
from service.plans import service as plans_service
from service.plans.models import Measurement
from service.plans.service import PlanView
from service.tasks.models import Task, TaskActivity

if TYPE_CHECKING:
    from service.graphql.context import Context

M = TypeVar("M", bound=SQLModel)
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Rows per parent a nested list returns at most (e.g. `transitions(last: 5)`).
MAX_NESTED = 100


async def rows_by_id(
    session: AsyncSession, model: type[M], workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[M | None]:
    model_any: Any = model
    rows = await session.scalars(
        select(model)
        .where(col(model_any.workspace_id) == workspace_id, col(model_any.id).in_(list(ids)))
        .execution_options(populate_existing=True)
    )
    found = {row.id: row for row in rows}  # type: ignore[attr-defined]
    return [found.get(key) for key in ids]


async def rows_per_parent(
    session: AsyncSession,
    model: type[M],
    parent: Any,
    workspace_id: uuid.UUID,
    parent_ids: Sequence[uuid.UUID],
    *,
    order_by: Sequence[Any],
    limit: int | None = None,
    where: Sequence[Any] = (),
) -> dict[uuid.UUID, list[M]]:
    """The rows of each parent, in `order_by` order, at most `limit` per parent."""
    model_any: Any = model
    conditions = [col(model_any.workspace_id) == workspace_id, parent.in_(list(parent_ids))]
    conditions.extend(where)
    if limit is None:
        statement: Any = select(model).where(*conditions).order_by(parent, *order_by)
    else:
        rank = func.row_number().over(partition_by=parent, order_by=list(order_by)).label("rank")
        ranked = select(model, rank).where(*conditions).subquery()
        row = aliased(model, ranked)
        statement = (
            select(row).where(ranked.c.rank <= limit).order_by(ranked.c[parent.key], ranked.c.rank)
        )
    grouped: dict[uuid.UUID, list[M]] = defaultdict(list)
    for found in await session.scalars(statement.execution_options(populate_existing=True)):
        grouped[getattr(found, parent.key)].append(found)
    return grouped


def _by_group(
    keys: Sequence[tuple[Any, ...]],
) -> dict[tuple[Any, ...], list[uuid.UUID]]:
    """Keys are (parent id, *options): parents that share options are loaded together."""
    groups: dict[tuple[Any, ...], list[uuid.UUID]] = defaultdict(list)
    for key in keys:
        groups[key[1:]].append(key[0])
    return groups


class Loaders:
    """The request's dataloaders, made on first use."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self._tables: dict[type[Any], dict[str, Any]] = {}

    def _loader(
        self,
        load: Callable[[AsyncSession, uuid.UUID, list[K]], Awaitable[Sequence[V]]],
    ) -> DataLoader[K, V]:
        context = self._context

        async def batch(keys: list[K]) -> Sequence[V]:
            async with context.reading() as session:
                return await load(session, context.workspace_id, keys)

        return DataLoader(load_fn=batch)

    def _by_id(self, model: type[M]) -> DataLoader[uuid.UUID, M | None]:
        async def load(
            session: AsyncSession, workspace_id: uuid.UUID, ids: list[uuid.UUID]
        ) -> list[M | None]:
            return await rows_by_id(session, model, workspace_id, ids)

        return self._loader(load)

    @cached_property
    def account(self) -> DataLoader[uuid.UUID, Account | None]:
        return self._by_id(Account)

    @cached_property
    def task(self) -> DataLoader[uuid.UUID, Task | None]:
        return self._by_id(Task)

    @cached_property
    def transition(self) -> DataLoader[uuid.UUID, StageTransition | None]:
        return self._by_id(StageTransition)

    @cached_property
    def opportunity(self) -> DataLoader[uuid.UUID, Opportunity | None]:
        return self._by_id(Opportunity)

    @cached_property
    def contract(self) -> DataLoader[uuid.UUID, Contract | None]:
        return self._by_id(Contract)

    @cached_property
    def event(self) -> DataLoader[uuid.UUID, LifecycleEvent | None]:
        return self._by_id(LifecycleEvent)

    @cached_property
    def stage(self) -> DataLoader[str, Stage | None]:
        """The workspace's stages, all loaded by the first look-up (a handful of rows)."""
        return self._whole_table(Stage)

    @cached_property
    def department(self) -> DataLoader[str, Department | None]:
        """The workspace's departments, all loaded by the first look-up."""
        return self._whole_table(Department)

    def _whole_table(self, model: type[M]) -> DataLoader[str, M | None]:
        """One query for the whole (small) table, whichever keys are asked for when."""
        tables = self._tables

        async def load(
            session: AsyncSession, workspace_id: uuid.UUID, keys: list[str]
        ) -> list[M | None]:
            if model not in tables:
                model_any: Any = model
                rows = await session.scalars(
                    select(model).where(col(model_any.workspace_id) == workspace_id)
                )
                tables[model] = {row.key: row for row in rows}  # type: ignore[attr-defined]
            found = tables[model]
            return [found.get(key) for key in keys]

        return self._loader(load)

    def _per_parent(
        self,
        model: type[M],
        parent: Any,
        order_by: Sequence[Any],
    ) -> DataLoader[tuple[uuid.UUID, int], list[M]]:
        """Keys are (parent id, limit)."""

        async def load(
            session: AsyncSession, workspace_id: uuid.UUID, keys: list[tuple[uuid.UUID, int]]
        ) -> list[list[M]]:
            found: dict[tuple[uuid.UUID, int], list[M]] = {}
            for (limit,), parent_ids in _by_group(keys).items():
                rows = await rows_per_parent(
                    session,
                    model,
                    parent,
                    workspace_id,
                    parent_ids,
                    order_by=order_by,
                    limit=limit,
                )
                for parent_id in parent_ids:
                    found[(parent_id, limit)] = rows.get(parent_id, [])
            return [found[key] for key in keys]

        return self._loader(load)

    def _all_per_parent(
        self, model: type[M], parent: Any, order_by: Sequence[Any]
    ) -> DataLoader[uuid.UUID, list[M]]:
        """For short lists (one row per department or source): all of them."""

        async def load(
            session: AsyncSession, workspace_id: uuid.UUID, keys: list[uuid.UUID]
        ) -> list[list[M]]:
            rows = await rows_per_parent(
                session, model, parent, workspace_id, keys, order_by=order_by
            )
            return [rows.get(key, []) for key in keys]

        return self._loader(load)

    @cached_property
    def owners(self) -> DataLoader[uuid.UUID, list[AccountOwner]]:
        return self._all_per_parent(
            AccountOwner, col(AccountOwner.account_id), [col(AccountOwner.department)]
        )

    @cached_property
    def external_ids(self) -> DataLoader[uuid.UUID, list[AccountExternalId]]:
        return self._all_per_parent(
            AccountExternalId, col(AccountExternalId.account_id), [col(AccountExternalId.source)]
        )

    @cached_property
    def account_transitions(self) -> DataLoader[tuple[uuid.UUID, int], list[StageTransition]]:
        """Newest first."""
        return self._per_parent(
            StageTransition, col(StageTransition.account_id), [col(StageTransition.id).desc()]
        )

    @cached_property
    def account_events(self) -> DataLoader[tuple[uuid.UUID, int], list[LifecycleEvent]]:
        """Newest first."""
        return self._per_parent(
            LifecycleEvent, col(LifecycleEvent.account_id), [col(LifecycleEvent.id).desc()]
        )

    @cached_property
    def account_opportunities(self) -> DataLoader[tuple[uuid.UUID, int], list[Opportunity]]:
        return self._per_parent(
            Opportunity, col(Opportunity.account_id), [col(Opportunity.id).desc()]
        )

    @cached_property
    def account_contracts(self) -> DataLoader[tuple[uuid.UUID, int], list[Contract]]:
        return self._per_parent(Contract, col(Contract.account_id), [col(Contract.id).desc()])

    @cached_property
    def outcome_measurements(self) -> DataLoader[tuple[uuid.UUID, int], list[Measurement]]:
        """Latest measured first."""
        return self._per_parent(
            Measurement,
            col(Measurement.outcome_id),
            [col(Measurement.measured_on).desc(), col(Measurement.id).desc()],
        )

    @cached_property
    def task_activity(self) -> DataLoader[tuple[uuid.UUID, int], list[TaskActivity]]:
        """Newest first."""
        return self._per_parent(
            TaskActivity, col(TaskActivity.task_id), [col(TaskActivity.id).desc()]
        )

    @cached_property
    def account_tasks(
        self,
    ) -> DataLoader[tuple[uuid.UUID, tuple[str, ...], int], list[Task]]:
        """Keys are (account id, statuses (empty: all), limit); oldest first."""

        async def load(
            session: AsyncSession,
            workspace_id: uuid.UUID,
            keys: list[tuple[uuid.UUID, tuple[str, ...], int]],
        ) -> list[list[Task]]:
            found: dict[tuple[uuid.UUID, tuple[str, ...], int], list[Task]] = {}
            for (statuses, limit), account_ids in _by_group(keys).items():
                rows = await rows_per_parent(
                    session,
                    Task,
                    col(Task.account_id),
                    workspace_id,
                    account_ids,
                    order_by=[col(Task.id)],
                    limit=limit,
                    where=[col(Task.status).in_(statuses)] if statuses else (),
                )
                for account_id in account_ids:
                    found[(account_id, statuses, limit)] = rows.get(account_id, [])
            return [found[key] for key in keys]

        return self._loader(load)

    @cached_property
    def plan(self) -> DataLoader[tuple[uuid.UUID, date | None], PlanView | None]:
        """Keys are (account id, as of); the latest contract year's plan, with its outcomes."""

        async def load(
            session: AsyncSession,
            workspace_id: uuid.UUID,
            keys: list[tuple[uuid.UUID, date | None]],
        ) -> list[PlanView | None]:
            found: dict[tuple[uuid.UUID, date | None], PlanView | None] = {}
            for (as_of,), account_ids in _by_group(keys).items():
                views = await plans_service.plan_views(
                    session, workspace_id=workspace_id, account_ids=account_ids, as_of=as_of
                )
                for account_id in account_ids:
                    found[(account_id, as_of)] = views.get(account_id)
            return [found[key] for key in keys]

        return self._loader(load)
