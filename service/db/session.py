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


async def get_restartable_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Like `get_session`, for an endpoint that may roll its transaction back and go on in
    a new one (webhook ingestion keeps a failed item after undoing it): what is pending when
    the endpoint returns commits; an error rolls back."""
    async with request.state.sessionmaker() as session:
        yield session
        await session.commit()


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
