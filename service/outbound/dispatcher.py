"""Delivering the outbox: signed per Standard Webhooks, retried with backoff for three days.

Each message is claimed, sent and marked in one transaction; on PostgreSQL the claim is
`FOR UPDATE SKIP LOCKED`, so any number of dispatchers (every `serve` process, every
`quarterback worker`) share the outbox and never send one message twice at the same time.
A dispatcher that dies mid-send rolls back: the message is due again and is resent with
the same `webhook-id`, which receivers use to drop the repeat (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from prometheus_client import Counter, Histogram
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from standardwebhooks.webhooks import Webhook

from service.db import tables
from service.db.session import limit_idle_claim
from service.db.types import utcnow, uuid7
from service.outbound.models import OutboxMessage, Subscription

logger = logging.getLogger("quarterback.outbound")

# Standard Webhooks' example schedule, ≈ 3 days in all; each delay gets ±20 % jitter.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
FAILING_AFTER = 5  # consecutive failures before a subscription is marked failing
SEND_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
SEND_DEADLINE_SECONDS = 30  # well inside the claim's idle limit (service/db/session.py)
BODY_KEPT = 1000

SENT = Counter("qb_outbound_deliveries", "Outbound delivery attempts, by result.", ["result"])
LATENCY = Histogram(
    "qb_outbound_delivery_seconds", "Time from a change to its successful delivery."
)


def retry_delay(attempts: int, rng: Callable[[], float] = random.random) -> timedelta | None:
    """The wait after the `attempts`-th failure, or None once the schedule is spent."""
    if attempts > len(RETRY_DELAYS):
        return None
    base = RETRY_DELAYS[attempts - 1]
    return base * (0.8 + 0.4 * rng())


def signed_headers(secret: str, msg_id: str, sent_at: datetime, body: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id=msg_id, timestamp=sent_at, data=body),
        "content-type": "application/json",
        "user-agent": "Quarterback-Webhooks/1",
    }


async def _claim(session: AsyncSession, now: datetime) -> OutboxMessage | None:
    statement = (
        select(OutboxMessage)
        .where(col(OutboxMessage.status) == "pending", col(OutboxMessage.next_attempt_at) <= now)
        .order_by(col(OutboxMessage.next_attempt_at))
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return await session.scalar(statement)


async def deliver_one(
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    *,
    now: datetime,
    worker_id: str,
    send_timeout: httpx.Timeout = SEND_TIMEOUT,
) -> bool:
    """Claim and send the next due message; False when none is due."""
    async with sessionmaker() as session, session.begin():
        message = await _claim(session, now)
        if message is None:
            return False
        await limit_idle_claim(session)  # only a held claim needs it; empty polls skip it
        subscription = await session.get_one(Subscription, message.subscription_id)
        if not subscription.enabled or subscription.status == "disabled":
            message.status, message.last_error = "failed", "the subscription is disabled"
            return True
        body = json.dumps(message.payload, separators=(",", ":"))
        msg_id = f"msg_{message.id}"
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        response_body: str | None = None
        try:
            # httpx's timeouts are per read; a receiver trickling bytes could hold the claim
            # past the idle limit, so the whole exchange has a deadline too.
            async with asyncio.timeout(SEND_DEADLINE_SECONDS):
                response = await http.post(
                    subscription.url,
                    content=body,
                    headers=signed_headers(subscription.secret, msg_id, utcnow(), body),
                    timeout=send_timeout,
                    follow_redirects=False,
                )
            status_code, response_body = response.status_code, response.text[:BODY_KEPT]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:BODY_KEPT]
        except TimeoutError:
            error = f"no complete answer within {SEND_DEADLINE_SECONDS} s"
        duration_ms = int((time.perf_counter() - started) * 1000)
        await _record(session, message, subscription, status_code, error, response_body,
                      duration_ms, now, worker_id)  # fmt: skip
        return True


async def _record(
    session: AsyncSession,
    message: OutboxMessage,
    subscription: Subscription,
    status_code: int | None,
    error: str | None,
    response_body: str | None,
    duration_ms: int,
    now: datetime,
    worker_id: str,
) -> None:
    connection = await session.connection()
    await connection.execute(
        tables.delivery_attempts.insert(),
        {
            "id": uuid7(),
            "workspace_id": message.workspace_id,
            "message_id": message.id,
            "attempted_at": utcnow(),
            "status_code": status_code,
            "error": error,
            "duration_ms": duration_ms,
            "response_body": response_body,
            "worker_id": worker_id,
        },
    )
    message.attempts += 1
    ok = status_code is not None and 200 <= status_code < 300
    if ok:
        SENT.labels("delivered").inc()
        LATENCY.observe(max(0.0, (utcnow() - message.created_at).total_seconds()))
        message.status, message.delivered_at, message.last_error = "delivered", utcnow(), None
        subscription.consecutive_failures = 0
        if subscription.status == "failing":
            subscription.status = "active"
        return
    SENT.labels("failed").inc()
    message.last_error = error or f"HTTP {status_code}"
    subscription.consecutive_failures += 1
    if status_code == 410:
        # 410 Gone: the receiver asks to stop (Standard Webhooks). Disable the subscription.
        subscription.status, subscription.enabled = "disabled", False
        message.status = "failed"
        return
    if subscription.consecutive_failures >= FAILING_AFTER and subscription.status == "active":
        subscription.status = "failing"
        logger.warning("subscription %s is failing: %s", subscription.id, message.last_error)
    delay = retry_delay(message.attempts)
    if delay is None:
        message.status = "failed"
    else:
        message.next_attempt_at = now + delay


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    *,
    now: datetime | None = None,
    worker_id: str = "dispatcher",
    limit: int = 100,
    send_timeout: httpx.Timeout = SEND_TIMEOUT,
) -> int:
    """Send what is due now (at most `limit` messages); returns how many were handled."""
    now = now or utcnow()
    handled = 0
    while handled < limit and await deliver_one(
        sessionmaker, http, now=now, worker_id=worker_id, send_timeout=send_timeout
    ):
        handled += 1
    return handled


async def resend(session: AsyncSession, *, message: OutboxMessage) -> OutboxMessage:
    """Queue a message again now (after a receiver was fixed)."""
    await session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message.id)
        .values(status="pending", next_attempt_at=utcnow(), last_error=None)
    )
    await session.refresh(message)
    return message


class Dispatcher:
    """Polls the outbox every `poll_seconds` in the background (in `serve` and `worker`)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        poll_seconds: float = 2.0,
        worker_id: str = "dispatcher",
    ) -> None:
        self.sessionmaker = sessionmaker
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._http = httpx.AsyncClient()
        self._task = asyncio.create_task(self._run(), name=f"outbox {self.worker_id}")

    async def stop(self) -> None:
        """Finish the message in flight, then stop (its row lock is released by commit)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        if self._http is not None:
            await self._http.aclose()

    async def _run(self) -> None:
        assert self._http is not None
        while not self._stopping.is_set():
            try:
                handled = await deliver_due(
                    self.sessionmaker, self._http, worker_id=self.worker_id, limit=50
                )
            except Exception:  # keep polling: a database blip must not end delivery
                logger.exception("outbox pass failed")
                handled = 0
            if handled:
                continue
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                pass
