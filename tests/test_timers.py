"""Durable timers: scheduled once per key, fired exactly once with their handler's writes,
retried when they fail, never fired twice by two workers, and run by `serve` and `worker`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from sqlmodel import col

from service.app import create_app
from service.config import Settings
from service.db.engine import create_engine, create_sessionmaker
from service.db.session import limit_idle_claim
from service.db.types import utcnow
from service.lifecycle.models import LifecycleEvent
from service.tasks.models import Task
from service.timers import service as timers_service
from service.timers.events import schedule_event
from service.timers.models import Timer
from service.timers.scheduler import Scheduler
from tests import factories

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
TASK = "test.task"
BLOCKING = "test.blocking"
SIGNAL = "test.signal"
RENDEZVOUS = "test.rendezvous"

failing_keys: set[str] = set()


async def raise_task(session, timer):
    """Writes a task named after the timer, then fails if the test says so."""
    session.add(
        Task(
            workspace_id=timer.workspace_id,
            account_id=timer.account_id,
            title=timer.key,
            department="csm",
        )
    )
    await session.flush()
    if timer.key in failing_keys:
        raise RuntimeError(f"boom in {timer.key}")


class Gate:
    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.holder: str | None = None


gate = Gate()


async def block_until_released(session, timer):
    gate.entered.set()
    await gate.release.wait()


async def signal_fired(session, timer):
    gate.entered.set()


async def hold_first_until_another_fires(session, timer):
    """The first timer claimed waits inside its transaction until another one has fired."""
    await raise_task(session, timer)
    if gate.holder is None:
        gate.holder = timer.key
        await asyncio.wait_for(gate.release.wait(), timeout=20)
    else:
        gate.release.set()


timers_service.register(TASK, raise_task)
timers_service.register(BLOCKING, block_until_released)
timers_service.register(SIGNAL, signal_fired)
timers_service.register(RENDEZVOUS, hold_first_until_another_fires)


def _new_gate() -> Gate:
    global gate
    gate = Gate()
    return gate


@pytest.fixture(autouse=True)
def _fresh_state():
    _new_gate()
    failing_keys.clear()


async def _account(client, ws) -> uuid.UUID:
    return uuid.UUID((await factories.create_account(client, ws))["id"])


async def _schedule(db, ws, key, account_id=None, *, kind=TASK, due_at=NOW, **options):
    async with db.sessionmaker() as session, session.begin():
        await timers_service.schedule(
            session,
            workspace_id=ws.id,
            key=key,
            kind=kind,
            due_at=due_at,
            account_id=account_id,
            **options,
        )


async def _timer(db, ws, key) -> Timer:
    async with db.sessionmaker() as session:
        timer = await timers_service.get_timer(session, workspace_id=ws.id, key=key)
    assert timer is not None
    return timer


async def _tasks(db, workspace_id) -> list[tuple[str, uuid.UUID]]:
    async with db.sessionmaker() as session:
        rows = await session.execute(
            select(col(Task.title), col(Task.account_id))
            .where(col(Task.workspace_id) == workspace_id)
            .order_by(col(Task.title))
        )
        return [(title, account_id) for title, account_id in rows]


async def test_scheduling_a_key_again_keeps_one_timer(client, db, workspace):
    account_id = await _account(client, workspace)
    await _schedule(db, workspace, "renewal:1", account_id, payload={"days": 120})
    await _schedule(db, workspace, "renewal:1", account_id, due_at=NOW + timedelta(days=1))
    timer = await _timer(db, workspace, "renewal:1")
    assert (timer.due_at, timer.payload, timer.status) == (NOW, {"days": 120}, "pending")
    assert timer.account_id == account_id and timer.kind == TASK

    later = NOW + timedelta(days=7)
    await _schedule(db, workspace, "renewal:1", account_id, due_at=later, replace=True)
    timer = await _timer(db, workspace, "renewal:1")
    assert (timer.due_at, timer.payload) == (later, {})

    assert await timers_service.run_due(db.sessionmaker, now=later, worker_id="w") == 1
    # Fired: the key names that occurrence for good, even with replace=True.
    await _schedule(db, workspace, "renewal:1", account_id, due_at=later, replace=True)
    await _schedule(db, workspace, "renewal:1", account_id, due_at=later)
    assert await timers_service.run_due(db.sessionmaker, now=later, worker_id="w") == 0
    async with db.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Timer)) == 1
    assert (await _timer(db, workspace, "renewal:1")).status == "fired"
    assert len(await _tasks(db, workspace.id)) == 1


async def test_a_due_timer_fires_once_and_its_writes_commit_with_it(client, db, workspace):
    account_id = await _account(client, workspace)
    await _schedule(db, workspace, "sla:1", account_id)
    early = NOW - timedelta(seconds=1)
    assert await timers_service.run_due(db.sessionmaker, now=early, worker_id="w1") == 0
    assert await _tasks(db, workspace.id) == []

    assert await timers_service.run_due(db.sessionmaker, now=NOW, worker_id="w1") == 1
    assert await _tasks(db, workspace.id) == [("sla:1", account_id)]
    timer = await _timer(db, workspace, "sla:1")
    assert (timer.status, timer.attempts, timer.fired_at, timer.worker_id) == (
        "fired",
        1,
        NOW,
        "w1",
    )
    later = NOW + timedelta(days=30)
    assert await timers_service.run_due(db.sessionmaker, now=later, worker_id="w2") == 0
    assert len(await _tasks(db, workspace.id)) == 1


async def test_a_failing_handler_is_retried_later_and_its_writes_roll_back(client, db, workspace):
    account_id = await _account(client, workspace)
    await _schedule(db, workspace, "flaky", account_id)
    failing_keys.add("flaky")

    assert await timers_service.run_due(db.sessionmaker, now=NOW, worker_id="w") == 0
    timer = await _timer(db, workspace, "flaky")
    assert (timer.status, timer.attempts) == ("pending", 1)
    assert timer.last_error == "RuntimeError: boom in flaky"
    assert timer.due_at == NOW + timers_service.retry_delay(1)
    assert await _tasks(db, workspace.id) == []  # the handler's task rolled back with it

    backing_off = NOW + timers_service.retry_delay(1) - timedelta(seconds=1)
    assert await timers_service.run_due(db.sessionmaker, now=backing_off, worker_id="w") == 0
    assert (await _timer(db, workspace, "flaky")).attempts == 1

    failing_keys.clear()
    retry = NOW + timers_service.retry_delay(1)
    assert await timers_service.run_due(db.sessionmaker, now=retry, worker_id="w") == 1
    timer = await _timer(db, workspace, "flaky")
    assert (timer.status, timer.attempts, timer.last_error) == ("fired", 2, None)
    assert await _tasks(db, workspace.id) == [("flaky", account_id)]


async def test_a_timer_fails_for_good_after_its_attempts(client, db, workspace):
    account_id = await _account(client, workspace)
    await _schedule(db, workspace, "doomed", account_id)
    await _schedule(db, workspace, "orphan", account_id, kind="nobody.handles.this")
    failing_keys.add("doomed")
    now = NOW
    for _ in range(timers_service.MAX_ATTEMPTS):
        assert await timers_service.run_due(db.sessionmaker, now=now, worker_id="w") == 0
        now += timers_service.LONGEST_RETRY
    doomed = await _timer(db, workspace, "doomed")
    assert (doomed.status, doomed.attempts) == ("failed", timers_service.MAX_ATTEMPTS)
    orphan = await _timer(db, workspace, "orphan")
    assert orphan.status == "failed"
    assert "no handler" in (orphan.last_error or "")
    failing_keys.clear()
    assert await timers_service.run_due(db.sessionmaker, now=now, worker_id="w") == 0
    assert await _tasks(db, workspace.id) == []


async def test_cancel(client, db, workspace, other_workspace):
    first, second = await _account(client, workspace), await _account(client, workspace)
    await _schedule(db, workspace, "a", first)
    await _schedule(db, workspace, "b", first)
    await _schedule(db, workspace, "c", first, kind=SIGNAL)
    await _schedule(db, workspace, "d", second)
    async with db.sessionmaker() as session, session.begin():
        # Another workspace's id changes nothing.
        assert not await timers_service.cancel(session, workspace_id=other_workspace.id, key="a")
        assert (
            await timers_service.cancel_for_account(
                session, workspace_id=other_workspace.id, account_id=first
            )
            == 0
        )
        assert await timers_service.cancel(session, workspace_id=workspace.id, key="a")
        assert not await timers_service.cancel(session, workspace_id=workspace.id, key="a")
        assert not await timers_service.cancel(session, workspace_id=workspace.id, key="zz")
        cancelled = await timers_service.cancel_for_account(
            session, workspace_id=workspace.id, account_id=first, kind=TASK
        )
        assert cancelled == 1  # "b"; "a" was cancelled already, "c" is another kind
    assert await timers_service.run_due(db.sessionmaker, now=NOW, worker_id="w") == 2
    assert await _tasks(db, workspace.id) == [("d", second)]
    assert gate.entered.is_set()  # "c" fired
    statuses = {key: (await _timer(db, workspace, key)).status for key in "abcd"}
    assert statuses == {"a": "cancelled", "b": "cancelled", "c": "fired", "d": "fired"}
    async with db.sessionmaker() as session, session.begin():
        assert not await timers_service.cancel(session, workspace_id=workspace.id, key="d")


async def test_handlers_act_in_the_timers_own_workspace(client, db, workspace, other_workspace):
    mine, theirs = await _account(client, workspace), await _account(client, other_workspace)
    await _schedule(db, workspace, "same-key", mine)
    await _schedule(db, other_workspace, "same-key", theirs)  # keys are per workspace
    assert await timers_service.run_due(db.sessionmaker, now=NOW, worker_id="w") == 2
    assert await _tasks(db, workspace.id) == [("same-key", mine)]
    assert await _tasks(db, other_workspace.id) == [("same-key", theirs)]
    tasks = (await client.get("/v1/tasks", headers=workspace.headers)).json()["items"]
    assert [t["account_id"] for t in tasks] == [str(mine)]


async def test_an_event_timer_goes_through_the_event_path_once(client, db, workspace):
    account_id = await _account(client, workspace)
    event = {"type": "opportunity_created", "data": {"rule": "test"}}
    async with db.sessionmaker() as session, session.begin():
        await schedule_event(
            session, workspace_id=workspace.id, key="opp:1", due_at=NOW, event=event,
            account_id=account_id,
        )  # fmt: skip
        # A second timer naming the same event id: the event path applies it once.
        await schedule_event(
            session, workspace_id=workspace.id, key="opp:1-again", due_at=NOW,
            event={**event, "id": "opp:1"}, account_id=account_id,
        )  # fmt: skip
    # Both event timers fire, and so does the acceptance SLA of the handoff the event raised
    # (set from the real clock, so long due at NOW).
    assert await timers_service.run_due(db.sessionmaker, now=NOW, worker_id="w") == 3

    account = (await client.get(f"/v1/accounts/{account_id}", headers=workspace.headers)).json()
    assert account["stage"] == "ACQUIRE"
    async with db.sessionmaker() as session:
        events = list(
            await session.scalars(
                select(LifecycleEvent).where(col(LifecycleEvent.workspace_id) == workspace.id)
            )
        )
    assert [(e.source, e.external_id, e.outcome) for e in events] == [("timer", "opp:1", "applied")]
    assert events[0].occurred_at == NOW
    history = (
        await client.get(f"/v1/accounts/{account_id}/transitions", headers=workspace.headers)
    ).json()["items"]
    assert [h["to_stage"] for h in history].count("ACQUIRE") == 1


async def test_an_event_timer_is_checked_when_scheduled(db, workspace):
    async with db.sessionmaker() as session, session.begin():
        with pytest.raises(ValueError, match="not a lifecycle event"):
            await schedule_event(
                session,
                workspace_id=workspace.id,
                key="bad",
                due_at=NOW,
                event={"type": "no_such_event"},
                account_id=uuid.uuid4(),
            )
        with pytest.raises(ValueError, match="name the account"):
            await schedule_event(
                session, workspace_id=workspace.id, key="bad", due_at=NOW, event={"type": "go_live"}
            )


async def test_two_workers_fire_every_timer_exactly_once(client, db, workspace):
    account_id = await _account(client, workspace)
    keys = [f"t{i:03}" for i in range(60)]
    for key in keys:
        await _schedule(db, workspace, key, account_id)
    fired = await asyncio.gather(
        timers_service.run_due(db.sessionmaker, now=NOW, worker_id="w1", batch=100),
        timers_service.run_due(db.sessionmaker, now=NOW, worker_id="w2", batch=100),
    )
    assert sum(fired) == len(keys)
    assert [title for title, _ in await _tasks(db, workspace.id)] == keys


async def test_a_postgresql_worker_skips_the_timer_another_one_holds(client, db, workspace):
    if db.dialect != "postgresql":
        pytest.skip("SQLite serves one process: its writers take turns (BEGIN IMMEDIATE)")
    account_id = await _account(client, workspace)
    keys = [f"t{i:03}" for i in range(40)]
    for key in keys:
        await _schedule(db, workspace, key, account_id, kind=RENDEZVOUS)
    # The first timer claimed stays locked until the other worker fires one: only a claim that
    # skips locked rows gets there (a blocking claim would wait for it and time out).
    fired = await asyncio.gather(
        timers_service.run_due(db.sessionmaker, now=NOW, worker_id="w1", batch=100),
        timers_service.run_due(db.sessionmaker, now=NOW, worker_id="w2", batch=100),
    )
    assert sum(fired) == len(keys) and min(fired) >= 1
    assert [title for title, _ in await _tasks(db, workspace.id)] == keys
    async with db.sessionmaker() as session:
        workers = await session.execute(
            select(col(Timer.worker_id), func.count())
            .where(col(Timer.status) == "fired")
            .group_by(col(Timer.worker_id))
        )
        assert dict(workers.all()) == {"w1": fired[0], "w2": fired[1]}


async def test_a_claim_left_idle_is_ended_by_postgresql_and_the_timer_claimed_again(
    client, db, workspace
):
    """A worker whose host froze keeps its connection open but says nothing: PostgreSQL ends
    its claim transaction after the idle limit, and another worker takes the timer."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite serves one process: there is no claim held by another host")
    account_id = await _account(client, workspace)
    await _schedule(db, workspace, "held", account_id)
    frozen = db.sessionmaker()
    try:
        await frozen.begin()
        await limit_idle_claim(frozen, seconds=1)
        held = await timers_service._claim(frozen, NOW)
        assert held is not None
        async with db.sessionmaker() as session, session.begin():
            assert await timers_service._claim(session, NOW) is None  # locked: skipped
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            async with db.sessionmaker() as session, session.begin():
                if (claimed := await timers_service._claim(session, NOW)) is not None:
                    break
            assert asyncio.get_running_loop().time() < deadline, "the idle claim was never ended"
            await asyncio.sleep(0.2)
        assert claimed.id == held.id
    finally:
        with contextlib.suppress(Exception):
            await frozen.close()  # its connection was terminated by the server


