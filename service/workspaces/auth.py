"""The one gate to `/v1`: a bearer API key, resolved to a workspace and its scopes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.session import get_session
from service.errors import NotAuthenticated, PermissionDenied
from service.workspaces import service as workspaces_service
from service.workspaces.service import Principal

SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


# Declared for OpenAPI (the security scheme); the header is checked below with clearer errors.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key of the workspace: `Authorization: Bearer qb_...`.",
)


async def get_principal(
    request: Request,
    session: SessionDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    principal = await authenticate_header(session, request.headers.get("authorization", ""))
    request.state.principal = principal
    return principal


async def authenticate_header(session: AsyncSession, header: str) -> Principal:
    """The principal of an `Authorization: Bearer <key>` header (REST and GraphQL alike)."""
    scheme, _sep, token = header.partition(" ")
    if not header:
        raise NotAuthenticated("send the API key as `Authorization: Bearer <key>`")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("the Authorization header must be `Bearer <key>`")
    return await workspaces_service.authenticate(session, token.strip())


def check_scope(principal: Principal, scope: str) -> Principal:
    """The principal if its key grants `scope` (admin grants all, write grants read)."""
    if scope not in principal.scopes:
        raise PermissionDenied(
            f"this operation needs the {scope!r} scope; the key has "
            f"{', '.join(sorted(principal.scopes)) or 'none'}",
            required_scope=scope,
        )
    return principal


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits keys granting `scope` (admin grants all, write grants read)."""

    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        return check_scope(principal, scope)

    return dependency


Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
