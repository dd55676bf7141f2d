"""The webhook framework end to end: sources, verification before storage, exactly-once
application, ignored items kept with reasons, trying deliveries out."""

import asyncio
import base64
import json
import logging
import time
import uuid

import pytest

from service.webhooks.adapters.standard import sign
from tests import factories


def _event(event_id, event_type, external_id="acct-1", **fields):
    return {
        "id": event_id,
        "type": event_type,
        "occurred_at": "2027-01-12T09:30:00Z",
        "account": {"external_id": external_id, **fields.pop("account", {})},
        **fields,
    }


async def _deliver(client, source, event, msg_id=None, secret=None, timestamp=None):
    body = json.dumps(event)
    headers = sign(
        secret or source["secret"],
        msg_id or f"msg_{event['id']}",
        int(timestamp if timestamp is not None else time.time()),
        body,
    )
    path = "/webhooks/" + source["ingestion_url"].rsplit("/", 1)[1]
    return await client.post(
        path, content=body, headers={**headers, "content-type": "application/json"}
    )


async def _events(client, ws, **query):
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return (await client.get(f"/v1/events?limit=200&{params}", headers=ws.headers)).json()["items"]


async def test_create_source_shows_secret_once(client, workspace, make_source):
    source = await make_source("standard")
    assert source["secret"].startswith("whsec_")
    assert source["ingestion_url"].endswith(f"/webhooks/{source['id']}")
    assert source["namespace"] == "standard" and source["mapping_version"] == 1
    read = await client.get(f"/v1/webhook-sources/{source['id']}", headers=workspace.headers)
    assert "secret" not in read.json() and "api_token" not in read.json()
    listed = (await client.get("/v1/webhook-sources", headers=workspace.headers)).json()["items"]
    assert [s["id"] for s in listed] == [source["id"]]
    assert source["secret"] not in json.dumps(listed)


async def test_source_validation(client, workspace):
    async def create(**body):
        return await client.post(
            "/v1/webhook-sources", json={"name": "x", **body}, headers=workspace.headers
        )

    assert (await create(kind="zendesk")).status_code == 422
    hubspot = await create(kind="hubspot")
    assert hubspot.status_code == 422 and "client secret" in hubspot.json()["detail"]
    salesforce = await create(kind="salesforce")
    assert salesforce.status_code == 422
    assert salesforce.json()["errors"][0]["field"] == "mapping.organization_id"
    typo = await create(kind="pipedrive", mapping={"stage_mapp": {}})
    assert typo.status_code == 422 and "stage_mapp" in typo.json()["detail"]
    wrong_type = await create(kind="pipedrive", mapping={"stage_map": ["x"]})
    assert wrong_type.status_code == 422
    writer = await factories.create_key(client, workspace, ["write"])
    assert (
        await client.post(
            "/v1/webhook-sources", json={"name": "x", "kind": "standard"}, headers=writer.headers
        )
    ).status_code == 403


async def test_signed_event_applies_once(client, workspace, make_source):
    source = await make_source("standard")
    event = _event("e1", "opportunity_created", account={"name": "Wayne"})
    first = await _deliver(client, source, event)
    assert first.status_code == 200, first.text
    again = await _deliver(client, source, event)
    assert again.status_code == 200
    [recorded] = await _events(client, workspace)
    assert (recorded["source"], recorded["outcome"], recorded["duplicates"]) == (
        "standard",
        "applied",
        1,
    )
    account = (
        await client.get("/v1/accounts?external_id=standard:acct-1", headers=workspace.headers)
    ).json()["items"][0]
    assert account["stage"] == "ACQUIRE"
    tasks = (await client.get("/v1/tasks?kind=handoff", headers=workspace.headers)).json()
    assert len(tasks["items"]) == 1


async def test_an_unexpected_fault_is_acknowledged_and_kept_for_replay(
    client, workspace, make_source, monkeypatch
):
    """A fault on our side after the event was recorded rolls its effects back, and the CRM
    still gets its 2xx: the delivery is kept as failed, with the reason, for replay."""
    from service.deals import service as deals_service

    real = deals_service.record_deal_facts

    async def broken(*args, **kwargs):
        raise RuntimeError("deal store unavailable")

    monkeypatch.setattr(deals_service, "record_deal_facts", broken)
    source = await make_source("standard")
    event = _event("e-fault", "opportunity_created", account={"name": "Wayne"})
    answered = await _deliver(client, source, event)
    assert answered.status_code == 200, answered.text
    [kept] = await _events(client, workspace)
    assert kept["outcome"] == "failed"
    assert "RuntimeError: deal store unavailable" in kept["reason"]
    # Nothing half-applied: no account was created, no handoff raised.
    accounts = await client.get("/v1/accounts", headers=workspace.headers)
    assert accounts.json()["items"] == []
    assert (await client.get("/v1/tasks", headers=workspace.headers)).json()["items"] == []

    monkeypatch.setattr(deals_service, "record_deal_facts", real)
    replayed = await client.post(f"/v1/events/{kept['id']}/replay", headers=workspace.headers)
    assert replayed.json()["outcome"] == "applied", replayed.text
    [account] = (await client.get("/v1/accounts", headers=workspace.headers)).json()["items"]
    assert account["stage"] == "ACQUIRE"


