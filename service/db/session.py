"""The unit of work: one transaction per request, committed at the boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield a session whose transaction commits when the endpoint returns, else rolls back.

    Service functions only flush; nothing below the route commits.
    """
    sessionmaker = request.state.sessionmaker
    async with sessionmaker() as session, session.begin():
        yield session
