"""Proof under faults (issue 7, point 7), with real processes on PostgreSQL.

* `quarterback serve` is killed with SIGKILL in the middle of a burst of signed deliveries
  and restarted: every delivery answered 2xx is stored exactly once, nothing refused or
  never sent is stored, and the CRM's redelivery of the rest completes the picture, with
  one transition and one handoff per real change and `duplicates` counting exactly the
  repeats that reached a commit.
* `quarterback worker` is killed with SIGKILL while it holds both an outbox message
  mid-delivery and a due timer mid-fire: its claims die with its connection, and a new
  worker delivers the message (same webhook-id) and fires the timer, each exactly once.
* An xfail (strict) test pins a gap found here: a change redelivered before the change it
  follows (closed_won before opportunity_created) stays `pending`.

Every server here runs with QB_SCHEDULER_ENABLED=false, so the only process that delivers
the outbox or fires timers is the worker a test starts. The harness is tests/faults.py;
bench/faults.py runs the burst bigger and prints its ledger.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.config import Settings
from service.db import throwaway
from service.db.engine import create_engine, create_sessionmaker
from service.db.types import utcnow
from tests import factories
from tests import faults as kit
from tests.receiver import Received, Receiver

POSTGRES_URL = os.environ.get("QB_TEST_POSTGRES_URL")

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="fault tests kill real server and worker processes sharing PostgreSQL; "
    "set QB_TEST_POSTGRES_URL",
)

QUIET = {"QB_SCHEDULER_ENABLED": "false", "QB_OUTBOUND_ALLOW_PRIVATE_NETWORKS": "true"}


@dataclass
class Stack:
    """A migrated throwaway database and one `quarterback serve` on it, which a test may
    kill and restart (on the same port, so ingestion URLs stay valid)."""

    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    port: int
    server: kit.Process

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def restart(self) -> None:
        self.server.close()
        self.server = await kit.start_server(self.url, self.port, **QUIET)


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    assert POSTGRES_URL
    url = await throwaway.create_database(POSTGRES_URL, "qb_faults")
    engine = create_engine(Settings(database_url=url))
    running: Stack | None = None
    try:
        port = kit.free_port()
        server = await kit.start_server(url, port, **QUIET)  # it migrates first
        running = Stack(url, engine, create_sessionmaker(engine), port, server)
        yield running
    finally:
        if running is not None:
            running.server.close()
        await engine.dispose()
        await throwaway.drop_database(POSTGRES_URL, url)


# ------------------------------------------------------------------------ the server


async def test_a_server_killed_mid_burst_loses_no_acknowledged_delivery(stack: Stack) -> None:
    ws = await factories.create_workspace(stack.sessionmaker, name="Faults: burst")
    source = await kit.post(
        stack.api, ws, "/v1/webhook-sources", {"kind": "standard", "name": "CRM relay"}
    )
    # Outbox rows are written with each change and nothing delivers them here (no worker
    # runs), so they can be counted: one task.raised message per task, none lost or doubled.
    await kit.post(
        stack.api, ws, "/v1/subscriptions",
        {"url": "http://127.0.0.1:9/unused", "events": ["task.raised"]},
    )  # fmt: skip
    deliveries = kit.deal_deliveries(accounts=100, tag="burst")
    answers = await kit.send(
        source["ingestion_url"],
        source["secret"],
        deliveries,
        senders=8,
        after_answers=(70, stack.server.kill),
    )
    assert not stack.server.alive
    counts = kit.tally(answers)
    # The kill landed mid-burst: some deliveries answered, the rest failed without one.
    assert counts["2xx"] >= 70 and counts["error"] > 0, counts

    await stack.restart()
    before = await kit.picture(stack.engine, ws.id, source["namespace"])
    assert kit.after_crash_problems(deliveries, answers, before) == []

    # The CRM redelivers all it got no 2xx for, and some it did (CRMs may), each account's
    # changes in their order (out of order: see the xfail test below).
    again = kit.to_redeliver(deliveries, answers, every_nth_2xx=4)
    redelivered = await kit.send(
        source["ingestion_url"], source["secret"], again, senders=8, retry_refusals=True
    )
    after = await kit.picture(stack.engine, ws.id, source["namespace"])
    problems = kit.final_problems(deliveries, before, redelivered, after)
    print("\n".join(kit.ledger(deliveries, answers, before, redelivered, after, problems).lines()))
    assert problems == []
    assert after.stored == len(deliveries)
    assert sum(after.handoffs.values()) == len(deliveries)  # two changes, two handoffs each
    repeats_of_2xx = sum(1 for d in again if answers[d.msg_id].outcome == "2xx")
    stored_unanswered = sum(
        1 for d in again if d.key in before.events and answers[d.msg_id].outcome != "2xx"
    )
    assert repeats_of_2xx > 0
    assert after.duplicates == repeats_of_2xx + stored_unanswered


async def test_a_change_redelivered_before_the_one_it_follows_still_applies(
    stack: Stack,
) -> None:
    """CRMs retry each failed delivery on its own schedule, so after an outage a deal's
    closed_won may come back before its opportunity_created. Both are acknowledged; the
    picture is complete only if the first is applied once the second creates the account."""
    ws = await factories.create_workspace(stack.sessionmaker, name="Faults: out of order")
    source = await kit.post(
        stack.api, ws, "/v1/webhook-sources", {"kind": "standard", "name": "CRM relay"}
    )
    opened, won = kit.deal_deliveries(accounts=1, tag="late")
    answers = await kit.send(source["ingestion_url"], source["secret"], [won, opened], senders=1)
    assert {answer.outcome for answer in answers.values()} == {"2xx"}
    seen = await kit.picture(stack.engine, ws.id, source["namespace"])
    assert [seen.events[d.key].outcome for d in (opened, won)] == ["applied", "applied"]
    assert (seen.stages[opened.account], seen.handoffs[opened.account]) == ("IMPLEMENT", 2)


# ------------------------------------------------------------------------ the worker


class StuckReceiver(Receiver):
    """A subscriber whose first request hangs until released (a receiver stuck while a
    worker delivers to it); every later request gets a 200 at once."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.release = threading.Event()

    async def _hook(self, request: Request) -> Response:
        self.received.append(Received(dict(request.headers), await request.body()))
        if len(self.received) == 1:
            await asyncio.to_thread(self.release.wait, 60)
        return JSONResponse({"ok": True})

    def stop(self) -> None:
        self.release.set()
        super().stop()


