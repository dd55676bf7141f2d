"""Durable timers: schedule them, cancel them, and fire each one exactly once.

A domain turns a time rule into a timer with `schedule`. The key names the occurrence
(`renewal_window:<contract id>:2027-03-01`), unique per workspace, so scheduling it again
changes nothing and a key that fired never fires again. The domain says what a timer of its
kind does with `register(kind, handler)` when its module is imported.

Firing: claim and fire in one transaction. `run_due` takes one due timer at a time and, in
the transaction that claimed it, runs its handler and marks it fired:
claim (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL) → handler → mark fired → commit.
The row lock is the lease, and the database keeps it for exactly as long as the claiming
transaction lives: two workers never fire one timer (the second skips the locked row, and a
fired row no longer matches), the handler's writes and the `fired` mark commit together or
not at all, and a worker that dies mid-fire loses its connection, its transaction rolls back
and the timer is due again for the next pass. There is no lease to expire and no timer left
claimed by a dead worker. The price is a transaction open for as long as a handler runs, which
suits what handlers do: short database work (submit an event, raise a task). Calls to other
systems belong in an outbox that a handler writes, not in the handler.

SQLite runs the same code without `FOR UPDATE`: every transaction there starts with
`BEGIN IMMEDIATE` (service/db/engine.py), so writers already take turns, and SQLite serves
one process anyway.

Failures: the handler runs in a savepoint. When it raises, its writes roll back and the timer
stays pending with `attempts + 1`, `last_error`, and a later `due_at` (exponential backoff),
until `MAX_ATTEMPTS` make it `failed`. When the transaction itself fails (the commit, the
connection), the failure is recorded in a new transaction. No timer is lost either way.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from service.db import tables
from service.db.session import limit_idle_claim
from service.db.types import utcnow, uuid7
from service.timers.models import Timer

logger = logging.getLogger("quarterback.timers")

Handler = Callable[[AsyncSession, Timer], Awaitable[None]]

MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=6)
KEY_MAX_LENGTH = 300
ERROR_MAX_LENGTH = 2000

_handlers: dict[str, Handler] = {}


_warned_kinds: set[str] = set()


def register(kind: str, handler: Handler) -> Handler:
    """Make `handler(session, timer)` what a timer of `kind` does when it fires.

    The handler runs inside the transaction that marks the timer fired: it only flushes, and
    everything it writes commits with the `fired` mark or not at all. It gets the timer, so
    `timer.workspace_id` is the only workspace it may touch.
    """
    existing = _handlers.get(kind)
    if existing is not None and _name(existing) != _name(handler):
        raise ValueError(f"timer kind {kind!r} is already handled by {_name(existing)}")
    _handlers[kind] = handler
    return handler


def registered_kinds() -> list[str]:
    return sorted(_handlers)


def _name(handler: Handler) -> str:
    return f"{handler.__module__}.{getattr(handler, '__qualname__', repr(handler))}"


def retry_delay(attempts: int) -> timedelta:
    """How long a timer waits after its `attempts`-th failed attempt: 30 s, 1 min, 2 min, …"""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_RETRY)


async def schedule(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    key: str,
    kind: str,
    due_at: datetime,
    payload: dict[str, Any] | None = None,
    account_id: uuid.UUID | None = None,
    replace: bool = False,
) -> None:
    """Create the timer `key` unless the workspace has it already.

    With `replace=True` a timer that is still pending gets the new `due_at` and `payload`
    (a contract end date moved); one that fired, failed or was cancelled is left as it is.
    `account_id` must be an account of `workspace_id`; the timer goes when the account goes.
    """
    row = timer_row(
        workspace_id=workspace_id,
        key=key,
        kind=kind,
        due_at=due_at,
        payload=payload,
        account_id=account_id,
    )
    connection = await session.connection()
    await connection.execute(upsert_statement(connection.dialect.name, replace), row)


# The columns `timer_row` fills; the rest of a new timer's row takes the columns' defaults.
TIMER_ROW_COLUMNS = (
    "id",
    "workspace_id",
    "kind",
    "key",
    "account_id",
    "due_at",
    "payload",
    "status",
    "attempts",
    "created_at",
)


def timer_row(
    *,
    workspace_id: uuid.UUID,
    key: str,
    kind: str,
    due_at: datetime,
    payload: dict[str, Any] | None = None,
    account_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The row of a new pending timer, for `schedule` or for a caller that writes it in a
    statement of its own (a handoff's SLA timer goes in with its task)."""
    if not key or len(key) > KEY_MAX_LENGTH:
        raise ValueError(f"a timer key has 1 to {KEY_MAX_LENGTH} characters, got {len(key)}")
    if kind not in _handlers and kind not in _warned_kinds:
        # Once per kind: a process that only schedules (a script) need not load the handlers.
        _warned_kinds.add(kind)
        logger.warning("timer %s scheduled with kind %r that has no handler here", key, kind)
    return {
        "id": uuid7(),
        "workspace_id": workspace_id,
        "kind": kind,
        "key": key,
        "account_id": account_id,
        "due_at": due_at,
        "payload": payload or {},
        "status": "pending",
        "attempts": 0,
        "created_at": utcnow(),
    }


