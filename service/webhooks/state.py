"""Where adapters keep the last state they saw of a sender's records."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.db import tables
from service.db.types import utcnow, uuid7
from service.webhooks.models import WebhookRecordState


class DatabaseStateStore:
    """In the delivery's own transaction: a state moves forward only with its events."""

    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID, source_id: uuid.UUID):
        self.session = session
        self.workspace_id = workspace_id
        self.source_id = source_id
        self.wrote = False  # whether a failed item's rollback would take a state with it

    async def get(self, key: str) -> dict[str, Any] | None:
        connection = await self.session.connection()
        if connection.dialect.name == "postgresql":
            # Two different notifications about one record at once must not both find "no
            # state yet": hold a lock on (source, key) until the delivery commits. (SQLite's
            # BEGIN IMMEDIATE already serializes writers.)
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:lock_key, 0))"),
                {"lock_key": f"{self.source_id}:{key}"},
            )
        return await self.session.scalar(
            select(col(WebhookRecordState.state)).where(
                col(WebhookRecordState.source_id) == self.source_id,
                col(WebhookRecordState.key) == key,
            )
        )

    async def put(self, key: str, state: dict[str, Any]) -> None:
        connection = await self.session.connection()
        module: Any = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = module.insert(tables.webhook_record_states).values(
            id=uuid7(),
            workspace_id=self.workspace_id,
            source_id=self.source_id,
            key=key,
            state=state,
            updated_at=utcnow(),
        )
        statement = statement.on_conflict_do_update(
            index_elements=["source_id", "key"],
            set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
        )
        await connection.execute(statement)
        self.wrote = True


class DryRunStateStore:
    """Reads the real states, keeps writes in memory: for trying a delivery out."""

    def __init__(self, real: DatabaseStateStore) -> None:
        self.real = real
        self.written: dict[str, dict[str, Any]] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        if key in self.written:
            return self.written[key]
        return await self.real.get(key)

    async def put(self, key: str, state: dict[str, Any]) -> None:
        self.written[key] = state
