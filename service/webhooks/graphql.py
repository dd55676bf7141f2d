"""GraphQL type of webhook sources (where CRMs deliver), without their secrets."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from service.db.types import utcnow
from service.graphql.context import IsAdmin, context_of
from service.graphql.rows import from_row
from service.webhooks import sources
from service.webhooks.models import WebhookSource as SourceRow


@strawberry.type(
    description="Where a CRM delivers webhooks. Secrets and API tokens are never shown here."
)
class WebhookSource:
    id: uuid.UUID
    kind: str = strawberry.field(description="hubspot, salesforce, pipedrive or standard.")
    name: str
    namespace: str = strawberry.field(
        description="The `source` of the events and external ids it produces."
    )
    mapping: JSON = strawberry.field(description="Options of the kind's adapter.")
    mapping_version: int
    api_base_url: str | None
    has_api_token: bool
    enabled: bool
    ingestion_url: str = strawberry.field(description="Where the CRM must deliver (POST).")
    secret_rotated_until: datetime | None = strawberry.field(
        description="Until when the previous secret is still accepted, after a rotation."
    )
    created_at: datetime
    updated_at: datetime


def source_of(row: SourceRow, base_url: str) -> WebhookSource:
    rotated = row.previous_secret_expires_at
    return from_row(
        WebhookSource,
        row,
        has_api_token=bool(row.api_token),
        ingestion_url=base_url + sources.ingestion_path(row),
        secret_rotated_until=rotated if rotated and rotated > utcnow() else None,
    )


@strawberry.type
class Query:
    @strawberry.field(
        description="The workspace's webhook sources (needs the admin scope).",
        permission_classes=[IsAdmin],
    )
    async def webhook_sources(self, info: strawberry.Info) -> list[WebhookSource]:
        context = context_of(info)
        async with context.reading() as session:
            rows = await sources.list_sources(session, workspace_id=context.workspace_id)
        public = context.settings.public_url
        request = context.request
        base = (public or (str(request.base_url) if request else "")).rstrip("/")
        return [source_of(row, base) for row in rows]