async def test_scheduler_finishes_the_timer_in_flight_when_stopped(client, db, workspace):
    account_id = await _account(client, workspace)
    await _schedule(db, workspace, "first", account_id, kind=BLOCKING, due_at=NOW)
    await _schedule(db, workspace, "second", account_id, due_at=NOW + timedelta(seconds=1))
    scheduler = Scheduler(
        db.sessionmaker, poll_seconds=3600, worker_id="s", clock=lambda: NOW + timedelta(hours=1)
    )
    scheduler.start()
    assert scheduler.running
    with pytest.raises(RuntimeError):
        scheduler.start()
    await asyncio.wait_for(gate.entered.wait(), timeout=10)
    stopping = asyncio.create_task(scheduler.stop())
    await asyncio.sleep(0)  # let stop() ask the scheduler to stop
    assert not stopping.done()  # the timer in flight is still running
    gate.release.set()
    await asyncio.wait_for(stopping, timeout=10)
    assert not scheduler.running
    assert (await _timer(db, workspace, "first")).status == "fired"
    assert (await _timer(db, workspace, "second")).status == "pending"  # left for next time

    # Started again, it fires what is left, then stops without waiting out its poll interval.
    await _schedule(
        db, workspace, "third", account_id, kind=SIGNAL, due_at=NOW + timedelta(seconds=2)
    )
    fired_third = _new_gate().entered
    scheduler.start()
    await asyncio.wait_for(fired_third.wait(), timeout=10)
    await asyncio.wait_for(scheduler.stop(), timeout=10)
    assert scheduler.fired == 3
    assert await _tasks(db, workspace.id) == [("second", account_id)]