async def _claimable(engine: AsyncEngine, table: str, row_id: uuid.UUID) -> bool:
    """Whether a worker could claim the row now: pending and not locked by anyone."""
    async with engine.connect() as connection, connection.begin():
        found = await connection.scalar(
            text(
                f"SELECT id FROM {table} WHERE id = :id AND status = 'pending' "
                "FOR UPDATE SKIP LOCKED"
            ),
            {"id": row_id},
        )
        await connection.rollback()
    return found is not None


async def _status(engine: AsyncEngine, table: str, row_id: uuid.UUID) -> Any:
    """(status, attempts, worker_id) of a timer; (status, attempts, None) of a message."""
    worker = "worker_id" if table == "timers" else "NULL AS worker_id"
    async with engine.connect() as connection:
        row = await connection.execute(
            text(f"SELECT status, attempts, {worker} FROM {table} WHERE id = :id"), {"id": row_id}
        )
        return row.one()


async def _count(engine: AsyncEngine, sql: str, **params: Any) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text(sql), params) or 0)


async def _outbox_with_three_messages(stack: Stack, receiver: Receiver) -> tuple[str, list[Any]]:
    """A workspace subscribed to task.raised at `receiver`, and three handoffs to announce;
    returns the subscription's secret and the three outbox message ids."""
    ws = await factories.create_workspace(stack.sessionmaker, name="Faults: outbox")
    subscription = await kit.post(
        stack.api, ws, "/v1/subscriptions", {"url": receiver.url, "events": ["task.raised"]}
    )
    for n in range(3):
        await kit.post(
            stack.api, ws, "/v1/events?source=faults",
            {"id": f"opp-{n}", "type": "opportunity_created",
             "occurred_at": "2027-01-05T10:00:00Z",
             "account": {"external_id": f"outbox-{n}", "name": f"Outbox {n}"}},
        )  # fmt: skip
    async with stack.engine.connect() as connection:
        messages = (
            await connection.scalars(
                text("SELECT id FROM outbox_messages WHERE workspace_id = :ws"), {"ws": ws.id}
            )
        ).all()
    assert len(messages) == 3
    return subscription["secret"], list(messages)


async def _five_due_timers(stack: Stack) -> tuple[factories.WorkspaceKey, list[Any], list[Any]]:
    """A workspace with five accounts and, per account, a due `event` timer (a time rule
    that submits opportunity_created), due in account order; returns accounts and timers."""
    from service.timers.events import schedule_event

    ws = await factories.create_workspace(stack.sessionmaker, name="Faults: timers")
    accounts = [
        await kit.post(stack.api, ws, "/v1/accounts", {"name": f"Timer account {n}"})
        for n in range(5)
    ]
    now = utcnow()
    async with stack.sessionmaker() as session, session.begin():
        for n, account in enumerate(accounts):
            await schedule_event(
                session,
                workspace_id=ws.id,
                key=f"faults:opportunity:{n}",
                due_at=now - timedelta(minutes=10 - n),
                event={"type": "opportunity_created", "account": {"id": account["id"]}},
                account_id=uuid.UUID(account["id"]),
            )
    async with stack.engine.connect() as connection:
        timers = (
            await connection.scalars(
                text(
                    "SELECT id FROM timers WHERE workspace_id = :ws AND key LIKE 'faults:%' "
                    "ORDER BY due_at"
                ),
                {"ws": ws.id},
            )
        ).all()
    assert len(timers) == 5
    return ws, [account["id"] for account in accounts], list(timers)


