"""Renewal facts: the table the forecast reads stays equal to the live tables it comes from.

Changes here are made with plain SQL on a connection of the test's own, not through the
service: the database's triggers must mark them whichever code writes. After each change the
stored facts are compared, column for column, with the statement that computes them live.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db import tables
from service.deals.models import Opportunity
from service.forecasts import facts, facts_schedule
from service.plans.models import Measurement
from service.tasks.models import Task
from service.timers import service as timers_service
from tests import factories

FAR = date.today() + timedelta(days=200)
YESTERDAY = date.today() - timedelta(days=1)
WINDOW = {
    "from": (FAR - timedelta(days=10)).isoformat(),
    "to": (FAR + timedelta(days=10)).isoformat(),
}
SOURCES = (
    "contracts",
    "account_owners",
    "forecast_overrides",
    "tasks",
    "opportunities",
    "success_plans",
    "plan_outcomes",
    "plan_measurements",
)


async def _items(client, ws) -> dict[str, dict[str, Any]]:
    response = await client.get(
        "/v1/forecasts/renewals/accounts", params={**WINDOW, "limit": 200}, headers=ws.headers
    )
    assert response.status_code == 200, response.text
    return {item["contract_id"]: item for item in response.json()["items"]}


def _effects(item: dict[str, Any]) -> dict[str, Any]:
    return {signal["signal"]: signal["effect"] for signal in item["signals"]}


def _value(item: dict[str, Any] | None, signal: str) -> Any:
    """The value of one of the renewal's signals (None if it does not have that signal)."""
    assert item is not None
    return next((s["value"] for s in item["signals"] if s["signal"] == signal), None)


async def _assert_stored_equals_live(db, workspace_id: uuid.UUID) -> None:
    """Every stored fact of the workspace is what `live_facts` computes now."""
    stored_facts = tables.renewal_facts
    async with db.engine.connect() as connection:
        held = (
            await connection.execute(
                select(tables.renewal_facts_state).where(
                    tables.renewal_facts_state.c.workspace_id == workspace_id
                )
            )
        ).one()
        values = {
            facts._WORKSPACE.key: workspace_id,
            facts._AS_OF.key: held.as_of,
            facts._RENEWAL_OWNER.key: held.renewal_owner,
        }
        live = (await connection.execute(facts.live_facts(some_accounts=False), values)).all()
        stored = (
            await connection.execute(
                select(stored_facts).where(stored_facts.c.workspace_id == workspace_id)
            )
        ).all()
        marked = (await connection.execute(select(tables.renewal_facts_stale))).all()
    assert sorted(map(tuple, stored)) == sorted(map(tuple, live))
    assert [row for row in marked if row.workspace_id == workspace_id] == []


async def _sql(db, statement: Any) -> None:
    async with db.engine.begin() as connection:
        await connection.execute(statement)


async def _add(db, row: Any) -> None:
    async with db.sessionmaker() as session, session.begin():
        session.add(row)


async def test_every_source_table_has_its_triggers(db):
    """A later migration that rebuilds a table on SQLite (batch mode) would drop them."""
    async with db.engine.connect() as connection:
        if db.dialect == "postgresql":
            rows = await connection.execute(
                text(
                    "SELECT c.relname, t.tgname FROM pg_trigger t "
                    "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
                )
            )
        else:
            rows = await connection.execute(
                text("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")
            )
        found = {(table, name) for table, name in rows}
    if db.dialect == "postgresql":
        expected = {
            (table, f"renewal_facts_stale_{table}{suffix}")
            for table in SOURCES
            for suffix in ("", "_update")
        } | {("accounts", "renewal_facts_stale_accounts_update")}
    else:
        expected = {
            (table, f"renewal_facts_stale_{table}_{event}")
            for table in SOURCES
            for event in ("insert", "update", "delete")
        } | {("accounts", "renewal_facts_stale_accounts_update")}
    assert expected <= found


async def test_marks_are_vacuumed_often(db):
    """A queue table: dead marks would slow every forecast's "any marked?" until vacuumed."""
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL's autovacuum settings")
    async with db.engine.connect() as connection:
        options = await connection.scalar(
            text("SELECT reloptions FROM pg_class WHERE relname = 'renewal_facts_stale'")
        )
    assert "autovacuum_vacuum_scale_factor=0" in options
    assert "autovacuum_vacuum_threshold=1000" in options


