"""`POST /webhooks/{source_id}`: verify, map, then record and apply in one transaction.

Verification comes first and stores nothing: a forged or stale delivery costs an HMAC and
a counter, never a row. An authentic delivery is mapped by its adapter, and each item goes
through the lifecycle event path under the source's namespace, so a redelivery of the same
change (same dedupe key) is recognised by the database and changes nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.errors import NotFound, QuarterbackError
from service.lifecycle import events as events_service
from service.lifecycle.event_routes import EventIn
from service.webhooks import adapters
from service.webhooks.adapters.base import (
    Acknowledgement,
    AdapterContext,
    Delivery,
    MalformedDelivery,
    Mapped,
    StateStore,
    VerificationFailed,
)
from service.webhooks.models import WebhookSource
from service.webhooks.sources import config_of
from service.webhooks.state import DatabaseStateStore

logger = logging.getLogger("quarterback.webhooks")

DELIVERIES = Counter(
    "qb_webhook_deliveries", "Webhook deliveries received, by source kind and outcome.",
    ["kind", "outcome"],
)  # fmt: skip
ITEMS = Counter(
    "qb_webhook_items", "Items in accepted deliveries, by source kind and outcome.",
    ["kind", "outcome"],
)  # fmt: skip

# Per-source lookup caches for adapters (HubSpot deals and companies); adapters bound them.
_CACHES: defaultdict[uuid.UUID, dict[str, Any]] = defaultdict(dict)


class WebhookRejected(QuarterbackError):
    """The delivery is not authentic: bad or missing signature, stale timestamp, wrong
    credentials or org. Nothing was stored."""

    status, code, title = 401, "webhook_rejected", "Webhook rejected"


class WebhookMalformed(QuarterbackError):
    """The delivery is authentic but its body cannot be understood. Nothing was stored."""

    status, code, title = 400, "malformed_delivery", "Malformed delivery"


class WebhookUnavailable(QuarterbackError):
    """Mapping needed the CRM's API and it did not answer (or refused the token)."""

    status, code, title = 503, "webhook_unavailable", "Webhook temporarily unavailable"


@dataclass(frozen=True)
class ItemOutcome:
    item: Mapped
    event_id: uuid.UUID
    outcome: str
    duplicate: bool


# Sources by id for a few seconds, so a forged or replayed delivery is refused on its
# signature alone, with no database work (changes through this process apply at once;
# other replicas see them within the TTL).
SOURCE_TTL_SECONDS = 5.0
_SOURCES: dict[uuid.UUID, tuple[float, WebhookSource | None]] = {}
_SOURCES_MAX = 4096


def forget_source(source_id: uuid.UUID) -> None:
    _SOURCES.pop(source_id, None)


async def load_source(session: AsyncSession, source_id: uuid.UUID) -> WebhookSource:
    """The source the URL names; the random id is what ties a delivery to its workspace."""
    cached = _SOURCES.get(source_id)
    if cached is not None and cached[0] > time.monotonic():
        source = cached[1]
    else:
        found = await session.scalar(
            select(WebhookSource).where(col(WebhookSource.id) == source_id)
        )
        # A detached copy: safe to share between requests and sessions.
        source = WebhookSource.model_validate(found.model_dump()) if found else None
        if len(_SOURCES) >= _SOURCES_MAX:
            _SOURCES.clear()
        _SOURCES[source_id] = (time.monotonic() + SOURCE_TTL_SECONDS, source)
    if source is None or not source.enabled:
        raise NotFound("no webhook source at this URL")
    return source


def verify(source: WebhookSource, delivery: Delivery, now: datetime) -> None:
    try:
        adapters.get_adapter(source.kind).verify(delivery, config_of(source, now))
    except VerificationFailed as exc:
        DELIVERIES.labels(source.kind, "rejected").inc()
        # The adapter's message names what failed, never a secret.
        logger.warning("webhook %s (%s) rejected: %s", source.id, source.kind, exc)
        raise WebhookRejected(str(exc)) from None


