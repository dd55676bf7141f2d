"""GraphQL subscriptions over graphql-transport-ws, on real uvicorn servers and websockets.

On PostgreSQL a change made through one replica reaches a subscriber of another (LISTEN/
NOTIFY); on SQLite the one process fans out in-process. Nothing crosses workspaces, filters
hold, bad keys are refused, and a change that rolls back is never announced.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from websockets.exceptions import ConnectionClosed

from service.accounts import service as accounts_service
from service.db.engine import create_sessionmaker
from service.kit import live
from service.lifecycle import transitions
from service.tasks import service as tasks_service
from tests import factories
from tests.live_servers import (
    acknowledged,
    collect,
    http_client,
    next_result,
    nothing_within,
    send_operation,
    serving,
    subscribe,
    websocket,
)

TASK_RAISED = """
subscription ($department: String) {
  taskRaised(department: $department) {
    id kind title departmentKey fromDepartment toDepartment
    account { id name stage { key } }
  }
}
"""
STAGE_CHANGED = """
subscription ($accountId: UUID) {
  accountStageChanged(accountId: $accountId) {
    transition { fromStage toStage cause handoffTask { departmentKey } }
    account { id name stage { key } }
  }
}
"""
OWNERS = {"professional_services": {"user_id": "priya", "name": "Priya"}}


# A subscribe message has no acknowledgement; give the server a moment to register it.
def _key(ws: factories.WorkspaceKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {ws.key}"}


async def test_a_change_through_one_replica_reaches_a_subscriber_of_another(db, workspace):
    if db.dialect != "postgresql":
        pytest.skip("replicas share a database only on PostgreSQL")
    async with (
        serving(db.url) as writer,
        serving(db.url) as reader,
        websocket(reader, init=_key(workspace)) as ws,
    ):
        await acknowledged(ws)
        await subscribe(ws, "tasks", TASK_RAISED, {"department": "professional_services"})
        await subscribe(ws, "stages", STAGE_CHANGED)
        async with http_client(writer) as client:
            account = await factories.create_account(client, workspace, name="Acme", owners=OWNERS)
            await factories.walk(client, workspace, account["id"], "ACQUIRE", "IMPLEMENT")
            # The same event path a CRM drives: POST /v1/events (go-live moves IMPLEMENT→VALUE).
            response = await client.post(
                "/v1/events",
                json={
                    "id": "ev-1",
                    "type": "go_live",
                    "occurred_at": "2026-11-29T12:00:00Z",
                    "account": {"id": account["id"]},
                },
                headers=workspace.headers,
            )
            assert response.status_code == 201, response.text

        results = await collect(ws, 5)
        moves = results["accountStageChanged"]
        assert [m["transition"]["toStage"] for m in moves] == ["ACQUIRE", "IMPLEMENT", "VALUE"]
        # Read when the notice arrives: the account may have moved on since.
        assert {(m["account"]["id"], m["account"]["name"]) for m in moves} == {
            (account["id"], "Acme")
        }
        assert moves[1]["transition"]["handoffTask"] == {"departmentKey": "professional_services"}
        assert moves[2]["transition"]["cause"] == "event"

        # Professional services' tasks only (its handoff, and the playbook's post-production
        # review on go-live): the handoffs to sales and to the CSM were filtered out.
        handoff, review = sorted(results["taskRaised"], key=lambda task: task["kind"])
        assert (handoff["kind"], handoff["fromDepartment"]) == ("handoff", "sales")
        assert review["title"] == "Post-production review for Acme"
        assert {task["departmentKey"] for task in (handoff, review)} == {"professional_services"}
        assert {task["account"]["id"] for task in (handoff, review)} == {account["id"]}
        await nothing_within(ws, 0.5)


async def test_subscribers_hear_their_own_workspace_only(db, workspace, other_workspace):
    async with (
        serving(db.url) as server,
        websocket(server, init=_key(workspace)) as mine,
        websocket(server, init=_key(other_workspace)) as theirs,
    ):
        for ws in (mine, theirs):
            await acknowledged(ws)
            await subscribe(ws, "tasks", TASK_RAISED)
            await subscribe(ws, "stages", STAGE_CHANGED)
        async with http_client(server) as client:
            ours = await factories.create_account(client, workspace, name="Ours")
            await factories.walk(client, workspace, ours["id"], "ACQUIRE")
            # Then one change in the other workspace: the first (and only) thing it hears.
            other = await factories.create_account(client, other_workspace, name="Theirs")
            await factories.walk(client, other_workspace, other["id"], "ACQUIRE")

        # Ours committed first: had it leaked, it would be among the first two they hear.
        heard = await collect(theirs, 2)
        assert {item["account"]["name"] for items in heard.values() for item in items} == {"Theirs"}
        await nothing_within(theirs, 0.5)
        heard = await collect(mine, 2)
        assert {item["account"]["name"] for items in heard.values() for item in items} == {"Ours"}


async def test_filters_by_department_and_account(db, workspace):
    async with serving(db.url) as server, websocket(server, init=_key(workspace)) as ws:
        await acknowledged(ws)
        async with http_client(server) as client:
            first = await factories.create_account(client, workspace, name="First")
            second = await factories.create_account(client, workspace, name="Second")
            await subscribe(ws, "csm", TASK_RAISED, {"department": "csm"})
            await subscribe(ws, "second", STAGE_CHANGED, {"accountId": second["id"]})
            # Sales and professional services handoffs, and moves of the first account: none
            # of them match. Then the CSM handoff of the second account matches both.
            await factories.walk(client, workspace, first["id"], "ACQUIRE", "IMPLEMENT")
            await factories.walk(client, workspace, second["id"], "ACQUIRE", "IMPLEMENT", "VALUE")

        results = await collect(ws, 4)
        assert [m["transition"]["toStage"] for m in results["accountStageChanged"]] == [
            "ACQUIRE",
            "IMPLEMENT",
            "VALUE",
        ]
        assert {m["account"]["name"] for m in results["accountStageChanged"]} == {"Second"}
        [task] = results["taskRaised"]
        assert (task["departmentKey"], task["account"]["name"]) == ("csm", "Second")
        await nothing_within(ws, 0.5)


@pytest.mark.parametrize(
    "init",
    [{}, {"Authorization": "Bearer qb_not_a_key"}, {"Authorization": "Basic abc"}],
    ids=["no key", "unknown key", "not bearer"],
)
async def test_a_bad_key_is_refused_with_4403(db, workspace, init):
    async with serving(db.url) as server, websocket(server, init=init) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_the_key_may_come_in_the_upgrade_request(db, workspace):
    async with serving(db.url) as server, websocket(server, headers=_key(workspace)) as ws:
        await acknowledged(ws)
        await subscribe(ws, "stages", STAGE_CHANGED)
        async with http_client(server) as client:
            account = await factories.create_account(client, workspace, name="Header")
            await factories.walk(client, workspace, account["id"], "ACQUIRE")
        result = await next_result(ws)
        assert result["data"]["accountStageChanged"]["account"]["name"] == "Header"


async def test_queries_over_the_websocket_are_pointed_to_http(db, workspace):
    async with serving(db.url) as server, websocket(server, init=_key(workspace)) as ws:
        await acknowledged(ws)
        await send_operation(ws, "q", "{ accounts(first: 1) { totalCount } }")
        result = await next_result(ws)
        assert result["errors"][0]["extensions"]["code"] == "invalid_input"
        assert "POST /graphql" in result["errors"][0]["message"]


async def test_rolled_back_changes_are_not_announced(db, workspace):
    broadcaster = live.broadcaster_for(db.engine.url)
    await broadcaster.start()
    sessionmaker = create_sessionmaker(db.engine)
    sessionmaker.configure(info=live.session_info(broadcaster))
    async with sessionmaker() as session, session.begin():
        account_id = await _new_account(session, workspace)
    try:
        async with broadcaster.subscribe(lambda notice: True) as notices:
            # 1. A whole transaction rolled back.
            async with sessionmaker() as session:
                await session.begin()
                await _move(session, workspace, account_id, "ACQUIRE")
                await session.rollback()
            # 2. A savepoint rolled back inside a transaction that commits something else.
            async with sessionmaker() as session, session.begin():
                savepoint = await session.begin_nested()
                await _move(session, workspace, account_id, "ACQUIRE")
                await savepoint.rollback()
                await _task(session, workspace, account_id, "kept")
            # 3. A released savepoint is announced only when its transaction commits.
            async with sessionmaker() as session, session.begin():
                async with session.begin_nested():
                    await _move(session, workspace, account_id, "ACQUIRE")

            stream = aiter(notices)
            heard = [await asyncio.wait_for(anext(stream), 5) for _ in range(3)]
            # The task kept in 2, then the handoff to sales and the move to ACQUIRE of 3.
            assert [(n.kind, n.department) for n in heard] == [
                (live.TASK_RAISED, "csm"),
                (live.TASK_RAISED, "sales"),
                (live.STAGE_CHANGED, "sales"),
            ]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(stream), 0.5)
    finally:
        await broadcaster.stop()


async def test_the_listener_reconnects_after_its_connection_drops(db, workspace):
    if db.dialect != "postgresql":
        pytest.skip("only PostgreSQL has a listener connection")
    async with (
        serving(db.url) as server,
        websocket(server, init=_key(workspace)) as ws,
        http_client(server) as client,
    ):
        await acknowledged(ws)
        await subscribe(ws, "stages", STAGE_CHANGED)
        async with db.engine.connect() as connection:
            killed = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'quarterback-live' AND datname = current_database()"
                )
            )
        # The server's listener, and the shared test app's when the whole suite runs.
        assert killed >= 1
        account = await factories.create_account(client, workspace, name="Again")
        # The first notices may be sent while it reconnects; they wait in the send queue.
        await factories.walk(client, workspace, account["id"], "ACQUIRE")
        result = await next_result(ws, wait=15)
        assert result["data"]["accountStageChanged"]["account"]["name"] == "Again"


async def _new_account(session, workspace) -> object:
    account = await accounts_service.create_account(
        session, workspace_id=workspace.id, name="Rollback", actor="test"
    )
    return account.account.id


async def _move(session, workspace, account_id, stage) -> None:
    await transitions.transition_account(
        session, workspace_id=workspace.id, account_id=account_id, to_stage=stage, reason="t"
    )


async def _task(session, workspace, account_id, title) -> None:
    await tasks_service.create_task(
        session,
        workspace_id=workspace.id,
        account_id=account_id,
        title=title,
        department="csm",
        due_on=None,
        priority="normal",
        checklist=[],
        assignee_id=None,
        assignee_name=None,
        actor="test",
        known_departments={"csm"},
    )


async def test_commits_queued_behind_a_notify_share_the_next_one(db, monkeypatch):
    """Notices of commits that queue while a NOTIFY is on its way go out together, up to
    NOTICES_PER_NOTIFY a NOTIFY, in order and none lost."""
    if db.dialect != "postgresql":
        pytest.skip("only PostgreSQL sends notices with NOTIFY")
    heard: list[int] = []  # notices per NOTIFY this broadcaster hears back
    original = live.PostgresBroadcaster._heard

    def counting(self, connection, pid, channel, payload):
        heard.append(len(live._decode(payload)))
        return original(self, connection, pid, channel, payload)

    monkeypatch.setattr(live.PostgresBroadcaster, "_heard", counting)
    broadcaster = live.PostgresBroadcaster(make_url(db.url))
    await broadcaster.start()
    try:
        async with broadcaster.subscribe(lambda notice: True) as notices:

            def commit(tag: str, count: int) -> None:
                broadcaster.publish(
                    [live.Notice("task_raised", "ws", f"{tag}{n}", "acct") for n in range(count)]
                )

            # Five one-notice commits, then three of 20: all queued before the sender runs.
            for n in range(5):
                commit(f"a{n}-", 1)
            for tag in "xyz":
                commit(tag, 20)
            received = [(await asyncio.wait_for(anext(notices), 10)).id for _ in range(65)]
    finally:
        await broadcaster.stop()
    expected = [f"a{n}-0" for n in range(5)] + [f"{t}{n}" for t in "xyz" for n in range(20)]
    assert received == expected
    # 5 + 20 fit in one NOTIFY (25 <= 30); each further 20 needs its own.
    assert heard == [25, 20, 20]
