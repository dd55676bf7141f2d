"""Subscriptions: who hears of which changes, at which URL, and what was delivered."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.db.types import utcnow, uuid7
from service.errors import InvalidInput, NotFound
from service.kit.pagination import decode_cursor, trim_page
from service.outbound import outbox
from service.outbound.models import (
    DeliveryAttempt,
    OutboxMessage,
    Subscription,
    SubscriptionEventType,
)
from service.webhooks.adapters.standard import new_secret
from service.workspaces.models import Workspace


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field, "in": "body", "message": message}])


def check_url(url: str, *, allow_private: bool) -> str:
    """An http(s) URL; unless allowed, not one that points into our own network (SSRF)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("url", "url must be an absolute http:// or https:// URL")
    if not allow_private:
        host = parts.hostname
        private = host == "localhost" or host.endswith(".localhost")
        try:
            address = ipaddress.ip_address(host)
            private = private or not address.is_global
        except ValueError:
            pass
        if private:
            raise _invalid(
                "url",
                "url points to a private or loopback address; set "
                "QB_OUTBOUND_ALLOW_PRIVATE_NETWORKS=true to allow it (e.g. for local testing)",
            )
    return url


def check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(outbox.EVENT_TYPES))
    if not events or unknown:
        raise _invalid(
            "events",
            f"events must list some of {', '.join(outbox.EVENT_TYPES)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
        )
    return sorted(set(events))


async def _refresh_flag(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    """Keep `workspaces.has_subscriptions` true exactly while an enabled one exists."""
    any_enabled = exists().where(
        col(Subscription.workspace_id) == workspace_id, col(Subscription.enabled).is_(True)
    )
    await session.execute(
        update(Workspace)
        .where(col(Workspace.id) == workspace_id)
        .values(has_subscriptions=select(any_enabled).scalar_subquery())
    )


async def _write_types(session: AsyncSession, subscription: Subscription) -> None:
    await session.execute(
        delete(SubscriptionEventType).where(
            col(SubscriptionEventType.subscription_id) == subscription.id
        )
    )
    await session.execute(
        insert(SubscriptionEventType),
        [
            {
                "id": uuid7(),
                "workspace_id": subscription.workspace_id,
                "subscription_id": subscription.id,
                "event_type": event_type,
                "department": subscription.department,
            }
            for event_type in subscription.events
        ],
    )


async def create_subscription(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    url: str,
    events: list[str],
    department: str | None,
    description: str | None,
    allow_private: bool,
) -> tuple[Subscription, str]:
    secret = new_secret()
    subscription = Subscription(
        workspace_id=workspace_id,
        url=check_url(url, allow_private=allow_private),
        events=check_events(events),
        department=department,
        description=description,
        secret=secret,
    )
    session.add(subscription)
    await session.flush()
    await _write_types(session, subscription)
    await _refresh_flag(session, workspace_id)
    return subscription, secret


async def get_subscription(
    session: AsyncSession, *, workspace_id: uuid.UUID, subscription_id: uuid.UUID
) -> Subscription:
    subscription = await session.scalar(
        select(Subscription).where(
            col(Subscription.workspace_id) == workspace_id,
            col(Subscription.id) == subscription_id,
        )
    )
    if subscription is None:
        raise NotFound(f"subscription {subscription_id} not found")
    return subscription


async def list_subscriptions(
    session: AsyncSession, *, workspace_id: uuid.UUID
) -> list[Subscription]:
    result = await session.scalars(
        select(Subscription)
        .where(col(Subscription.workspace_id) == workspace_id)
        .order_by(col(Subscription.id))
    )
    return list(result)


async def update_subscription(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    subscription_id: uuid.UUID,
    changes: dict[str, Any],
    allow_private: bool,
) -> Subscription:
    subscription = await get_subscription(
        session, workspace_id=workspace_id, subscription_id=subscription_id
    )
    if "url" in changes:
        subscription.url = check_url(changes["url"], allow_private=allow_private)
    if "events" in changes:
        subscription.events = check_events(changes["events"])
    if "department" in changes:
        subscription.department = changes["department"]
    if "description" in changes:
        subscription.description = changes["description"]
    if "enabled" in changes:
        subscription.enabled = bool(changes["enabled"])
        if subscription.enabled:
            subscription.status, subscription.consecutive_failures = "active", 0
    subscription.updated_at = utcnow()
    await session.flush()
    await _write_types(session, subscription)
    await _refresh_flag(session, workspace_id)
    return subscription


async def delete_subscription(
    session: AsyncSession, *, workspace_id: uuid.UUID, subscription_id: uuid.UUID
) -> None:
    subscription = await get_subscription(
        session, workspace_id=workspace_id, subscription_id=subscription_id
    )
    await session.delete(subscription)
    await session.flush()
    await _refresh_flag(session, workspace_id)


async def list_deliveries(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    subscription_id: uuid.UUID,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Messages, newest first, each with every attempt."""
    await get_subscription(session, workspace_id=workspace_id, subscription_id=subscription_id)
    statement = select(OutboxMessage).where(
        col(OutboxMessage.workspace_id) == workspace_id,
        col(OutboxMessage.subscription_id) == subscription_id,
    )
    before = decode_cursor(cursor)
    if before is not None:
        statement = statement.where(col(OutboxMessage.id) < before)
    messages = list(
        await session.scalars(statement.order_by(col(OutboxMessage.id).desc()).limit(limit + 1))
    )
    messages, next_cursor = trim_page(messages, limit, lambda message: message.id)
    attempts: dict[uuid.UUID, list[DeliveryAttempt]] = {message.id: [] for message in messages}
    if messages:
        for attempt in await session.scalars(
            select(DeliveryAttempt)
            .where(col(DeliveryAttempt.message_id).in_(list(attempts)))
            .order_by(col(DeliveryAttempt.id))
        ):
            attempts[attempt.message_id].append(attempt)
    return [
        {**message.model_dump(), "attempts": [a.model_dump() for a in attempts[message.id]]}
        for message in messages
    ], next_cursor


async def get_message(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    subscription_id: uuid.UUID,
    message_id: uuid.UUID,
) -> OutboxMessage:
    message = await session.scalar(
        select(OutboxMessage).where(
            col(OutboxMessage.workspace_id) == workspace_id,
            col(OutboxMessage.subscription_id) == subscription_id,
            col(OutboxMessage.id) == message_id,
        )
    )
    if message is None:
        raise NotFound(f"delivery {message_id} not found")
    return message