async def map_delivery(
    source: WebhookSource,
    delivery: Delivery,
    *,
    http: httpx.AsyncClient,
    state: StateStore,
    now: datetime,
) -> list[Mapped]:
    context = AdapterContext(http=http, state=state, now=now, cache=_CACHES[source.id])
    try:
        return await adapters.get_adapter(source.kind).map(
            delivery, config_of(source, now), context
        )
    except MalformedDelivery as exc:
        DELIVERIES.labels(source.kind, "malformed").inc()
        raise WebhookMalformed(str(exc)) from None
    except Exception as exc:
        # A lookup the mapping needs failed (HubSpot's API down, a token refused). Nothing
        # was stored; a 503 makes the CRM deliver again later, when it may work.
        DELIVERIES.labels(source.kind, "unavailable").inc()
        logger.warning("webhook %s (%s) could not be mapped: %r", source.id, source.kind, exc)
        raise WebhookUnavailable(
            f"could not map the delivery now ({type(exc).__name__}: {exc}); deliver it again later"
        ) from None


async def ingest(
    session: AsyncSession,
    *,
    source: WebhookSource,
    delivery: Delivery,
    http: httpx.AsyncClient,
    now: datetime,
) -> tuple[Acknowledgement, list[ItemOutcome]]:
    verify(source, delivery, now)
    state = DatabaseStateStore(session, source.workspace_id, source.id)
    mapped = await map_delivery(source, delivery, http=http, state=state, now=now)
    # A delivery of one item that wrote no record state has nothing to keep when its item
    # fails, so it can undo to the start of the transaction instead of paying a savepoint's
    # two round trips on every delivery (bench/ingest_cpu.py counts the statements).
    alone = len(mapped) == 1 and not state.wrote
    outcomes = [await _apply(session, source, item, alone=alone) for item in mapped]
    DELIVERIES.labels(source.kind, "accepted").inc()
    for outcome in outcomes:
        ITEMS.labels(source.kind, "duplicate" if outcome.duplicate else outcome.outcome).inc()
    return adapters.get_adapter(source.kind).acknowledge(mapped), outcomes


def _failure_reason(exc: Exception) -> str:
    if isinstance(exc, QuarterbackError):
        return exc.detail
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        return f"the adapter produced an invalid event: {where}: {error.get('msg')}"
    return f"{type(exc).__name__}: {exc}"[:2000]


@asynccontextmanager
async def _undo_point(session: AsyncSession, *, alone: bool) -> AsyncIterator[None]:
    """Where a failed item's writes are undone to: a savepoint, or for a delivery's only item
    (which nothing before it in the transaction needs kept) the whole transaction."""
    if not alone:
        async with session.begin_nested():
            yield
        return
    try:
        yield
    except BaseException:
        await session.rollback()
        raise


async def _apply(
    session: AsyncSession, source: WebhookSource, item: Mapped, *, alone: bool
) -> ItemOutcome:
    actor = f"webhook:{source.name}"
    if item.event is not None:
        try:
            # The same contract as a submitted event: an adapter bug is refused here, not
            # half-applied.
            event = EventIn.model_validate(item.event).model_dump(exclude_none=True)
            async with _undo_point(session, alone=alone):
                result = await events_service.apply_event(
                    session,
                    workspace_id=source.workspace_id,
                    source=source.namespace,
                    event=event,
                    actor=actor,
                    keep_on_fault=False,  # this savepoint and the handler below do it
                    note=item.note,
                )
        except Exception as exc:
            # Acknowledged all the same (CRMs retry anything else, forever): keep it as
            # failed, with the reason, for a person to fix and replay.
            if not isinstance(exc, QuarterbackError | ValidationError):
                logger.exception("webhook %s item %s failed; kept", source.id, item.dedupe_key)
            result = await events_service.record_unapplied(
                session,
                workspace_id=source.workspace_id,
                source=source.namespace,
                external_id=item.dedupe_key,
                label=str(item.event.get("type") or item.label),
                outcome="failed",
                reason=_failure_reason(exc),
                payload=item.event,
            )
    else:
        result = await events_service.record_unapplied(
            session,
            workspace_id=source.workspace_id,
            source=source.namespace,
            external_id=item.dedupe_key,
            label=item.label or "unmapped",
            outcome="ignored",
            reason=item.ignored_reason or "the mapping raises nothing for this item",
            payload={"label": item.label},
        )
    return ItemOutcome(item, result.event.id, result.event.outcome, result.duplicate)
