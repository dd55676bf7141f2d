"""`/v1/webhook-sources` (manage where CRMs deliver) and `/webhooks/{source_id}` (ingest)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.session import get_restartable_session
from service.db.types import utcnow
from service.errors import problem, problem_response
from service.kit.routing import PrefixedRouter
from service.webhooks import adapters, ingest, sources, trial
from service.webhooks.adapters.base import Delivery
from service.webhooks.models import WebhookSource
from service.webhooks.schemas import (
    MappingVersionList,
    SecretRotation,
    SourceCreate,
    SourceCreated,
    SourceList,
    SourceRead,
    SourceUpdate,
    TryDelivery,
    TryResult,
)
from service.workspaces.auth import Admin, SessionDep

router = PrefixedRouter(prefix="/v1/webhook-sources", tags=["webhooks"])
ingest_router = PrefixedRouter(tags=["webhooks"])


def _public_url(request: Request, path: str, query: str = "") -> str:
    base = request.state.settings.public_url
    root = base.rstrip("/") if base else str(request.base_url).rstrip("/")
    return root + path + (f"?{query}" if query else "")


def _read(request: Request, source: WebhookSource) -> dict[str, Any]:
    rotated = source.previous_secret_expires_at
    return {
        **source.model_dump(exclude={"secret", "previous_secret", "api_token"}),
        "has_api_token": bool(source.api_token),
        "ingestion_url": _public_url(request, sources.ingestion_path(source)),
        "secret_rotated_until": rotated if rotated and rotated > utcnow() else None,
    }


@router.post("", response_model=SourceCreated, status_code=status.HTTP_201_CREATED)
async def create_source(
    request: Request, session: SessionDep, principal: Admin, body: SourceCreate
) -> Any:
    """Create a source. The response carries its ingestion URL and, this once, its secret."""
    source, secret = await sources.create_source(
        session,
        workspace_id=principal.workspace_id,
        kind=body.kind,
        name=body.name,
        secret=body.secret,
        mapping=body.mapping,
        api_base_url=body.api_base_url,
        api_token=body.api_token,
        namespace=body.namespace,
        actor=principal.actor,
    )
    return {**_read(request, source), "secret": secret}


@router.get("", response_model=SourceList)
async def list_sources(request: Request, session: SessionDep, principal: Admin) -> Any:
    items = await sources.list_sources(session, workspace_id=principal.workspace_id)
    return {"items": [_read(request, source) for source in items]}


@router.get("/{source_id}", response_model=SourceRead)
async def read_source(
    request: Request, session: SessionDep, principal: Admin, source_id: uuid.UUID
) -> Any:
    source = await sources.get_source(
        session, workspace_id=principal.workspace_id, source_id=source_id
    )
    return _read(request, source)


@router.patch("/{source_id}", response_model=SourceRead)
async def update_source(
    request: Request,
    session: SessionDep,
    principal: Admin,
    source_id: uuid.UUID,
    body: SourceUpdate,
) -> Any:
    """Change a source; a new mapping becomes the next mapping version."""
    source = await sources.update_source(
        session,
        workspace_id=principal.workspace_id,
        source_id=source_id,
        changes=body.model_dump(exclude_unset=True),
        actor=principal.actor,
    )
    return _read(request, source)


@router.delete("/{source_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_source(session: SessionDep, principal: Admin, source_id: uuid.UUID) -> Response:
    """Delete a source: its URL stops answering. Events it delivered stay."""
    await sources.delete_source(session, workspace_id=principal.workspace_id, source_id=source_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{source_id}/rotate-secret", response_model=SourceCreated)
async def rotate_secret(
    request: Request,
    session: SessionDep,
    principal: Admin,
    source_id: uuid.UUID,
    body: SecretRotation,
) -> Any:
    """A new secret, shown once; the old one is accepted for `grace_seconds` more."""
    source, secret = await sources.rotate_secret(
        session,
        workspace_id=principal.workspace_id,
        source_id=source_id,
        secret=body.secret,
        grace=timedelta(seconds=body.grace_seconds),
    )
    return {**_read(request, source), "secret": secret}


@router.get("/{source_id}/mapping-versions", response_model=MappingVersionList)
async def list_mapping_versions(session: SessionDep, principal: Admin, source_id: uuid.UUID) -> Any:
    items = await sources.list_mapping_versions(
        session, workspace_id=principal.workspace_id, source_id=source_id
    )
    return {"items": items}


@router.post("/{source_id}/try", response_model=TryResult)
async def try_delivery(
    request: Request,
    session: SessionDep,
    principal: Admin,
    source_id: uuid.UUID,
    body: TryDelivery,
) -> Any:
    """What a sample delivery would become — verification, events, the playbook's moves and
    tasks — writing nothing."""
    source = await sources.get_source(
        session, workspace_id=principal.workspace_id, source_id=source_id
    )
    delivery = Delivery(
        method=body.method,
        url=body.url or _public_url(request, sources.ingestion_path(source)),
        headers={key.lower(): value for key, value in body.headers.items()},
        body=body.body.encode(),
        client_ip=body.client_ip,
        received_at=utcnow(),
    )
    return await trial.try_delivery(
        session, source=source, delivery=delivery, http=request.state.http, now=utcnow()
    )


@ingest_router.post(
    "/webhooks/{source_id}",
    responses={
        200: {"description": "Accepted (duplicates too); Salesforce gets its SOAP Ack."},
        400: {"description": "Authentic but unreadable body."},
        401: {"description": "Not authentic; nothing stored."},
        404: {"description": "No source at this URL."},
        413: {"description": "Body over 1 MiB."},
        503: {
            "description": "Too many deliveries in flight (Retry-After), or the CRM's API, "
            "which mapping needed, did not answer; nothing stored."
        },
    },
)
async def receive(
    request: Request,
    session: Annotated[AsyncSession, Depends(get_restartable_session, scope="function")],
    source_id: str,
) -> Response:
    """Where CRMs deliver. Verified, then recorded and applied in one transaction.

    Beyond capacity a delivery never gets here: service.webhooks.admission answers 503."""
    try:
        source_uuid = uuid.UUID(source_id)
    except ValueError:
        return problem_response(
            problem(404, "not_found", "Not found", "no webhook source at this URL")
        )
    source = await ingest.load_source(session, source_uuid)
    now = utcnow()
    delivery = Delivery(
        method=request.method,
        # As sent: HubSpot signs the URL with its %-escapes, which the decoded path loses.
        url=_public_url(
            request,
            request.scope.get("raw_path", request.url.path.encode()).decode("latin-1"),
            request.scope.get("query_string", b"").decode("latin-1"),
        ),
        headers={key.lower(): value for key, value in request.headers.items()},
        body=await request.body(),
        client_ip=request.client.host if request.client else None,
        received_at=now,
    )
    adapter = adapters.get_adapter(source.kind)
    try:
        ack, _ = await ingest.ingest(
            session, source=source, delivery=delivery, http=request.state.http, now=now
        )
    except (ingest.WebhookRejected, ingest.WebhookMalformed, ingest.WebhookUnavailable) as exc:
        own = adapter.reject(exc.status, exc.detail)
        if own is None:
            raise
        # Answered, not raised, so roll back here: a refused delivery leaves nothing behind
        # (an adapter may have written record state before finding the body unreadable).
        await session.rollback()
        return Response(own.body, status_code=own.status, media_type=own.media_type)
    return Response(ack.body, status_code=ack.status, media_type=ack.media_type)
