"""The unit of work: one transaction per request, committed at the boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# How long a transaction that holds a claim (an outbox row, a timer) may sit idle before
# PostgreSQL ends it. Longer than any send or handler takes; far shorter than the hours TCP
# keepalive needs to notice a worker whose host vanished without closing its connection.
CLAIM_IDLE_LIMIT_SECONDS = 60


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield a session whose transaction commits when the endpoint returns, else rolls back.

    Service functions only flush; nothing below the route commits.
    """
    sessionmaker = request.state.sessionmaker
    async with sessionmaker() as session, session.begin():
        yield session


async def limit_idle_claim(session: AsyncSession, seconds: int = CLAIM_IDLE_LIMIT_SECONDS) -> None:
    """Let PostgreSQL end this transaction, releasing its row locks, if it idles `seconds`.

    A killed process releases its claims at once (its socket closes); a frozen or vanished
    host does not, and would strand what it claimed until keepalive gives up. SQLite has one
    writer per file and no such thing.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text(f"SET LOCAL idle_in_transaction_session_timeout = '{int(seconds)}s'")
        )