async def test_a_worker_killed_holding_a_delivery_and_a_timer_strands_neither(
    stack: Stack,
) -> None:
    """One worker runs both loops, so one SIGKILL takes it down holding (a) an outbox
    message whose receiver hangs mid-request and (b) a due timer whose event waits for an
    account row someone else has locked. A new worker finishes both, each exactly once."""
    receiver = StuckReceiver().start()
    workers: list[kit.Process] = []
    blocker = await stack.engine.connect()
    try:
        secret, messages = await _outbox_with_three_messages(stack, receiver)
        timer_ws, accounts, timers = await _five_due_timers(stack)
        stuck_timer = timers[2]
        await blocker.begin()
        await blocker.execute(
            text("SELECT id FROM accounts WHERE id = :id FOR UPDATE"), {"id": accounts[2]}
        )

        first, first_id = await kit.start_worker(stack.url)
        workers.append(first)

        async def holding_both() -> bool:
            fired = await _count(
                stack.engine, "SELECT count(*) FROM timers WHERE id = ANY(:ids) AND "
                "status = 'fired'", ids=timers[:2],
            )  # fmt: skip
            return (
                len(receiver.received) == 1
                and fired == 2
                and not await _claimable(stack.engine, "timers", stuck_timer)
            )

        await kit.wait_for(holding_both, "the worker to hold a message and a timer", process=first)
        stuck_message = uuid.UUID(receiver.received[0].headers["webhook-id"].removeprefix("msg_"))
        assert stuck_message in messages
        assert not await _claimable(stack.engine, "outbox_messages", stuck_message)

        first.kill()

        async def message_released() -> bool:
            return await _claimable(stack.engine, "outbox_messages", stuck_message)

        # The claims die with the process: PostgreSQL rolls its transactions back. (The
        # timer's server process may wait for the row lock it asked for before it finds its
        # client gone; the lock's holder lets go now.)
        await kit.wait_for(message_released, "the dead worker's message claim to go", within=10)
        await blocker.rollback()

        async def timer_released() -> bool:
            return await _claimable(stack.engine, "timers", stuck_timer)

        await kit.wait_for(timer_released, "the dead worker's timer claim to go", within=10)
        assert (await _status(stack.engine, "outbox_messages", stuck_message)).attempts == 0
        assert tuple(await _status(stack.engine, "timers", stuck_timer)) == ("pending", 0, None)

        second, second_id = await kit.start_worker(stack.url)
        workers.append(second)

        async def all_done() -> bool:
            undelivered = await _count(
                stack.engine, "SELECT count(*) FROM outbox_messages WHERE id = ANY(:ids) "
                "AND status <> 'delivered'", ids=messages,
            )  # fmt: skip
            unfired = await _count(
                stack.engine, "SELECT count(*) FROM timers WHERE id = ANY(:ids) "
                "AND status <> 'fired'", ids=timers,
            )  # fmt: skip
            return undelivered == unfired == 0

        await kit.wait_for(all_done, "every message delivered and timer fired", process=second)
    finally:
        await blocker.close()
        for worker in workers:
            worker.close()
        receiver.stop()

    # (a) The held message came again with its webhook-id (the receiver's dedupe key), the
    # others once, every request signed with the subscription's secret; the dead worker's
    # attempt left no row, the new worker's did.
    ids = sorted(item.headers["webhook-id"] for item in receiver.received)
    assert ids == sorted([f"msg_{stuck_message}", *(f"msg_{m}" for m in messages)])
    for item in receiver.received:
        Webhook(secret).verify(item.body, item.headers)
    async with stack.engine.connect() as connection:
        attempts = (
            await connection.execute(
                text(
                    "SELECT message_id, worker_id, status_code FROM delivery_attempts "
                    "WHERE message_id = ANY(:ids)"
                ),
                {"ids": messages},
            )
        ).all()
    assert sorted(tuple(row) for row in attempts) == sorted((m, second_id, 200) for m in messages)

    # (b) The first worker fired the first two timers, the new one the rest; each timer's
    # event applied once: one move and one handoff per account.
    states = [tuple(await _status(stack.engine, "timers", t)) for t in timers]
    assert states == [("fired", 1, first_id)] * 2 + [("fired", 1, second_id)] * 3
    async with stack.engine.connect() as connection:
        events = (
            await connection.execute(
                text(
                    "SELECT external_id, outcome, duplicates FROM lifecycle_events "
                    "WHERE workspace_id = :ws AND source = 'timer' ORDER BY external_id"
                ),
                {"ws": timer_ws.id},
            )
        ).all()
    assert [tuple(row) for row in events] == [
        (f"faults:opportunity:{n}", "applied", 0) for n in range(5)
    ]
    moves = await _count(
        stack.engine,
        "SELECT count(*) FROM stage_transitions WHERE workspace_id = :ws "
        "AND from_stage IS NOT NULL",
        ws=timer_ws.id,
    )
    handoffs = await _count(
        stack.engine,
        "SELECT count(*) FROM tasks WHERE workspace_id = :ws AND kind = 'handoff'",
        ws=timer_ws.id,
    )
    assert (moves, handoffs) == (5, 5)
