"""Live notices: what GraphQL subscriptions hear, once the change that caused them commits.

A change (a task raised, a stage moved) calls `announce` inside its transaction. That only
appends a small notice to `session.info`: no statement, no round trip on the hot path.
SQLAlchemy's session events then decide its fate: a rolled-back savepoint or transaction
drops the notices recorded inside it, and the outermost commit hands the rest to the
session's broadcaster (put in `session.info` by the app's sessionmaker).

The broadcaster delivers notices to the subscribers of every replica:
- on PostgreSQL it sends them with NOTIFY from its own dedicated connection, which also
  LISTENs, so this replica hears its own notices the same way the others do;
- on SQLite (one process serves the database) it fans them out in-process.

Notices carry ids only, so a NOTIFY stays far below PostgreSQL's 8,000-byte limit; the
subscription loads what its client asked for in its own short session. Delivery is live,
not durable: a subscriber that is not connected when a change commits does not hear of it
(the outbox and webhooks are the durable path).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
from prometheus_client import Gauge
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)

TASK_RAISED = "task_raised"
STAGE_CHANGED = "stage_changed"

CHANNEL = "quarterback_live"
# Notices per NOTIFY: one is ~200 bytes of JSON, so 30 stay well under the 8,000-byte cap.
NOTICES_PER_NOTIFY = 30
# A subscriber that falls this far behind loses notices rather than growing memory.
SUBSCRIBER_BACKLOG = 1_000
# Notices waiting for the PostgreSQL connection (e.g. while it reconnects).
SEND_BACKLOG = 10_000

SUBSCRIBERS = Gauge("qb_live_subscribers", "GraphQL subscriptions listening in this process.")

_PENDING = "quarterback.live.pending"
_BROADCASTER = "quarterback.live.broadcaster"


@dataclass(frozen=True)
class Notice:
    """Something a subscriber may want to hear about: what happened, where, and its id."""

    kind: str
    workspace_id: str
    id: str  # the task raised, or the stage transition written
    account_id: str
    department: str | None = None  # the task's department, or the new quarterback


def announce(
    session: AsyncSession,
    kind: str,
    *,
    workspace_id: uuid.UUID,
    id: uuid.UUID,
    account_id: uuid.UUID,
    department: str | None,
) -> None:
    """Record a notice to broadcast if (and only if) the current transaction commits."""
    sync = session.sync_session
    if _BROADCASTER not in sync.info:
        return  # a session nobody listens to (a CLI command, a test's own session)
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    notice = Notice(kind, str(workspace_id), str(id), str(account_id), department)
    sync.info.setdefault(_PENDING, []).append((transaction, notice))


def session_info(broadcaster: Broadcaster) -> dict[str, Any]:
    """The `info` a sessionmaker gives its sessions so that their commits are announced."""
    return {_BROADCASTER: broadcaster}


def _inside(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if pending:
        pending[:] = [item for item in pending if not _inside(item[0], previous_transaction)]


@event.listens_for(Session, "after_commit")
def _broadcast_committed(session: Session) -> None:
    # Also fires when a savepoint is released; only the outermost commit makes changes visible.
    if session.get_nested_transaction() is not None:
        return
    pending = session.info.pop(_PENDING, None)
    broadcaster = session.info.get(_BROADCASTER)
    if pending and broadcaster is not None:
        broadcaster.publish([notice for _, notice in pending])


class _Subscriber:
    def __init__(self, accepts: Callable[[Notice], bool]) -> None:
        self.accepts = accepts
        self.queue: asyncio.Queue[Notice] = asyncio.Queue(SUBSCRIBER_BACKLOG)

    def offer(self, notice: Notice) -> None:
        if not self.accepts(notice):
            return
        try:
            self.queue.put_nowait(notice)
        except asyncio.QueueFull:
            log.warning("live subscriber too slow; dropped a %s notice", notice.kind)


class Broadcaster:
    """In-process fan-out: the whole story on SQLite, the receiving half on PostgreSQL."""

    def __init__(self) -> None:
        self._subscribers: set[_Subscriber] = set()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def publish(self, notices: list[Notice]) -> None:
        """Called right after a commit, on the event loop's thread; never blocks."""
        self._deliver(notices)

    def _deliver(self, notices: list[Notice]) -> None:
        for notice in notices:
            for subscriber in tuple(self._subscribers):
                subscriber.offer(notice)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, accepts: Callable[[Notice], bool]
    ) -> AsyncIterator[AsyncIterator[Notice]]:
        """Notices `accepts` lets through, from now until the block ends."""
        subscriber = _Subscriber(accepts)
        self._subscribers.add(subscriber)
        SUBSCRIBERS.inc()

        async def notices() -> AsyncIterator[Notice]:
            while True:
                yield await subscriber.queue.get()

        try:
            yield notices()
        finally:
            self._subscribers.discard(subscriber)
            SUBSCRIBERS.dec()