class World:
    """One renewal with every kind of fact: an owner, an overdue task, a renewal opportunity,
    a success plan whose only outcome has no measurement yet (at risk), and a second renewal
    that nothing here touches."""

    def __init__(self, client, db, ws) -> None:
        self.client, self.db, self.ws = client, db, ws

    async def build(self) -> World:
        client, ws = self.client, self.ws
        owners = {"csm": {"user_id": "casey", "name": "Casey"}}
        self.account = await factories.create_account(client, ws, stage="VALUE", owners=owners)
        self.contract = await self._contract(self.account["id"], "1000.00")
        bystander = await factories.create_account(client, ws, owners=owners)
        self.bystander = await self._contract(bystander["id"], "10.00")
        task = await client.post(
            "/v1/tasks",
            json={
                "account_id": self.account["id"],
                "title": "Overdue",
                "department": "csm",
                "due_on": YESTERDAY.isoformat(),
            },
            headers=ws.headers,
        )
        assert task.status_code == 201, task.text
        self.task_id = uuid.UUID(task.json()["id"])
        plan = await client.put(
            f"/v1/accounts/{self.account['id']}/plan",
            json={
                "starts_on": (FAR - timedelta(days=364)).isoformat(),
                "outcomes": [
                    {"kpi": "Seats", "baseline": "0", "target": "100", "target_quarter": 1}
                ],
            },
            headers=ws.headers,
        )
        assert plan.status_code == 200, plan.text
        self.plan_id = uuid.UUID(plan.json()["id"])
        self.outcome_id = uuid.UUID(plan.json()["outcomes"][0]["id"])
        opportunity = Opportunity(
            workspace_id=ws.id,
            account_id=self.account_uuid,
            source="crm",
            external_id="renewal-1",
            currency="USD",
            kind="renewal",
            status="open",
            contract_id=self.contract_uuid,
        )
        await _add(self.db, opportunity)
        self.opportunity_id = opportunity.id
        return self

    async def _contract(self, account_id: str, arr: str) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/contracts",
            json={
                "account_id": account_id,
                "starts_on": (FAR - timedelta(days=364)).isoformat(),
                "ends_on": FAR.isoformat(),
                "arr": arr,
            },
            headers=self.ws.headers,
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def item(self) -> dict[str, Any] | None:
        return (await _items(self.client, self.ws)).get(self.contract["id"])

    @property
    def contract_uuid(self) -> uuid.UUID:
        return uuid.UUID(self.contract["id"])

    @property
    def account_uuid(self) -> uuid.UUID:
        return uuid.UUID(self.account["id"])


Change = Callable[[World], Awaitable[None]]


def _by_sql(build: Callable[[World], Any]) -> Change:
    async def change(world: World) -> None:
        await _sql(world.db, build(world))

    return change


async def _new_escalation(world: World) -> None:
    await _add(
        world.db,
        Task(
            workspace_id=world.ws.id,
            account_id=world.account_uuid,
            kind="escalation",
            title="Escalation",
            department="csm",
        ),
    )


async def _measured(world: World) -> None:
    await _add(
        world.db,
        Measurement(
            workspace_id=world.ws.id,
            outcome_id=world.outcome_id,
            value=Decimal("100"),
            measured_on=YESTERDAY,
        ),
    )


async def _overridden(world: World) -> None:
    response = await world.client.post(
        f"/v1/forecasts/renewals/{world.contract['id']}/overrides",
        json={"probability": 95, "reason": "Signed"},
        headers=world.ws.headers,
    )
    assert response.status_code == 201, response.text


def _contracts(world: World) -> Any:
    return update(tables.contracts).where(tables.contracts.c.id == world.contract_uuid)


def _account(world: World) -> Any:
    return update(tables.accounts).where(tables.accounts.c.id == world.account_uuid)


def _owner(world: World) -> Any:
    return tables.account_owners.c.account_id == world.account_uuid


