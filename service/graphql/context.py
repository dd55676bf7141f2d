"""One GraphQL request: its session, its caller, its dataloaders, and how writes run.

The request has one session (one transaction, committed when the response is ready, like a
REST request). GraphQL resolves sibling fields concurrently and an AsyncSession runs one
statement at a time, so every database call takes the request's lock. Each mutation runs in
a savepoint: a mutation that fails leaves nothing behind, its siblings' work still commits.

A websocket lives for hours, so it holds no session: its caller is authenticated once when
the connection starts, and each subscription reads every notice it sends in a short session
of its own (`Context.notice_reads`), with fresh dataloaders.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import BaseContext
from strawberry.permission import BasePermission
from strawberry.types import Info

from service.config import Settings
from service.errors import InvalidInput, NotAuthenticated, QuarterbackError
from service.graphql.loaders import Loaders
from service.kit.live import Broadcaster
from service.workspaces.auth import authenticate_header, check_scope
from service.workspaces.service import Principal


@dataclass
class _Reads:
    """A session, the lock that serializes its statements, and the loaders reading through it."""

    session: AsyncSession | None
    loaders: Loaders | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# Set by a subscription while its client's fields for one notice resolve (one asyncio task
# per subscription, so two subscriptions on one websocket never share a session).
_notice_reads: ContextVar[_Reads | None] = ContextVar("graphql_notice_reads", default=None)


class Context(BaseContext):
    def __init__(
        self,
        session: AsyncSession | None,
        settings: Settings,
        *,
        sessionmaker: async_sessionmaker[AsyncSession] | None = None,
        broadcaster: Broadcaster | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.broadcaster = broadcaster
        self._request_reads = _Reads(session)
        self._principal: Principal | None = None
        self._auth_error: QuarterbackError | None = None
        self.loaders = Loaders(self)

    def _reads(self) -> _Reads:
        return _notice_reads.get() or self._request_reads

    @property
    def session(self) -> AsyncSession:
        session = self._reads().session
        if session is None:
            raise InvalidInput(
                "this websocket carries subscriptions; send queries and mutations with "
                "POST /graphql"
            )
        return session

    @property
    def lock(self) -> asyncio.Lock:
        return self._reads().lock

    @property
    def loaders(self) -> Loaders:
        loaders = self._reads().loaders
        assert loaders is not None
        return loaders

    @loaders.setter
    def loaders(self, loaders: Loaders) -> None:
        self._reads().loaders = loaders

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

    async def accept_connection(self) -> None:
        """Authenticate a websocket by the key in `connection_init`, else its upgrade header.

        A missing, malformed, unknown or revoked key closes the connection with 4403.
        """
        params = self.connection_params if isinstance(self.connection_params, dict) else {}
        header = next(
            (str(value) for key, value in params.items() if key.lower() == "authorization"),
            self.request.headers.get("authorization", "") if self.request else "",
        )
        assert self.sessionmaker is not None
        try:
            async with self.sessionmaker() as session:
                self._principal = await authenticate_header(session, header)
        except NotAuthenticated as exc:
            raise ConnectionRejectionError({"code": exc.code, "message": exc.detail}) from None

    @asynccontextmanager
    async def notice_reads(self) -> AsyncIterator[None]:
        """Resolve one subscription result in its own short, read-only session.

        The subscription yields its result inside this block; GraphQL resolves the client's
        fields before asking the subscription for the next one, so the session is still open.
        """
        assert self.sessionmaker is not None
        async with self.sessionmaker() as session:
            reads = _Reads(session)
            token = _notice_reads.set(reads)
            try:
                reads.loaders = Loaders(self)
                yield
            finally:
                # A generator finalized outside its task cannot reset; its task is gone anyway.
                with contextlib.suppress(ValueError):
                    _notice_reads.reset(token)

    def release(self) -> None:
        """Let go of the request's loaders, and the rows they hold, once it has answered.

        GraphQL-core's execution context is a reference cycle that holds this context, so
        without this every row and loader future of a page is left for the cycle collector
        instead of being freed by reference counting: ~19,800 objects after a 100-account
        nested page, ~1,600 with it (see service/kit/collector.py for what collections cost).
        """
        self._request_reads = _Reads(None)

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