@lru_cache(maxsize=4)
def upsert_statement(dialect: str, replace: bool) -> Any:
    """The insert-unless-exists statement, built once per dialect: handoffs schedule an SLA
    timer on the transition hot path, where building statements costs more than running them."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(tables.timers)
    unique = ["workspace_id", "key"]
    if replace:
        return statement.on_conflict_do_update(
            index_elements=unique,
            set_={"due_at": statement.excluded.due_at, "payload": statement.excluded.payload},
            where=tables.timers.c.status == "pending",
        )
    return statement.on_conflict_do_nothing(index_elements=unique)


async def get_timer(session: AsyncSession, *, workspace_id: uuid.UUID, key: str) -> Timer | None:
    return await session.scalar(
        select(Timer).where(col(Timer.workspace_id) == workspace_id, col(Timer.key) == key)
    )


async def cancel(session: AsyncSession, *, workspace_id: uuid.UUID, key: str) -> bool:
    """Cancel the pending timer `key`; False when there is none (unknown, fired, cancelled)."""
    return bool(
        await _cancel_where(session, col(Timer.workspace_id) == workspace_id, col(Timer.key) == key)
    )


async def cancel_for_account(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    kind: str | None = None,
) -> int:
    """Cancel the account's pending timers (of one kind, if given); return how many."""
    conditions = [col(Timer.workspace_id) == workspace_id, col(Timer.account_id) == account_id]
    if kind is not None:
        conditions.append(col(Timer.kind) == kind)
    return await _cancel_where(session, *conditions)


async def _cancel_where(session: AsyncSession, *conditions: Any) -> int:
    cancelled = await session.scalars(
        update(Timer)
        .where(*conditions, col(Timer.status) == "pending")
        .values(status="cancelled")
        .returning(col(Timer.id))
        .execution_options(synchronize_session=False)
    )
    return len(cancelled.all())


@dataclass(frozen=True)
class PassResult:
    fired: int
    failed: int

    @property
    def claimed(self) -> int:
        return self.fired + self.failed


async def run_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    now: datetime | None = None,
    worker_id: str,
    batch: int = 50,
    stopping: asyncio.Event | None = None,
) -> int:
    """Fire up to `batch` timers due at `now`, each in its own transaction; return how many fired.

    `now` is the pass's clock (defaults to the current time): timers due by then are claimed,
    and it stamps `fired_at` and the retry time of failures. Between timers the pass stops
    early once `stopping` is set; the timer in flight always finishes.
    """
    result = await run_pass(
        sessionmaker, now=now or utcnow(), worker_id=worker_id, batch=batch, stopping=stopping
    )
    return result.fired


