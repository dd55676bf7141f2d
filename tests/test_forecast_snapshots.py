"""Forecast history: snapshots on demand and by the weekly time rule, what moved between two
snapshots (or since one), forecast accuracy once renewals close; scopes and tenancy."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlmodel import col

from service.forecasts.models import ForecastSnapshot, ForecastSnapshotRow
from service.forecasts.snapshot_schedule import SNAPSHOT_KIND
from service.playbooks import document as playbook_document
from service.timers import service as timers_service
from service.timers.models import Timer
from tests import factories

FAR = date.today() + timedelta(days=200)
WINDOW = {
    "from": (FAR - timedelta(days=10)).isoformat(),
    "to": (FAR + timedelta(days=10)).isoformat(),
}
SNAPSHOTS = "/v1/forecasts/renewals/snapshots"


async def _renewal(client, ws, arr, **contract):
    account = await factories.create_account(client, ws)
    response = await client.post(
        "/v1/contracts",
        json={
            "account_id": account["id"],
            "starts_on": (FAR - timedelta(days=364)).isoformat(),
            "ends_on": FAR.isoformat(),
            "arr": arr,
            **contract,
        },
        headers=ws.headers,
    )
    assert response.status_code == 201, response.text
    return account, response.json()


async def _snapshot(client, ws):
    response = await client.post(SNAPSHOTS, json=WINDOW, headers=ws.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _changes(client, ws, **params):
    response = await client.get("/v1/forecasts/renewals/changes", params=params, headers=ws.headers)
    assert response.status_code == 200, response.text
    return {item["contract_id"]: item for item in response.json()["items"]}


async def test_snapshot_on_demand_copies_the_forecast(client, db, workspace):
    await _renewal(client, workspace, "100.00")
    await _renewal(client, workspace, "300.00", auto_renew=True)
    reader = await factories.create_key(client, workspace, ["forecast:read"])
    assert (await client.post(SNAPSHOTS, json=WINDOW, headers=reader.headers)).status_code == 403

    snapshot = await _snapshot(client, workspace)
    assert (snapshot["kind"], snapshot["renewals"]) == ("manual", 2)
    assert (snapshot["from"], snapshot["to"]) == (WINDOW["from"], WINDOW["to"])
    async with db.sessionmaker() as session:
        rows = list(
            await session.scalars(
                select(ForecastSnapshotRow).where(
                    col(ForecastSnapshotRow.snapshot_id) == uuid.UUID(snapshot["id"])
                )
            )
        )
    assert sorted((row.arr_cents, row.probability, row.category) for row in rows) == [
        (10000, 50, "at_risk"),
        (30000, 60, "best_case"),
    ]
    second = await _snapshot(client, workspace)
    listed = await client.get(SNAPSHOTS, params={"limit": 1}, headers=reader.headers)
    page = listed.json()
    assert [item["id"] for item in page["items"]] == [second["id"]]  # newest first
    rest = await client.get(
        SNAPSHOTS, params={"cursor": page["next_cursor"]}, headers=reader.headers
    )
    assert [item["id"] for item in rest.json()["items"]] == [snapshot["id"]]
    one = await client.get(f"{SNAPSHOTS}/{snapshot['id']}", headers=reader.headers)
    assert one.status_code == 200 and one.json()["renewals"] == 2


async def test_changes_name_what_moved_and_why(client, workspace):
    _, overridden = await _renewal(client, workspace, "100.00")
    late_account, late = await _renewal(client, workspace, "200.00")
    _, grown = await _renewal(client, workspace, "300.00")
    _, steady = await _renewal(client, workspace, "400.00")
    before = await _snapshot(client, workspace)

    made = await client.post(
        f"/v1/forecasts/renewals/{overridden['id']}/overrides",
        json={"probability": 90, "reason": "Verbal yes from the sponsor"},
        headers=workspace.headers,
    )
    assert made.status_code == 201
    task = await client.post(
        "/v1/tasks",
        json={
            "account_id": late_account["id"],
            "title": "Send the QBR deck",
            "department": "csm",
            "due_on": (date.today() - timedelta(days=3)).isoformat(),
        },
        headers=workspace.headers,
    )
    assert task.status_code == 201
    patched = await client.patch(
        f"/v1/contracts/{grown['id']}", json={"arr": "450.00"}, headers=workspace.headers
    )
    assert patched.status_code == 200
    _, added = await _renewal(client, workspace, "50.00")

    live = await _changes(client, workspace, since=before["id"])
    assert set(live) == {overridden["id"], late["id"], grown["id"], added["id"]}
    assert steady["id"] not in live

    moved = live[overridden["id"]]
    assert moved["change"] == "moved"
    assert moved["old"] == {"category": "at_risk", "probability": "0.50", "arr": "100.00"}
    assert moved["new"] == {"category": "commit", "probability": "0.90", "arr": "100.00"}
    assert [(s["signal"], s["change"], s["new_value"]) for s in moved["signals"]] == [
        ("manual_override", "added", 90)
    ]
    slipped = live[late["id"]]
    assert (slipped["old"]["probability"], slipped["new"]["probability"]) == ("0.50", "0.45")
    assert [(s["signal"], s["change"], s["new_effect"]) for s in slipped["signals"]] == [
        ("overdue_tasks", "added", -5)
    ]
    assert Decimal(live[grown["id"]]["arr_change"]) == Decimal("150.00")
    assert live[grown["id"]]["signals"] == []  # same probability; the ARR moved
    assert (live[added["id"]]["change"], live[added["id"]]["old"]) == ("added", None)

    after = await _snapshot(client, workspace)
    between = await _changes(client, workspace, since=before["id"], until=after["id"])
    assert between == live
    assert await _changes(client, workspace, since=after["id"]) == {}

    paged = await client.get(
        "/v1/forecasts/renewals/changes",
        params={"since": before["id"], "limit": 3},
        headers=workspace.headers,
    )
    rest = await client.get(
        "/v1/forecasts/renewals/changes",
        params={"since": before["id"], "cursor": paged.json()["next_cursor"]},
        headers=workspace.headers,
    )
    assert len(paged.json()["items"]) == 3 and len(rest.json()["items"]) == 1


async def test_accuracy_once_renewals_close(client, workspace):
    _, renewed = await _renewal(client, workspace, "1000.00")  # forecast 50% → 500
    _, churned = await _renewal(client, workspace, "500.00", auto_renew=True)  # 60% → 300
    await _renewal(client, workspace, "700.00")  # still open
    snapshot = await _snapshot(client, workspace)
    url = f"{SNAPSHOTS}/{snapshot['id']}/accuracy"
    nothing_closed = (await client.get(url, headers=workspace.headers)).json()
    assert (nothing_closed["closed"], nothing_closed["open"]) == (0, 3)
    assert nothing_closed["error_ratio"] is None

    for contract, status in ((renewed, "renewed"), (churned, "churned")):
        response = await client.patch(
            f"/v1/contracts/{contract['id']}", json={"status": status}, headers=workspace.headers
        )
        assert response.status_code == 200, response.text
    body = (await client.get(url, headers=workspace.headers)).json()
    assert (body["closed"], body["renewed"], body["open"]) == (2, 1, 1)
    assert body["forecast_weighted_arr"] == "800.0000"
    assert body["actual_renewed_arr"] == "1000.00"
    assert body["error"] == "200.0000"
    assert body["error_ratio"] == "0.250000"


async def test_the_weekly_time_rule_takes_snapshots(client, db, workspace):
    await _renewal(client, workspace, "100.00")  # a workspace with contracts has a forecast
    async with db.sessionmaker() as session:
        (timer,) = await session.scalars(
            select(Timer).where(
                col(Timer.workspace_id) == workspace.id, col(Timer.kind) == SNAPSHOT_KIND
            )
        )
    due = timer.due_at
    assert due.astimezone(UTC).weekday() == 0 and due > datetime.now(UTC)  # next Monday, UTC
    # The renewal facts' daily timer, set by the snapshot's forecast, fires as well.
    await timers_service.run_due(db.sessionmaker, now=due, worker_id="test")
    async with db.sessionmaker() as session:
        assert (await session.get_one(Timer, timer.id)).status == "fired"
        (snapshot,) = await session.scalars(
            select(ForecastSnapshot).where(col(ForecastSnapshot.workspace_id) == workspace.id)
        )
        assert (snapshot.kind, snapshot.renewals) == ("scheduled", 1)
        pending = list(
            await session.scalars(
                select(col(Timer.due_at)).where(
                    col(Timer.workspace_id) == workspace.id,
                    col(Timer.kind) == SNAPSHOT_KIND,
                    col(Timer.status) == "pending",
                )
            )
        )
    assert pending == [due + timedelta(days=7)]

    doc = playbook_document.default_document()
    doc["forecast"] = {"snapshots": "never"}
    published = await client.put("/v1/playbook", json=doc, headers=workspace.headers)
    assert published.status_code in (200, 201)
    assert await timers_service.run_due(db.sessionmaker, now=pending[0], worker_id="t") == 1
    async with db.sessionmaker() as session:
        snapshots = list(
            await session.scalars(
                select(ForecastSnapshot).where(col(ForecastSnapshot.workspace_id) == workspace.id)
            )
        )
        left = await session.scalar(
            select(col(Timer.id)).where(
                col(Timer.workspace_id) == workspace.id,
                col(Timer.kind) == SNAPSHOT_KIND,
                col(Timer.status) == "pending",
            )
        )
    assert len(snapshots) == 1 and left is None  # switched off: no snapshot, no next timer


async def test_other_workspace_cannot_read_or_compare_snapshots(client, workspace, other_workspace):
    await _renewal(client, workspace, "100.00")
    mine = await _snapshot(client, workspace)
    theirs = await client.get(SNAPSHOTS, headers=other_workspace.headers)
    assert theirs.json()["items"] == []
    for path in (f"{SNAPSHOTS}/{mine['id']}", f"{SNAPSHOTS}/{mine['id']}/accuracy"):
        assert (await client.get(path, headers=other_workspace.headers)).status_code == 404
    response = await client.get(
        "/v1/forecasts/renewals/changes",
        params={"since": mine["id"]},
        headers=other_workspace.headers,
    )
    assert response.status_code == 404
    reader = await factories.create_key(client, workspace, ["read"])
    assert (await client.get(SNAPSHOTS, headers=reader.headers)).status_code == 403
    bad = await client.get(
        "/v1/forecasts/renewals/changes", params={"since": "nope"}, headers=workspace.headers
    )
    assert bad.status_code == 422
