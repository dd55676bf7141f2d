"""Trying a sample delivery out: what it would become, writing nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.errors import QuarterbackError
from service.lifecycle.models import LifecycleEvent
from service.playbooks import simulation
from service.webhooks import ingest
from service.webhooks.adapters.base import Delivery
from service.webhooks.models import WebhookSource
from service.webhooks.state import DatabaseStateStore, DryRunStateStore


async def try_delivery(
    session: AsyncSession,
    *,
    source: WebhookSource,
    delivery: Delivery,
    http: httpx.AsyncClient,
    now: datetime,
) -> dict[str, Any]:
    try:
        ingest.verify(source, delivery, now)
    except ingest.WebhookRejected as exc:
        return {"verified": False, "verification_error": exc.detail, "malformed": None, "items": []}
    state = DryRunStateStore(DatabaseStateStore(session, source.workspace_id, source.id))
    try:
        mapped = await ingest.map_delivery(source, delivery, http=http, state=state, now=now)
    except ingest.WebhookMalformed as exc:
        return {"verified": True, "verification_error": None, "malformed": exc.detail, "items": []}
    items = []
    for item in mapped:
        seen = await session.scalar(
            select(col(LifecycleEvent.id)).where(
                col(LifecycleEvent.workspace_id) == source.workspace_id,
                col(LifecycleEvent.source) == source.namespace,
                col(LifecycleEvent.external_id) == item.dedupe_key,
            )
        )
        outcome = None
        if item.event is not None:
            try:
                outcome = await simulation.simulate(
                    session,
                    workspace_id=source.workspace_id,
                    event=item.event,
                    source=source.namespace,
                    account_id=None,
                    account=None,
                    draft=None,
                )
            except QuarterbackError as exc:
                outcome = {"outcome": "failed", "reason": exc.detail}
        items.append(
            {
                "dedupe_key": item.dedupe_key,
                "label": item.label,
                "event": item.event,
                "ignored_reason": item.ignored_reason,
                "note": item.note,
                "already_received": seen is not None,
                "simulation": outcome,
            }
        )
    return {"verified": True, "verification_error": None, "malformed": None, "items": items}
