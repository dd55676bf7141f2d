"""Reading a workspace's lifecycle model."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.lifecycle.models import Department, Stage


async def list_stages(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[Stage]:
    result = await session.execute(
        select(Stage).where(col(Stage.workspace_id) == workspace_id).order_by(col(Stage.position))
    )
    return list(result.scalars())


async def list_departments(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[Department]:
    result = await session.execute(
        select(Department)
        .where(col(Department.workspace_id) == workspace_id)
        .order_by(col(Department.id))
    )
    return list(result.scalars())


async def stage_keys(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[str]:
    result = await session.execute(
        select(col(Stage.key))
        .where(col(Stage.workspace_id) == workspace_id)
        .order_by(col(Stage.position))
    )
    return list(result.scalars())


async def department_keys(session: AsyncSession, *, workspace_id: uuid.UUID) -> set[str]:
    result = await session.execute(
        select(col(Department.key)).where(col(Department.workspace_id) == workspace_id)
    )
    return set(result.scalars())
