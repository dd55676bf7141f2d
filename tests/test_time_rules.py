"""The playbook's clock: renewal windows, stuck stages, handoff SLAs and touchpoints fire
from durable timers, once, and only while their reason still holds."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import col

from service.db.types import utcnow
from service.timers import service as timers_service
from service.timers.models import Timer
from tests import factories


def _event(event_id, event_type, **fields):
    return {
        "id": event_id,
        "type": event_type,
        "occurred_at": "2027-03-28T09:30:00Z",
        "account": {"external_id": "c-1", **fields.pop("account", {})},
        **fields,
    }


async def _send(client, ws, event):
    response = await client.post("/v1/events?source=crm", json=event, headers=ws.headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def _account(client, ws):
    return (await client.get("/v1/accounts?external_id=crm:c-1", headers=ws.headers)).json()[
        "items"
    ][0]


async def _tasks(client, ws, account_id, **filters):
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    response = await client.get(
        f"/v1/tasks?account_id={account_id}&limit=200&{query}", headers=ws.headers
    )
    return response.json()["items"]


async def _timers(db, workspace_id, kind):
    async with db.sessionmaker() as session:
        return list(
            await session.scalars(
                select(Timer)
                .where(col(Timer.workspace_id) == workspace_id, col(Timer.kind) == kind)
                .order_by(col(Timer.due_at))
            )
        )


async def _run(db, now):
    return await timers_service.run_due(db.sessionmaker, now=now, worker_id="test")


async def _live_customer(client, ws, contract_end="2028-03-31"):
    await _send(client, ws, _event("1", "opportunity_created", account={"name": "Acme"}))
    contract = {"start": "2027-04-01", "end": contract_end, "arr": "50000.00", "currency": "USD"}
    await _send(client, ws, _event("2", "closed_won", contract=contract))
    await _send(client, ws, _event("3", "go_live"))
    return await _account(client, ws)


async def test_renewal_window_opens_120_days_before_contract_end(client, db, workspace):
    account = await _live_customer(client, workspace)
    [timer] = await _timers(db, workspace.id, "event")
    assert timer.due_at == datetime(2027, 12, 2, tzinfo=UTC)  # 2028-03-31 minus 120 days

    await _run(db, datetime(2027, 12, 1, tzinfo=UTC))
    assert (await _account(client, workspace))["stage"] == "VALUE"

    await _run(db, datetime(2027, 12, 2, 8, tzinfo=UTC))
    assert (await _account(client, workspace))["stage"] == "RENEW"
    prep = await _tasks(client, workspace, account["id"], kind="task")
    assert any(t["title"] == "Prepare the renewal of Acme" for t in prep)
    events = (await client.get("/v1/events?limit=200", headers=workspace.headers)).json()
    timed = [e for e in events["items"] if e["source"] == "timer"]
    assert [(e["type"], e["outcome"]) for e in timed] == [("renewal_window_opened", "applied")]

    await _run(db, datetime(2027, 12, 3, tzinfo=UTC))  # nothing fires twice
    timed_again = (await client.get("/v1/events?limit=200", headers=workspace.headers)).json()
    assert len([e for e in timed_again["items"] if e["source"] == "timer"]) == 1


async def test_manual_contract_sets_the_renewal_timer_too(client, db, workspace):
    account = await factories.create_account(client, workspace, stage="ACQUIRE")
    response = await client.post(
        "/v1/contracts",
        json={
            "account_id": account["id"],
            "starts_on": "2027-01-01",
            "ends_on": "2027-12-31",
            "arr": "1000.00",
        },
        headers=workspace.headers,
    )
    assert response.status_code == 201, response.text
    [timer] = await _timers(db, workspace.id, "event")
    assert timer.due_at == datetime(2027, 9, 2, tzinfo=UTC)


async def test_stuck_in_implement_escalates_once_unless_live(client, db, workspace):
    stuck = await factories.create_account(client, workspace, name="Stuck", stage="ACQUIRE")
    moving = await factories.create_account(client, workspace, name="Moving", stage="ACQUIRE")
    for account in (stuck, moving):
        await factories.walk(client, workspace, account["id"], "IMPLEMENT")
    await factories.walk(client, workspace, moving["id"], "VALUE")
    timers = await _timers(db, workspace.id, "stuck_in_stage")
    assert len(timers) == 2
    later = utcnow() + timedelta(days=91)
    await _run(db, later)
    await _run(db, later + timedelta(days=1))
    escalations = await _tasks(client, workspace, stuck["id"], kind="escalation")
    assert [t["title"] for t in escalations if "Implement" in t["title"]] == [
        "Escalation: Stuck has been in Implement for 90 days without go-live"
    ]
    assert escalations[0]["priority"] == "urgent"
    assert escalations[0]["department"] == "professional_services"
    assert not [
        t
        for t in await _tasks(client, workspace, moving["id"], kind="escalation")
        if "Implement" in t["title"]
    ]


async def test_go_live_event_stops_the_stuck_escalation(client, db, workspace):
    await _send(client, workspace, _event("1", "opportunity_created", account={"name": "Acme"}))
    await _send(client, workspace, _event("2", "closed_won"))
    account = await _account(client, workspace)
    # go_live arrives while a stage condition keeps the account in IMPLEMENT: the rule
    # `unless: go_live` still counts the event.
    await client.put(
        "/v1/playbook",
        json={**(await client.get("/v1/playbook", headers=workspace.headers)).json()["document"],
              "rules": [{"on": "go_live", "when": {"segment_in": ["low_touch"]},
                         "move_to": "VALUE"}]},
        headers=workspace.headers,
    )  # fmt: skip
    assert (await _send(client, workspace, _event("3", "go_live")))["outcome"] == "ignored"
    await _run(db, utcnow() + timedelta(days=91))
    escalations = await _tasks(client, workspace, account["id"], kind="escalation")
    assert not [t for t in escalations if "Implement" in t["title"]]


async def test_unaccepted_handoff_escalates_once_after_its_sla(client, db, workspace):
    waiting = await factories.create_account(client, workspace, name="Waiting", stage="ACQUIRE")
    answered = await factories.create_account(client, workspace, name="Answered", stage="ACQUIRE")
    handoffs = {}
    for account in (waiting, answered):
        [result] = await factories.walk(client, workspace, account["id"], "IMPLEMENT")
        handoffs[account["id"]] = result["handoff_task"]
    await client.post(
        f"/v1/tasks/{handoffs[answered['id']]['id']}/accept", headers=workspace.headers
    )
    await _run(db, utcnow() + timedelta(hours=2))  # before the deadline: nothing
    assert not await _tasks(client, workspace, waiting["id"], kind="escalation")

    await _run(db, utcnow() + timedelta(days=5))
    await _run(db, utcnow() + timedelta(days=6))
    [escalation] = [
        t
        for t in await _tasks(client, workspace, waiting["id"], kind="escalation")
        if "not accepted" in t["title"]
    ]
    assert escalation["department"] == "professional_services"
    assert escalation["parent_task_id"] == handoffs[waiting["id"]]["id"]
    assert "within 2 business days" in escalation["title"]
    assert not await _tasks(client, workspace, answered["id"], kind="escalation")


async def test_business_reviews_are_raised_each_quarter(client, db, workspace):
    account = await _live_customer(client, workspace)
    timers = await _timers(db, workspace.id, "touchpoint")
    assert [t.payload["due_on"] for t in timers] == [
        "2027-06-30",
        "2027-09-30",
        "2027-12-31",
        "2028-03-31",
    ]
    await _run(db, datetime(2027, 6, 20, tzinfo=UTC))
    reviews = [
        t
        for t in await _tasks(client, workspace, account["id"], kind="task")
        if t["title"].startswith("Business review")
    ]
    assert [(t["title"], t["due_on"], t["department"]) for t in reviews] == [
        ("Business review with Acme (Q1)", "2027-06-30", "csm")
    ]


async def test_changed_cadence_reschedules_and_drops_old_touchpoints(client, db, workspace):
    account = await _live_customer(client, workspace)
    response = await client.put(
        f"/v1/accounts/{account['id']}/plan",
        json={"touchpoints": [{"name": "Executive review", "every_quarters": 2,
                               "department": "csm"}]},
        headers=workspace.headers,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    await _run(db, datetime(2027, 12, 20, tzinfo=UTC))
    titles = sorted(
        t["title"]
        for t in await _tasks(client, workspace, account["id"], kind="task")
        if "review with" in t["title"]
    )
    # The quarterly business reviews were dropped; of the half-yearly executive reviews (Q2
    # and Q4) only Q2's is due by then.
    assert titles == ["Executive review with Acme (Q2)"]