async def test_serve_runs_the_scheduler_in_its_lifespan(client, db, workspace):
    account_id = await _account(client, workspace)
    await _schedule(db, workspace, "live", account_id, kind=SIGNAL, due_at=utcnow())
    settings = Settings(database_url=db.url, scheduler_enabled=True, scheduler_poll_seconds=0.05)
    app = create_app(settings, engine=db.engine)
    async with LifespanManager(app):
        await asyncio.wait_for(gate.entered.wait(), timeout=10)
    assert (await _timer(db, workspace, "live")).status == "fired"


# `quarterback worker` as an operator runs it: a real process on a SQLite file.

QUARTERBACK = [sys.executable, "-m", "service"]


def _cli_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("QB_")}
    env["QB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'qb.db'}"
    return env


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        QUARTERBACK + args,
        env=_cli_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _prepare_due_event_timer(tmp_path: Path) -> tuple[str, uuid.UUID]:
    assert _cli(["migrate"], tmp_path).returncode == 0
    created = _cli(["workspace", "create", "Initech", "--json"], tmp_path)
    assert created.returncode == 0, created.stderr
    workspace_id = uuid.UUID(json.loads(created.stdout)["workspace_id"])

    async def setup() -> uuid.UUID:
        from service.accounts import service as accounts_service

        engine = create_engine(Settings(database_url=_cli_env(tmp_path)["QB_DATABASE_URL"]))
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                view = await accounts_service.create_account(
                    session, workspace_id=workspace_id, name="Initrode"
                )
                await schedule_event(
                    session,
                    workspace_id=workspace_id,
                    key="cli:1",
                    due_at=utcnow() - timedelta(minutes=1),
                    event={"type": "opportunity_created"},
                    account_id=view.account.id,
                )
                return view.account.id
        finally:
            await engine.dispose()

    return _cli_env(tmp_path)["QB_DATABASE_URL"], asyncio.run(setup())


def _stage(url: str, account_id: uuid.UUID) -> str:
    async def read() -> str:
        from service.accounts.models import Account

        engine = create_engine(Settings(database_url=url))
        try:
            async with create_sessionmaker(engine)() as session:
                account = await session.get_one(Account, account_id)
                return account.stage
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_worker_once_fires_due_timers_and_warns_about_sqlite(tmp_path):
    url, account_id = _prepare_due_event_timer(tmp_path)
    result = _cli(["worker", "--once"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["fired 1 timers", "delivered 0 outbox messages"]
    assert "warning: SQLite serves one process" in result.stderr
    assert _stage(url, account_id) == "ACQUIRE"
    again = _cli(["worker", "--once"], tmp_path)
    assert again.stdout.strip().splitlines() == ["fired 0 timers", "delivered 0 outbox messages"]


def test_worker_fires_until_sigterm_and_stops_cleanly(tmp_path):
    _prepare_due_event_timer(tmp_path)
    process = subprocess.Popen(
        [*QUARTERBACK, "worker", "--poll-seconds", "0.1"],
        env=_cli_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "firing due timers" in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert out.strip().startswith("stopped; fired")
    assert "Traceback" not in err


def test_worker_refuses_an_unmigrated_database_in_one_line(tmp_path):
    result = _cli(["worker"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot use the database")
