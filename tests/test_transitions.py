"""Stage transitions: allowed moves, backward moves, history, and concurrent movers."""

import asyncio
import itertools

from tests import factories


async def test_allowed_move_writes_history(client, workspace):
    account = await factories.create_account(client, workspace)
    response = await factories.transition(
        client, workspace, account["id"], "ACQUIRE", reason="opportunity created"
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["from_stage"], body["to_stage"]) == ("QUALIFY", "ACQUIRE")
    assert body["cause"] == "manual"
    assert body["actor"] == "api_key:admin"

    read = (await client.get(f"/v1/accounts/{account['id']}", headers=workspace.headers)).json()
    assert read["stage"] == "ACQUIRE" and read["quarterback"] == "sales"
    assert read["stage_entered_at"] > account["stage_entered_at"]
    history = (
        await client.get(f"/v1/accounts/{account['id']}/transitions", headers=workspace.headers)
    ).json()["items"]
    assert [(h["from_stage"], h["to_stage"]) for h in history] == [
        (None, "QUALIFY"),
        ("QUALIFY", "ACQUIRE"),
    ]
    assert history[1]["reason"] == "opportunity created"


async def test_disallowed_move_is_409_with_allowed_stages(client, workspace):
    account = await factories.create_account(client, workspace)
    response = await factories.transition(client, workspace, account["id"], "VALUE")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "transition_not_allowed"
    assert body["allowed_stages"] == ["ACQUIRE"]
    assert body["current_stage"] == "QUALIFY"
    assert "ACQUIRE" in body["detail"]


async def test_unknown_stage_is_422(client, workspace):
    account = await factories.create_account(client, workspace)
    response = await factories.transition(client, workspace, account["id"], "MARS")
    assert response.status_code == 422


async def test_backward_move_needs_a_reason(client, workspace):
    account = await factories.create_account(client, workspace)
    await factories.walk(client, workspace, account["id"], "ACQUIRE", "IMPLEMENT", "VALUE")
    no_reason = await factories.transition(client, workspace, account["id"], "IMPLEMENT")
    assert no_reason.status_code == 422
    assert no_reason.json()["errors"][0]["field"] == "reason"
    back = await factories.transition(
        client, workspace, account["id"], "IMPLEMENT", reason="re-implementation after merger"
    )
    assert back.status_code == 201
    assert back.json()["backward"] is True
    # Moving back changes the quarterback (CSM -> PS): a handoff is raised.
    assert back.json()["handoff_task"]["to_department"] == "professional_services"


async def test_from_stage_guards_against_stale_reads(client, workspace):
    account = await factories.create_account(client, workspace)
    await factories.walk(client, workspace, account["id"], "ACQUIRE")
    stale = await factories.transition(
        client, workspace, account["id"], "IMPLEMENT", from_stage="QUALIFY"
    )
    assert stale.status_code == 409
    assert stale.json()["code"] == "stage_changed"
    fresh = await factories.transition(
        client, workspace, account["id"], "IMPLEMENT", from_stage="ACQUIRE"
    )
    assert fresh.status_code == 201


async def test_concurrent_transitions_exactly_one_wins(client, db, workspace):
    """Many accounts, each raced by several movers at once on separate connections."""
    accounts = [await factories.create_account(client, workspace) for _ in range(6)]
    for account in accounts:
        await factories.walk(client, workspace, account["id"], "ACQUIRE")

    racers = 4
    responses = await asyncio.gather(
        *(
            factories.transition(client, workspace, account["id"], "IMPLEMENT")
            for account in accounts
            for _ in range(racers)
        )
    )
    codes = [r.status_code for r in responses]
    for index, account in enumerate(accounts):
        mine = sorted(codes[index * racers : (index + 1) * racers])
        assert mine == [201] + [409] * (racers - 1), (account["id"], mine)
        history = (
            await client.get(f"/v1/accounts/{account['id']}/transitions", headers=workspace.headers)
        ).json()["items"]
        assert [h["to_stage"] for h in history] == ["QUALIFY", "ACQUIRE", "IMPLEMENT"]
        tasks = (
            await client.get(
                f"/v1/tasks?account_id={account['id']}&department=professional_services",
                headers=workspace.headers,
            )
        ).json()["items"]
        assert len(tasks) == 1  # one handoff, from the one winner


async def test_concurrent_different_targets_keep_history_consistent(client, workspace):
    account = await factories.create_account(client, workspace)
    await factories.walk(client, workspace, account["id"], "ACQUIRE", "IMPLEMENT", "VALUE")
    responses = await asyncio.gather(
        factories.transition(client, workspace, account["id"], "RENEW", from_stage="VALUE"),
        factories.transition(client, workspace, account["id"], "EXPAND", from_stage="VALUE"),
        factories.transition(client, workspace, account["id"], "CHURNED", from_stage="VALUE"),
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409]
    winner = next(r.json() for r in responses if r.status_code == 201)
    read = (await client.get(f"/v1/accounts/{account['id']}", headers=workspace.headers)).json()
    assert read["stage"] == winner["to_stage"]
    history = (
        await client.get(f"/v1/accounts/{account['id']}/transitions", headers=workspace.headers)
    ).json()["items"]
    # Every history row starts where the previous one ended.
    for previous, current in itertools.pairwise(history):
        assert current["from_stage"] == previous["to_stage"]