async def test_a_fault_in_one_item_of_a_batch_keeps_the_others_applied(
    client, workspace, make_source, monkeypatch
):
    """Items of one delivery fail alone: the faulty one is undone to its savepoint and kept
    as failed, and the one before it stays applied in the same transaction. (A one-item delivery
    undoes to the start of its transaction instead; the test above covers that.)"""
    from service.deals import service as deals_service

    real = deals_service.record_deal_facts

    async def broken_for_wayne(*args, **kwargs):
        if kwargs["source"] and kwargs["opportunity"]["external_id"] == "opp-wayne":
            raise RuntimeError("deal store unavailable")
        return await real(*args, **kwargs)

    monkeypatch.setattr(deals_service, "record_deal_facts", broken_for_wayne)
    source = await make_source("standard")
    batch = {
        "events": [
            _event(
                f"e-{name}",
                "opportunity_created",
                external_id=f"acct-{name}",
                account={"name": name.title()},
                opportunity={"external_id": f"opp-{name}", "name": f"{name} deal"},
            )
            for name in ("stark", "wayne")  # the faulty one last: Stark must survive it
        ]
    }
    answered = await _deliver(client, source, batch, msg_id="msg_batch")
    assert answered.status_code == 200, answered.text
    outcomes = {
        event["external_id"].rsplit(":", 1)[1]: event for event in await _events(client, workspace)
    }
    assert outcomes["e-wayne"]["outcome"] == "failed"
    assert "deal store unavailable" in outcomes["e-wayne"]["reason"]
    assert outcomes["e-stark"]["outcome"] == "applied"
    accounts = (await client.get("/v1/accounts", headers=workspace.headers)).json()["items"]
    assert [account["name"] for account in accounts] == ["Stark"]


async def test_a_change_delivered_before_the_account_exists_applies_once_it_does(
    client, workspace, make_source
):
    """After an outage a CRM redelivers in its own order: closed_won may come back before the
    opportunity_created that creates the account. It waits, then applies on its own."""
    source = await make_source("standard")
    won = _event("late-won", "closed_won", occurred_at="2027-01-12T10:00:00Z")
    opened = _event("late-open", "opportunity_created", account={"name": "Wayne"})
    assert (await _deliver(client, source, won)).status_code == 200
    [waiting] = await _events(client, workspace)
    assert (waiting["outcome"], waiting["account_id"]) == ("pending", None)

    assert (await _deliver(client, source, opened)).status_code == 200
    events = {event["type"]: event for event in await _events(client, workspace)}
    assert {key: event["outcome"] for key, event in events.items()} == {
        "closed_won": "applied",
        "opportunity_created": "applied",
    }
    [account] = (await client.get("/v1/accounts", headers=workspace.headers)).json()["items"]
    assert account["stage"] == "IMPLEMENT"
    assert events["closed_won"]["account_id"] == account["id"]
    handoffs = (await client.get("/v1/tasks?kind=handoff", headers=workspace.headers)).json()
    assert len(handoffs["items"]) == 2  # Sales, then Professional Services: once each


async def test_a_waiting_event_of_another_account_or_source_is_left_alone(
    client, workspace, make_source
):
    first = await make_source("standard")
    second = await make_source("standard", namespace="other-crm")
    await _deliver(client, first, _event("w1", "closed_won", external_id="acct-9"))
    await _deliver(client, second, _event("w2", "closed_won", external_id="acct-1"))
    opened = _event("o1", "opportunity_created", account={"name": "Wayne"})
    assert (await _deliver(client, first, opened)).status_code == 200
    outcomes = {e["external_id"]: e["outcome"] for e in await _events(client, workspace)}
    assert outcomes == {
        "stdwh:msg_w1": "pending",
        "stdwh:msg_w2": "pending",
        "stdwh:msg_o1": "applied",
    }


async def test_rejected_deliveries_store_nothing_and_log_no_secret(
    client, workspace, make_source, caplog
):
    source = await make_source("standard")
    event = _event("e1", "opportunity_created", account={"name": "Wayne"})
    caplog.set_level(logging.DEBUG)
    forged = await _deliver(
        client, source, event, secret="whsec_" + base64.b64encode(b"x" * 32).decode()
    )
    assert forged.status_code == 401
    assert forged.headers["content-type"].startswith("application/problem+json")
    stale = await _deliver(client, source, event, timestamp=time.time() - 600)
    assert stale.status_code == 401
    unsigned = await client.post(
        f"/webhooks/{source['id']}", json=event, headers={"content-type": "application/json"}
    )
    assert unsigned.status_code == 401
    assert await _events(client, workspace) == []
    assert source["secret"] not in caplog.text
    assert source["secret"].removeprefix("whsec_") not in caplog.text