# (what changes, the change, what the renewal's row then says)
CHANGES: list[tuple[str, Change, Callable[[dict[str, Any] | None], bool]]] = [
    (
        "contract ARR",
        _by_sql(lambda w: _contracts(w).values(arr=Decimal("2500.00"))),
        lambda item: item is not None and item["arr"] == "2500.00",
    ),
    (
        "contract auto-renew",
        _by_sql(lambda w: _contracts(w).values(auto_renew=True)),
        lambda item: item is not None and "auto_renew" in _effects(item),
    ),
    (
        "contract deleted",
        _by_sql(lambda w: delete(tables.contracts).where(tables.contracts.c.id == w.contract_uuid)),
        lambda item: item is None,
    ),
    (
        "account stage",
        _by_sql(lambda w: _account(w).values(stage="RENEW")),
        lambda item: item is not None and item["stage"] == "RENEW",
    ),
    (
        "account name and segment",
        _by_sql(lambda w: _account(w).values(name="Renamed", segment="high_touch")),
        lambda item: (
            item is not None
            and (item["account_name"], item["segment"]) == ("Renamed", "high_touch")
        ),
    ),
    (
        "owner changed",
        _by_sql(
            lambda w: (
                update(tables.account_owners)
                .where(_owner(w))
                .values(user_id="drew", user_name="Drew")
            )
        ),
        lambda item: item is not None and (item["owner"], item["owner_name"]) == ("drew", "Drew"),
    ),
    (
        "owner removed",
        _by_sql(lambda w: delete(tables.account_owners).where(_owner(w))),
        lambda item: item is not None and item["owner"] is None,
    ),
    (
        "task done",
        _by_sql(
            lambda w: (
                update(tables.tasks).where(tables.tasks.c.id == w.task_id).values(status="done")
            )
        ),
        lambda item: item is not None and "overdue_tasks" not in _effects(item),
    ),
    (
        "task deleted",
        _by_sql(lambda w: delete(tables.tasks).where(tables.tasks.c.id == w.task_id)),
        lambda item: item is not None and "overdue_tasks" not in _effects(item),
    ),
    (
        "escalation raised",
        _new_escalation,
        lambda item: item is not None and "open_escalations" in _effects(item),
    ),
    (
        "renewal opportunity won",
        _by_sql(
            lambda w: (
                update(tables.opportunities)
                .where(tables.opportunities.c.id == w.opportunity_id)
                .values(status="won")
            )
        ),
        lambda item: _value(item, "renewal_opportunity") == "won",
    ),
    (
        "outcome missed",
        _by_sql(
            lambda w: (
                update(tables.plan_outcomes)
                .where(tables.plan_outcomes.c.id == w.outcome_id)
                .values(status="missed")
            )
        ),
        lambda item: item is not None and "outcomes_missed" in _effects(item),
    ),
    (
        "measurement recorded",
        _measured,
        # On track weighs nothing by default, so the signal is no longer listed.
        lambda item: item is not None and "plan_health" not in _effects(item),
    ),
    (
        "plan deleted",
        _by_sql(
            lambda w: delete(tables.success_plans).where(tables.success_plans.c.id == w.plan_id)
        ),
        lambda item: item is not None and "plan_health" not in _effects(item),
    ),
    (
        "override",
        _overridden,
        lambda item: item is not None and item["probability"] == "0.95",
    ),
]


@pytest.mark.parametrize(("_name", "change", "shows"), CHANGES, ids=[c[0] for c in CHANGES])
async def test_a_change_by_any_code_reaches_the_next_forecast(
    client, db, workspace, _name, change, shows
):
    world = await World(client, db, workspace).build()
    before = await world.item()
    assert before is not None and not shows(before)  # the change is not there yet
    assert _value(before, "plan_health") == "at_risk"
    await _assert_stored_equals_live(db, workspace.id)

    await change(world)
    assert shows(await world.item())
    await _assert_stored_equals_live(db, workspace.id)


async def _stored(db, contract_id: str, **values: Any) -> None:
    await _sql(
        db,
        update(tables.renewal_facts)
        .where(tables.renewal_facts.c.contract_id == uuid.UUID(contract_id))
        .values(**values),
    )


async def test_stored_facts_are_read_until_their_day_passes(client, db, workspace):
    world = await World(client, db, workspace).build()
    assert (await world.item())["arr"] == "1000.00"
    # Written behind the triggers' back: the forecast reads the table, it does not recompute.
    await _stored(db, world.contract["id"], arr_cents=123_00)
    assert (await world.item())["arr"] == "123.00"
    # Overdue tasks and plan health are facts of a day: another day computes them again.
    await _sql(
        db,
        update(tables.renewal_facts_state)
        .where(tables.renewal_facts_state.c.workspace_id == workspace.id)
        .values(as_of=YESTERDAY),
    )
    assert (await world.item())["arr"] == "1000.00"
    await _assert_stored_equals_live(db, workspace.id)


