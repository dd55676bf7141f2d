"""Dataloaders for the operational-plan GraphQL types: a goal's weekly updates, and the plan
a dependency points at, each one batched query (or one `plan_views` call) per request.

They hang off the request's `Loaders` (service/graphql/loaders.py) without changing it: one
set per `Loaders` instance, so a mutation that renews the request's loaders renews these too.
"""

from __future__ import annotations

import uuid
import weakref
from datetime import date
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from strawberry.dataloader import DataLoader

from service.alignment.models import OperationalPlan, WeeklyUpdate
from service.alignment.views import PlanView, calendar, plan_views
from service.graphql.context import Context
from service.graphql.loaders import Loaders, rows_by_id, rows_per_parent

_BY_LOADERS: weakref.WeakKeyDictionary[Loaders, AlignmentLoaders] = weakref.WeakKeyDictionary()


class AlignmentLoaders:
    def __init__(self, context: Context) -> None:
        self._context = context

    async def _read(self, load: Any) -> Any:
        async with self._context.reading() as session:
            return await load(session, self._context.workspace_id)

    @cached_property
    def goal_updates(self) -> DataLoader[tuple[uuid.UUID, int], list[WeeklyUpdate]]:
        """Keys are (goal id, how many); the latest week first."""

        async def batch(keys: list[tuple[uuid.UUID, int]]) -> list[list[WeeklyUpdate]]:
            limit = max(key[1] for key in keys)

            async def load(session: AsyncSession, workspace_id: uuid.UUID) -> Any:
                return await rows_per_parent(
                    session,
                    WeeklyUpdate,
                    col(WeeklyUpdate.goal_id),
                    workspace_id,
                    list({key[0] for key in keys}),
                    order_by=[col(WeeklyUpdate.week).desc()],
                    limit=limit,
                )

            found = await self._read(load)
            return [found.get(goal_id, [])[:last] for goal_id, last in keys]

        return DataLoader(load_fn=batch)

    @cached_property
    def plan(self) -> DataLoader[tuple[uuid.UUID, date | None], PlanView | None]:
        """Keys are (plan id, as of); whole plan views, all asked-for plans in one go."""

        async def batch(keys: list[tuple[uuid.UUID, date | None]]) -> list[PlanView | None]:
            async def load(session: AsyncSession, workspace_id: uuid.UUID) -> Any:
                ids = list({key[0] for key in keys})
                plans = [
                    p for p in await rows_by_id(session, OperationalPlan, workspace_id, ids) if p
                ]
                cal = await calendar(session, workspace_id)
                views: dict[tuple[uuid.UUID, date | None], PlanView] = {}
                for as_of in {key[1] for key in keys}:
                    for view in await plan_views(session, cal, plans, as_of or cal.today):
                        views[(view.plan.id, as_of)] = view
                return views

            found = await self._read(load)
            return [found.get(key) for key in keys]

        return DataLoader(load_fn=batch)


def loaders_of(context: Context) -> AlignmentLoaders:
    loaders = _BY_LOADERS.get(context.loaders)
    if loaders is None:
        loaders = _BY_LOADERS[context.loaders] = AlignmentLoaders(context)
    return loaders
