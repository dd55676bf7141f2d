"""GraphQL type of the caller's workspace and the `workspace` query."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from service.graphql.context import CanRead, context_of
from service.graphql.rows import from_row
from service.workspaces import service as workspaces_service


@strawberry.type(description="The workspace (tenant) the API key belongs to.")
class Workspace:
    id: uuid.UUID
    name: str
    renewal_quarterback: str = strawberry.field(
        description="Department that leads renewals: csm, sales or revops."
    )
    timezone: str = strawberry.field(description="IANA time zone due dates are counted in.")
    holiday_calendar: str | None = strawberry.field(
        description="Public holidays business days skip, e.g. `US`; null for none."
    )
    playbook_version: int | None = strawberry.field(description="The playbook in force.")
    created_at: datetime


@strawberry.type
class Query:
    @strawberry.field(description="The caller's workspace.", permission_classes=[CanRead])
    async def workspace(self, info: strawberry.Info) -> Workspace:
        context = context_of(info)
        async with context.reading() as session:
            row = await workspaces_service.get_workspace(session, context.workspace_id)
        return from_row(Workspace, row)