async def test_a_new_renewal_department_computes_every_owner_again(client, db, workspace):
    owners = {
        "csm": {"user_id": "casey", "name": "Casey"},
        "sales": {"user_id": "sam", "name": "Sam"},
    }
    account = await factories.create_account(client, workspace, owners=owners)
    world = World(client, db, workspace)
    world.account = account
    world.contract = await world._contract(account["id"], "100.00")
    assert (await world.item())["owner"] == "casey"
    patched = await client.patch(
        "/v1/workspace", json={"renewal_quarterback": "sales"}, headers=workspace.headers
    )
    assert patched.status_code == 200, patched.text
    assert (await world.item())["owner"] == "sam"
    await _assert_stored_equals_live(db, workspace.id)


async def test_many_marked_accounts_are_computed_in_one_pass(client, db, workspace, monkeypatch):
    world = await World(client, db, workspace).build()
    await world.item()
    monkeypatch.setattr(facts, "MOST_ACCOUNTS_REFRESHED_ONE_BY_ONE", 1)
    await _sql(db, update(tables.contracts).values(arr=Decimal("7.00")))  # both accounts
    items = await _items(client, workspace)
    assert {item["arr"] for item in items.values()} == {"7.00"}
    await _assert_stored_equals_live(db, workspace.id)


async def test_one_workspace_refreshing_leaves_anothers_marks(
    client, db, workspace, other_workspace
):
    mine = await World(client, db, workspace).build()
    theirs = await World(client, db, other_workspace).build()
    await mine.item()
    await theirs.item()
    await _sql(db, update(tables.contracts).values(arr=Decimal("9.00")))  # both workspaces

    assert (await mine.item())["arr"] == "9.00"
    async with db.engine.connect() as connection:
        marked = (await connection.execute(select(tables.renewal_facts_stale))).all()
    assert {row.workspace_id for row in marked} == {other_workspace.id}
    assert (await theirs.item())["arr"] == "9.00"
    await _assert_stored_equals_live(db, other_workspace.id)


async def test_refreshes_of_one_workspace_take_turns(client, db, workspace):
    """Two transactions bring the same facts up to date at once: the second waits for the
    first and finds nothing left to do (on SQLite, writers take turns already)."""
    world = await World(client, db, workspace).build()
    await world.item()
    await _sql(db, _contracts(world).values(arr=Decimal("42.00")))
    as_of = date.today()

    async def bring_up_to_date(connection: AsyncConnection) -> None:
        async with db.sessionmaker(bind=connection) as session:
            await facts.bring_up_to_date(
                session, workspace_id=workspace.id, as_of=as_of, renewal_owner="csm"
            )

    if db.dialect != "postgresql":
        pytest.skip("SQLite serializes writers with BEGIN IMMEDIATE")

    async with db.engine.connect() as first, db.engine.connect() as second:
        await first.begin()
        await second.begin()
        await bring_up_to_date(first)
        waiting = asyncio.create_task(bring_up_to_date(second))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # the advisory lock holds it
        await first.commit()
        await asyncio.wait_for(waiting, 10)
        await second.commit()
    assert (await world.item())["arr"] == "42.00"
    await _assert_stored_equals_live(db, workspace.id)


