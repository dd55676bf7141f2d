"""`/v1/subscriptions`: tell the next quarterback's tools when something changes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.kit.pagination import MAX_PAGE_SIZE
from service.kit.routing import PrefixedRouter
from service.outbound import dispatcher
from service.outbound import service as subscriptions_service
from service.workspaces.auth import Admin, SessionDep

router = PrefixedRouter(prefix="/v1/subscriptions", tags=["subscriptions"])

EventType = Literal[
    "task.raised", "task.completed", "account.stage_changed", "handoff.accepted",
    "handoff.rejected",
]  # fmt: skip
Url = Annotated[str, StringConstraints(max_length=2000)]


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    events: list[EventType] = Field(min_length=1)
    department: str | None = Field(
        default=None, description="Only changes for this department (e.g. its handoff queue)."
    )
    description: str | None = Field(default=None, max_length=500)


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    events: list[EventType] | None = Field(default=None, min_length=1)
    department: str | None = None
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(default=None, description="true re-activates a failing one.")


class SubscriptionRead(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    department: str | None
    description: str | None
    enabled: bool
    status: Literal["active", "failing", "disabled"]
    consecutive_failures: int
    created_at: datetime


class SubscriptionCreated(SubscriptionRead):
    secret: str = Field(description="whsec_ secret to verify our signatures. Shown once.")


class SubscriptionList(BaseModel):
    items: list[SubscriptionRead]


class AttemptRead(BaseModel):
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    response_body: str | None


class DeliveryRead(BaseModel):
    id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    status: Literal["pending", "delivered", "failed"]
    attempts: list[AttemptRead]
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None


def _allow_private(request: Request) -> bool:
    return bool(request.state.settings.outbound_allow_private_networks)


@router.post("", response_model=SubscriptionCreated, status_code=status.HTTP_201_CREATED)
async def create_subscription(
    request: Request, session: SessionDep, principal: Admin, body: SubscriptionCreate
) -> Any:
    """Deliveries are signed per Standard Webhooks with the returned secret (shown once)."""
    subscription, secret = await subscriptions_service.create_subscription(
        session,
        workspace_id=principal.workspace_id,
        url=body.url,
        events=list(body.events),
        department=body.department,
        description=body.description,
        allow_private=_allow_private(request),
    )
    return {**subscription.model_dump(exclude={"secret"}), "secret": secret}


@router.get("", response_model=SubscriptionList)
async def list_subscriptions(session: SessionDep, principal: Admin) -> Any:
    items = await subscriptions_service.list_subscriptions(
        session, workspace_id=principal.workspace_id
    )
    return {"items": items}


@router.get("/{subscription_id}", response_model=SubscriptionRead)
async def read_subscription(
    session: SessionDep, principal: Admin, subscription_id: uuid.UUID
) -> Any:
    return await subscriptions_service.get_subscription(
        session, workspace_id=principal.workspace_id, subscription_id=subscription_id
    )


@router.patch("/{subscription_id}", response_model=SubscriptionRead)
async def update_subscription(
    request: Request,
    session: SessionDep,
    principal: Admin,
    subscription_id: uuid.UUID,
    body: SubscriptionUpdate,
) -> Any:
    return await subscriptions_service.update_subscription(
        session,
        workspace_id=principal.workspace_id,
        subscription_id=subscription_id,
        changes=body.model_dump(exclude_unset=True),
        allow_private=_allow_private(request),
    )


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_subscription(
    session: SessionDep, principal: Admin, subscription_id: uuid.UUID
) -> Response:
    await subscriptions_service.delete_subscription(
        session, workspace_id=principal.workspace_id, subscription_id=subscription_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{subscription_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    session: SessionDep,
    principal: Admin,
    subscription_id: uuid.UUID,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: str | None = None,
) -> Any:
    """Every message for this subscription, newest first, with each attempt."""
    items, next_cursor = await subscriptions_service.list_deliveries(
        session,
        workspace_id=principal.workspace_id,
        subscription_id=subscription_id,
        limit=limit,
        cursor=cursor,
    )
    return {"items": items, "next_cursor": next_cursor}


@router.post("/{subscription_id}/deliveries/{message_id}/resend", response_model=DeliveryRead)
async def resend_delivery(
    session: SessionDep, principal: Admin, subscription_id: uuid.UUID, message_id: uuid.UUID
) -> Any:
    """Queue a message again now, delivered or not (same webhook-id: receivers dedupe)."""
    message = await subscriptions_service.get_message(
        session,
        workspace_id=principal.workspace_id,
        subscription_id=subscription_id,
        message_id=message_id,
    )
    message = await dispatcher.resend(session, message=message)
    return {**message.model_dump(), "attempts": []}