async def test_unknown_source_malformed_and_oversized(client, workspace, make_source):
    assert (await client.post(f"/webhooks/{uuid.uuid4()}", content=b"{}")).status_code == 404
    assert (await client.post("/webhooks/not-a-source", content=b"{}")).status_code == 404
    source = await make_source("standard")
    body = "{not json"
    headers = sign(source["secret"], "msg_bad", int(time.time()), body)
    malformed = await client.post(f"/webhooks/{source['id']}", content=body, headers=headers)
    assert malformed.status_code == 400
    assert "JSON" in malformed.json()["detail"]
    huge = "x" * (1024 * 1024 + 1)
    headers = sign(source["secret"], "msg_huge", int(time.time()), huge)
    assert (
        await client.post(f"/webhooks/{source['id']}", content=huge, headers=headers)
    ).status_code == 413
    assert await _events(client, workspace) == []


async def test_secret_rotation_with_grace(client, workspace, make_source):
    source = await make_source("standard")
    old = source["secret"]
    rotated = await client.post(
        f"/v1/webhook-sources/{source['id']}/rotate-secret",
        json={"grace_seconds": 3600},
        headers=workspace.headers,
    )
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != old and rotated.json()["secret_rotated_until"]
    event = _event("r1", "opportunity_created", account={"name": "A"})
    assert (await _deliver(client, source, event, secret=old)).status_code == 200
    event2 = _event("r2", "closed_won")
    assert (await _deliver(client, source, event2, secret=new)).status_code == 200
    # A second rotation with no grace: the secret before it stops working at once.
    again = await client.post(
        f"/v1/webhook-sources/{source['id']}/rotate-secret",
        json={"grace_seconds": 0},
        headers=workspace.headers,
    )
    event3 = _event("r3", "go_live")
    assert (await _deliver(client, source, event3, secret=new)).status_code == 401
    assert (
        await _deliver(client, source, event3, secret=again.json()["secret"])
    ).status_code == 200