async def run_pass(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    now: datetime,
    worker_id: str,
    batch: int = 50,
    stopping: asyncio.Event | None = None,
) -> PassResult:
    """`run_due`, telling fired and failed timers apart (a full batch means more may be due)."""
    fired = failed = 0
    while fired + failed < batch and not (stopping is not None and stopping.is_set()):
        outcome = await _fire_next(sessionmaker, now, worker_id)
        if outcome is None:
            break
        if outcome:
            fired += 1
        else:
            failed += 1
    return PassResult(fired=fired, failed=failed)


async def _fire_next(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime, worker_id: str
) -> bool | None:
    """Claim and fire the next due timer: True fired, False failed, None when none is due."""
    claimed: uuid.UUID | None = None
    try:
        async with sessionmaker() as session, session.begin():
            timer = await _claim(session, now)
            if timer is None:
                return None
            await limit_idle_claim(session)  # only a held claim needs it; empty polls skip it
            claimed, attempts = timer.id, timer.attempts
            error = await _run_handler(session, timer)
            if error is None:
                await _set(
                    session,
                    claimed,
                    status="fired",
                    attempts=attempts + 1,
                    fired_at=now,
                    last_error=None,
                    worker_id=worker_id,
                )
            else:
                await _set(session, claimed, **_failure(attempts, error, now, worker_id))
        return error is None
    except Exception as exc:
        if claimed is None:
            raise  # the claim itself failed (database down): nothing was taken
        logger.exception("timer %s: its transaction failed", claimed)
        await _record_failure(sessionmaker, claimed, _describe(exc), now, worker_id)
        return False


async def _claim(session: AsyncSession, now: datetime) -> Timer | None:
    # The one query that crosses workspaces, by design: a worker serves every tenant, and the
    # handler it calls is handed the timer, whose workspace_id scopes everything it does.
    statement = (
        select(Timer)
        .where(col(Timer.status) == "pending", col(Timer.due_at) <= now)
        .order_by(col(Timer.due_at), col(Timer.id))
        .limit(1)
    )
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return await session.scalar(statement)


async def _run_handler(session: AsyncSession, timer: Timer) -> str | None:
    """Run the timer's handler in a savepoint; return what went wrong, or None."""
    handler = _handlers.get(timer.kind)
    if handler is None:
        return f"no handler is registered for timer kind {timer.kind!r}"
    key, workspace_id = timer.key, timer.workspace_id
    try:
        async with session.begin_nested():
            await handler(session, timer)
    except Exception as exc:
        logger.warning("timer %s of workspace %s failed", key, workspace_id, exc_info=True)
        return _describe(exc)
    return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:ERROR_MAX_LENGTH]


def _failure(attempts: int, error: str, now: datetime, worker_id: str) -> dict[str, Any]:
    attempts += 1
    values: dict[str, Any] = {"attempts": attempts, "last_error": error, "worker_id": worker_id}
    if attempts >= MAX_ATTEMPTS:
        values["status"] = "failed"
    else:
        values["due_at"] = now + retry_delay(attempts)
    return values


async def _set(session: AsyncSession, timer_id: uuid.UUID, **values: Any) -> None:
    await session.execute(
        update(Timer)
        .where(col(Timer.id) == timer_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def _record_failure(
    sessionmaker: async_sessionmaker[AsyncSession],
    timer_id: uuid.UUID,
    error: str,
    now: datetime,
    worker_id: str,
) -> None:
    """Count a failed attempt whose own transaction could not commit."""
    async with sessionmaker() as session, session.begin():
        statement = select(Timer).where(col(Timer.id) == timer_id, col(Timer.status) == "pending")
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        timer = await session.scalar(statement)
        if timer is not None:  # else another worker has it now, or it was cancelled
            await _set(session, timer_id, **_failure(timer.attempts, error, now, worker_id))
