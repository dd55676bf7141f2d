"""One GraphQL request: its session, its caller, its dataloaders, and how writes run.

The request has one session (one transaction, committed when the response is ready, like a
REST request). GraphQL resolves sibling fields concurrently and an AsyncSession runs one
statement at a time, so every database call takes the request's lock. Each mutation runs in
a savepoint: a mutation that fails leaves nothing behind, its siblings' work still commits.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.fastapi import BaseContext
from strawberry.permission import BasePermission
from strawberry.types import Info

from service.config import Settings
from service.errors import NotAuthenticated, QuarterbackError
from service.graphql.loaders import Loaders
from service.workspaces.auth import authenticate_header, check_scope
from service.workspaces.service import Principal


class Context(BaseContext):
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        super().__init__()
        self.session = session
        self.settings = settings
        self.lock = asyncio.Lock()
        self._principal: Principal | None = None
        self._auth_error: QuarterbackError | None = None
        self.loaders = Loaders(self)

    async def principal(self, scope: str) -> Principal:
        """The caller, authenticated once per request by its bearer key, if it has `scope`."""
        if self._principal is None and self._auth_error is None:
            header = self.request.headers.get("authorization", "") if self.request else ""
            async with self.lock:
                if self._principal is None and self._auth_error is None:
                    try:
                        self._principal = await authenticate_header(self.session, header)
                    except NotAuthenticated as exc:
                        self._auth_error = exc
        if self._auth_error is not None:
            raise self._auth_error
        assert self._principal is not None
        return check_scope(self._principal, scope)

    @property
    def workspace_id(self) -> uuid.UUID:
        """The caller's workspace; every root field checked the caller before getting here."""
        if self._principal is None:
            raise NotAuthenticated("send the API key as `Authorization: Bearer <key>`")
        return self._principal.workspace_id

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with self.lock:
            yield self.session

    @asynccontextmanager
    async def writing(self, scope: str = "write") -> AsyncIterator[tuple[AsyncSession, Principal]]:
        """Run one mutation in a savepoint; results read afterwards see its changes."""
        principal = await self.principal(scope)
        async with self.lock:
            self.loaders = Loaders(self)
            async with self.session.begin_nested():
                yield self.session, principal


def context_of(info: Info[Any, Any]) -> Context:
    context = info.context
    assert isinstance(context, Context)
    return context


class _Scope(BasePermission):
    scope: ClassVar[str]
    message = "not allowed"

    async def has_permission(self, source: Any, info: Info[Any, Any], **kwargs: Any) -> bool:
        # Raises the same typed errors REST answers 401/403 with; their codes reach the client.
        await context_of(info).principal(self.scope)
        return True


class CanRead(_Scope):
    """The key has the read scope (write and admin include it)."""

    scope = "read"


class CanWrite(_Scope):
    scope = "write"


class IsAdmin(_Scope):
    scope = "admin"