async def test_mapping_changes_are_versioned(client, workspace, make_source):
    source = await make_source("pipedrive")
    for stage_map in ({"7": "VALUE"}, {"7": "VALUE", "8": "EXPAND"}):
        patched = await client.patch(
            f"/v1/webhook-sources/{source['id']}",
            json={"mapping": {"stage_map": stage_map}},
            headers=workspace.headers,
        )
        assert patched.status_code == 200
    assert patched.json()["mapping_version"] == 3
    versions = (
        await client.get(
            f"/v1/webhook-sources/{source['id']}/mapping-versions", headers=workspace.headers
        )
    ).json()["items"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[0]["mapping"] == {"stage_map": {"7": "VALUE", "8": "EXPAND"}}
    assert versions[0]["changed_by"] == "api_key:admin"


async def test_deleted_source_stops_answering(client, workspace, make_source):
    source = await make_source("standard")
    deleted = await client.delete(f"/v1/webhook-sources/{source['id']}", headers=workspace.headers)
    assert deleted.status_code == 204
    event = _event("d1", "opportunity_created", account={"name": "A"})
    assert (await _deliver(client, source, event)).status_code == 404


async def test_sources_are_scoped_to_workspace(client, workspace, other_workspace, make_source):
    source = await make_source("standard")
    for method, path, body in (
        ("GET", f"/v1/webhook-sources/{source['id']}", None),
        ("PATCH", f"/v1/webhook-sources/{source['id']}", {"name": "mine"}),
        ("DELETE", f"/v1/webhook-sources/{source['id']}", None),
        ("POST", f"/v1/webhook-sources/{source['id']}/rotate-secret", {}),
        ("GET", f"/v1/webhook-sources/{source['id']}/mapping-versions", None),
        ("POST", f"/v1/webhook-sources/{source['id']}/try", {"body": "{}"}),
    ):
        response = await client.request(method, path, json=body, headers=other_workspace.headers)
        assert response.status_code == 404, (method, path)
    assert (await client.get("/v1/webhook-sources", headers=other_workspace.headers)).json()[
        "items"
    ] == []
    # Events delivered to this source land in this workspace only.
    await _deliver(client, source, _event("t1", "opportunity_created", account={"name": "A"}))
    assert await _events(client, other_workspace) == []
    assert len(await _events(client, workspace)) == 1


async def test_try_shows_what_a_delivery_would_do_and_writes_nothing(
    client, workspace, make_source
):
    source = await make_source("standard")
    event = _event("try1", "opportunity_created", account={"name": "Trial"})
    body = json.dumps(event)
    headers = sign(source["secret"], "msg_try", int(time.time()), body)
    tried = await client.post(
        f"/v1/webhook-sources/{source['id']}/try",
        json={"headers": headers, "body": body},
        headers=workspace.headers,
    )
    assert tried.status_code == 200, tried.text
    result = tried.json()
    assert result["verified"] is True
    [item] = result["items"]
    assert item["event"]["type"] == "opportunity_created"
    assert item["already_received"] is False
    assert item["simulation"]["to_stage"] == "ACQUIRE"
    assert item["simulation"]["handoff"]["department"] == "sales"
    assert await _events(client, workspace) == []
    assert (await client.get("/v1/accounts", headers=workspace.headers)).json()["items"] == []

    bad = await client.post(
        f"/v1/webhook-sources/{source['id']}/try",
        json={"headers": {**headers, "webhook-signature": "v1,AAAA"}, "body": body},
        headers=workspace.headers,
    )
    assert bad.json()["verified"] is False and bad.json()["verification_error"]


async def test_pipedrive_ignored_items_are_kept_with_reasons(client, workspace, make_source):
    source = await make_source("pipedrive")
    body = {
        "meta": {
            "action": "change", "entity": "deal", "id": str(uuid.uuid4()), "version": "2.0",
            "company_id": 42, "timestamp": "2027-01-12T09:30:00Z",
        },
        "data": {"id": 5, "title": "Renewal", "status": "open", "stage_id": 3, "org_id": 77,
                 "value": 100, "currency": "EUR"},
        "previous": {"title": "Old title"},
    }  # fmt: skip
    auth = base64.b64encode(f"quarterback:{source['secret']}".encode()).decode()
    response = await client.post(
        f"/webhooks/{source['id']}", json=body, headers={"authorization": f"Basic {auth}"}
    )
    assert response.status_code == 200, response.text
    [ignored] = await _events(client, workspace, outcome="ignored")
    assert ignored["source"] == "pipedrive"
    assert ignored["reason"]
    wrong = base64.b64encode(b"quarterback:nope").decode()
    refused = await client.post(
        f"/webhooks/{source['id']}", json=body, headers={"authorization": f"Basic {wrong}"}
    )
    assert refused.status_code == 401


async def test_fifty_concurrent_deliveries_make_one_change(client, workspace, make_source):
    source = await make_source("standard")
    await _deliver(client, source, _event("c0", "opportunity_created", account={"name": "Race"}))
    event = _event("c1", "closed_won")
    responses = await asyncio.gather(*(_deliver(client, source, event) for _ in range(50)))
    # Beyond the in-flight limit the endpoint sheds with 503; the sender delivers again.
    assert {r.status_code for r in responses} <= {200, 503}
    retries = sum(r.status_code == 503 for r in responses)
    while retries:
        again = await asyncio.gather(*(_deliver(client, source, event) for _ in range(retries)))
        retries = sum(r.status_code == 503 for r in again)
    won = [e for e in await _events(client, workspace) if e["type"] == "closed_won"]
    assert len(won) == 1 and won[0]["duplicates"] == 49  # every accepted repeat was counted
    account = (
        await client.get("/v1/accounts?external_id=standard:acct-1", headers=workspace.headers)
    ).json()["items"][0]
    history = (
        await client.get(f"/v1/accounts/{account['id']}/transitions", headers=workspace.headers)
    ).json()["items"]
    assert [h["to_stage"] for h in history] == ["QUALIFY", "ACQUIRE", "IMPLEMENT"]
    handoffs = (
        await client.get(
            "/v1/tasks?kind=handoff&department=professional_services", headers=workspace.headers
        )
    ).json()["items"]
    assert len(handoffs) == 1


@pytest.mark.parametrize("order", [("won", "live"), ("live", "won")])
async def test_go_live_before_closed_won_ends_the_same(client, workspace, make_source, order):
    source = await make_source("standard")
    await _deliver(client, source, _event("o0", "opportunity_created", account={"name": "Ord"}))
    events = {"won": _event("o1", "closed_won"), "live": _event("o2", "go_live")}
    for name in order:
        assert (await _deliver(client, source, events[name])).status_code == 200
    account = (
        await client.get("/v1/accounts?external_id=standard:acct-1", headers=workspace.headers)
    ).json()["items"][0]
    assert account["stage"] == "VALUE"
    tasks = (await client.get("/v1/tasks?limit=200", headers=workspace.headers)).json()["items"]
    handoffs = sorted(
        (t["from_department"], t["to_department"]) for t in tasks if t["kind"] == "handoff"
    )
    assert handoffs == [
        ("marketing", "sales"),
        ("professional_services", "csm"),
        ("sales", "professional_services"),
    ]
    assert not await _events(client, workspace, outcome="pending")
