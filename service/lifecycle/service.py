"""Reading a workspace's lifecycle model, and the checks a submitted event passes first."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.db import tables
from service.errors import InvalidInput
from service.lifecycle.models import Department, Stage


async def list_stages(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[Stage]:
    result = await session.execute(
        select(Stage).where(col(Stage.workspace_id) == workspace_id).order_by(col(Stage.position))
    )
    return list(result.scalars())


_QUARTERBACKS = (
    select(tables.stages.c.key, tables.stages.c.quarterback)
    .where(tables.stages.c.workspace_id == bindparam("workspace"))
    .order_by(tables.stages.c.position)
)


async def stage_quarterbacks(session: AsyncSession, *, workspace_id: uuid.UUID) -> dict[str, str]:
    """Each stage's quarterback department, in the lifecycle's order: what creating an account
    needs, without loading the stages' JSON columns."""
    connection = await session.connection()  # a Core statement: no ORM entities to load
    rows = await connection.execute(_QUARTERBACKS, {"workspace": workspace_id})
    return {key: quarterback for key, quarterback in rows}


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


def event_to_apply(event: dict[str, Any], account_id: uuid.UUID | None) -> dict[str, Any]:
    """Check what the event's schema cannot say alone; return the event for `apply_event`.

    REST (`POST /v1/events`, `/v1/accounts/{id}/events`) and the GraphQL `submitEvent`
    mutation both pass the event here, so they refuse the same things with the same words.
    `account_id` is the account named by the URL, if any.
    """
    account = event.get("account") or {}
    if account_id is None and account.get("id") is None and account.get("external_id") is None:
        raise InvalidInput(
            "name the account with account.id or account.external_id",
            errors=[{"field": "account", "in": "body", "message": "id or external_id required"}],
        )
    if event.get("type") == "stage_changed" and not event.get("to_stage"):
        raise InvalidInput(
            "a stage_changed event needs to_stage",
            errors=[{"field": "to_stage", "in": "body", "message": "required"}],
        )
    return event
