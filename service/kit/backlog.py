"""Gauges of the work queues every replica shares, read from the database at scrape time."""

from __future__ import annotations

import logging

from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db import tables
from service.db.types import utcnow

logger = logging.getLogger("quarterback.metrics")

OUTBOX_BACKLOG = Gauge("qb_outbox_backlog", "Outbox messages waiting to be delivered.")
OUTBOX_OLDEST = Gauge(
    "qb_outbox_oldest_due_seconds", "How long the oldest due outbox message has waited."
)
TIMER_LAG = Gauge("qb_timer_lag_seconds", "How late the most overdue pending timer is.")


async def refresh(engine: AsyncEngine) -> None:
    now = utcnow()
    outbox, timers = tables.outbox_messages.c, tables.timers.c
    try:
        async with engine.connect() as connection:
            pending, oldest = (
                await connection.execute(
                    select(func.count(), func.min(outbox.next_attempt_at)).where(
                        outbox.status == "pending"
                    )
                )
            ).one()
            overdue = await connection.scalar(
                select(func.min(timers.due_at)).where(
                    timers.status == "pending", timers.due_at <= now
                )
            )
    except Exception:  # metrics must not fail the scrape when the database blips
        logger.warning("could not read queue depths", exc_info=True)
        return
    OUTBOX_BACKLOG.set(pending or 0)
    OUTBOX_OLDEST.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    TIMER_LAG.set(max(0.0, (now - overdue).total_seconds()) if overdue else 0.0)