async def test_two_changes_to_one_account_do_not_wait_for_each_others_mark(client, db, workspace):
    """Marks have no unique key: a unique one would make the second transaction wait for the
    first's uncommitted mark (two timers raising tasks on one account, say)."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite serializes writers with BEGIN IMMEDIATE")
    world = await World(client, db, workspace).build()
    await world.item()  # no marks left
    contract = _contracts(world)
    async with db.engine.connect() as first, db.engine.connect() as second:
        await first.begin()
        await second.begin()
        await first.execute(contract.values(auto_renew=True))
        # The other change is to another row of the same account; only a mark could make it
        # wait for the first transaction.
        task = update(tables.tasks).where(tables.tasks.c.id == world.task_id)
        await asyncio.wait_for(second.execute(task.values(status="done")), 10)
        await second.commit()
        await first.commit()
    item = await world.item()
    assert "auto_renew" in _effects(item) and "overdue_tasks" not in _effects(item)
    await _assert_stored_equals_live(db, workspace.id)


async def _timers(db, workspace_id: uuid.UUID) -> dict[str, Any]:
    async with db.engine.connect() as connection:
        rows = await connection.execute(
            select(tables.timers.c.key, tables.timers.c.status, tables.timers.c.due_at).where(
                tables.timers.c.workspace_id == workspace_id,
                tables.timers.c.kind == facts_schedule.FACTS_DAY_KIND,
            )
        )
        return {row.key: row for row in rows}


async def _held(db, workspace_id: uuid.UUID) -> Any:
    async with db.engine.connect() as connection:
        state = tables.renewal_facts_state
        return (
            await connection.execute(select(state).where(state.c.workspace_id == workspace_id))
        ).one()


async def test_a_worker_computes_each_new_days_facts_at_midnight(
    client, db, workspace, monkeypatch
):
    world = await World(client, db, workspace).build()
    await world.item()
    tomorrow = date.today() + timedelta(days=1)
    timers = await _timers(db, workspace.id)
    assert list(timers) == [f"renewal_facts_day:{tomorrow}"]
    midnight = timers[f"renewal_facts_day:{tomorrow}"].due_at
    assert midnight == datetime.combine(tomorrow, time(0), UTC)  # the workspace is on UTC

    # The handler reads the clock for the day (a timer may fire late): make it tomorrow.
    monkeypatch.setattr(facts_schedule, "utcnow", lambda: midnight)
    await timers_service.run_due(db.sessionmaker, now=midnight, worker_id="w")
    assert (await _timers(db, workspace.id))[f"renewal_facts_day:{tomorrow}"].status == "fired"
    held = await _held(db, workspace.id)
    assert (held.as_of, held.read_on) == (tomorrow, date.today())
    # Tomorrow the task due yesterday is two days late, still one overdue task: the facts
    # agree with the live tables as of tomorrow, and the chain goes on.
    await _assert_stored_equals_live(db, workspace.id)
    after = tomorrow + timedelta(days=1)
    assert set(await _timers(db, workspace.id)) == {
        f"renewal_facts_day:{tomorrow}",
        f"renewal_facts_day:{after}",
    }


async def test_the_daily_timer_stops_where_nobody_forecasts(client, db, workspace, monkeypatch):
    world = await World(client, db, workspace).build()
    await world.item()
    tomorrow = date.today() + timedelta(days=1)
    await _sql(
        db,
        update(tables.renewal_facts_state).values(
            read_on=tomorrow - timedelta(days=facts_schedule.IDLE_DAYS + 1)
        ),
    )
    held = await _held(db, workspace.id)
    midnight = datetime.combine(tomorrow, time(0), UTC)
    monkeypatch.setattr(facts_schedule, "utcnow", lambda: midnight)
    await timers_service.run_due(db.sessionmaker, now=midnight, worker_id="w")
    assert (await _timers(db, workspace.id))[f"renewal_facts_day:{tomorrow}"].status == "fired"
    assert (await _held(db, workspace.id)).as_of == held.as_of  # nothing computed
    assert list(await _timers(db, workspace.id)) == [f"renewal_facts_day:{tomorrow}"]
    # The next forecast reads today's facts again, and notes the read.
    await world.item()
    assert (await _held(db, workspace.id)).read_on == date.today()


async def test_deleting_a_workspace_takes_its_facts_and_leaves_anothers(
    client, db, workspace, other_workspace
):
    """The cascade deletes every row the triggers watch: no mark may name the workspace
    going away (it would break the foreign key), and another workspace keeps its facts."""
    gone = await World(client, db, workspace).build()
    kept = await World(client, db, other_workspace).build()
    await gone.item()
    await kept.item()
    await _sql(db, delete(tables.workspaces).where(tables.workspaces.c.id == workspace.id))
    async with db.engine.connect() as connection:
        for table in (
            tables.renewal_facts,
            tables.renewal_facts_state,
            tables.renewal_facts_stale,
        ):
            owners = set((await connection.execute(select(table.c.workspace_id))).scalars())
            assert workspace.id not in owners
    assert (await kept.item())["arr"] == "1000.00"
    await _assert_stored_equals_live(db, other_workspace.id)