class PostgresBroadcaster(Broadcaster):
    """NOTIFY and LISTEN on one dedicated asyncpg connection, reconnecting when it drops."""

    def __init__(self, url: URL, *, retry_seconds: float = 1.0) -> None:
        super().__init__()
        # asyncpg takes a plain libpq URL, not SQLAlchemy's `postgresql+asyncpg://`.
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._retry_seconds = retry_seconds
        self._outgoing: asyncio.Queue[list[Notice]] = asyncio.Queue(SEND_BACKLOG)
        self._carried: list[Notice] = []  # taken from the queue, sent with the next NOTIFY
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # set while LISTEN is in place (tests wait on it)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-broadcaster")
        # Serve right away, but give the listener a moment so early subscribers hear everything.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), timeout=5)

    async def stop(self) -> None:
        # Send what committed changes are still waiting for, briefly; then close.
        deadline = asyncio.get_running_loop().time() + 2
        while (self._carried or not self._outgoing.empty()) and self.listening.is_set():
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def publish(self, notices: list[Notice]) -> None:
        for start in range(0, len(notices), NOTICES_PER_NOTIFY):
            try:
                self._outgoing.put_nowait(notices[start : start + NOTICES_PER_NOTIFY])
            except asyncio.QueueFull:
                log.warning("live notices backlog full; dropped %d notices", len(notices))
                return

    async def _run(self) -> None:
        while True:
            try:
                await self._serve_one_connection()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any connection failure: wait, then reconnect
                log.warning("live notices connection lost (%s); reconnecting", exc)
            self.listening.clear()
            await asyncio.sleep(self._retry_seconds)

    async def _serve_one_connection(self) -> None:
        connection = await asyncpg.connect(
            self._dsn, server_settings={"application_name": "quarterback-live"}
        )
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._heard)
            self.listening.set()
            while not lost.is_set():
                batch = await self._next_batch(lost)
                if batch is None:
                    break
                try:
                    await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, _encode(batch))
                except Exception:
                    self._requeue(batch)  # sent again on the next connection
                    raise
        finally:
            self.listening.clear()
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)

    async def _next_batch(self, lost: asyncio.Event) -> list[Notice] | None:
        if self._carried:
            first, self._carried = self._carried, []
            return self._with_queued(first)
        getting = asyncio.ensure_future(self._outgoing.get())
        dropped = asyncio.ensure_future(lost.wait())
        done, _ = await asyncio.wait({getting, dropped}, return_when=asyncio.FIRST_COMPLETED)
        dropped.cancel()
        if getting not in done:
            getting.cancel()
            return None
        return self._with_queued(getting.result())

    def _with_queued(self, batch: list[Notice]) -> list[Notice]:
        """`batch` and the notices of the commits queued behind it, up to one NOTIFY's worth
        (a commit's notices that would not fit wait for the next).

        Under load, commits queue while the previous NOTIFY is on its way: one NOTIFY for all
        of them instead of one each spares PostgreSQL a transaction per commit and every
        listening replica a wake-up."""
        batch = list(batch)
        while not self._outgoing.empty():
            queued = self._outgoing.get_nowait()
            if len(batch) + len(queued) > NOTICES_PER_NOTIFY:
                self._carried = queued
                break
            batch.extend(queued)
        return batch

    def _requeue(self, batch: list[Notice]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._outgoing.put_nowait(batch)

    def _heard(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            notices = _decode(payload)
        except (ValueError, TypeError, KeyError):
            log.warning("ignored a malformed live notice on %s", CHANNEL)
            return
        self._deliver(notices)


def _encode(notices: list[Notice]) -> str:
    return json.dumps([asdict(notice) for notice in notices], separators=(",", ":"))


def _decode(payload: str) -> list[Notice]:
    return [Notice(**item) for item in json.loads(payload)]


def broadcaster_for(url: URL) -> Broadcaster:
    """The broadcaster that reaches every replica on this database."""
    if url.get_backend_name() == "postgresql":
        return PostgresBroadcaster(url)
    return Broadcaster()
