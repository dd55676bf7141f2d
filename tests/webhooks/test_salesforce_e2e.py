"""Salesforce outbound messages through the real endpoint: SOAP Ack, org check, state
diffs kept per opportunity, and concurrent notifications about one record."""

import asyncio
from pathlib import Path

from service.webhooks.adapters.salesforce_mapping import id18

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "salesforce-outbound.xml"
ORG = "00D5g000004AbCd"


def _message(notification_id: str, opportunity: str = "0065g00000XyZaBAAV", **fields: str) -> bytes:
    text = EXAMPLE.read_text().replace("04l5g00000AbCdEAAV", notification_id)
    text = text.replace("0065g00000XyZaBAAV", opportunity)
    for name, value in fields.items():
        start = text.index(f"<sf:{name}>")
        end = text.index(f"</sf:{name}>")
        text = text[: start + len(name) + 5] + value + text[end:]
    return text.encode()


async def _post(client, source, body):
    return await client.post(
        f"/webhooks/{source['id']}",
        content=body,
        headers={"content-type": "text/xml; charset=utf-8", "soapaction": '""'},
    )


async def test_outbound_message_is_acked_and_applied_once(client, workspace, make_source):
    source = await make_source("salesforce", mapping={"organization_id": ORG})
    body = _message("04l5g00000AbCdEAAV")
    first = await _post(client, source, body)
    assert first.status_code == 200, first.text
    assert "<Ack>true</Ack>" in first.text
    again = await _post(client, source, body)
    assert "<Ack>true</Ack>" in again.text
    events = (await client.get("/v1/events", headers=workspace.headers)).json()["items"]
    assert sorted(e["type"] for e in events) == ["closed_won", "opportunity_created"]
    assert all(e["outcome"] == "applied" for e in events)
    account = (
        await client.get(
            "/v1/accounts?external_id=salesforce:0015g00000QrStUAAV", headers=workspace.headers
        )
    ).json()["items"][0]
    assert account["stage"] == "IMPLEMENT"


async def test_other_orgs_and_bad_mappings_are_refused(client, workspace, make_source):
    source = await make_source("salesforce", mapping={"organization_id": "00D000000000001"})
    refused = await _post(client, source, _message("04l5g00000AbCdEAAV"))
    assert refused.status_code == 401
    assert "Ack>true" not in refused.text
    assert (await client.get("/v1/events", headers=workspace.headers)).json()["items"] == []
    bad = await client.post(
        "/v1/webhook-sources",
        json={"kind": "salesforce", "name": "x",
              "mapping": {"organization_id": ORG, "allowed_ips": ["not-an-ip"]}},
        headers=workspace.headers,
    )  # fmt: skip
    assert bad.status_code == 422
    assert (
        await client.post(
            "/v1/webhook-sources",
            json={"kind": "salesforce", "name": "x", "mapping": {"organization_id": "nope"}},
            headers=workspace.headers,
        )
    ).status_code == 422


async def test_concurrent_notifications_about_one_opportunity(client, workspace, make_source):
    source = await make_source("salesforce", mapping={"organization_id": ORG})
    open_deal = {"IsWon": "false", "IsClosed": "false", "StageName": "Prospecting"}
    ids = [id18(f"04l5g00000Ab{n:03d}") for n in range(8)]
    bodies = [_message(notification, **open_deal) for notification in ids]
    responses = await asyncio.gather(*(_post(client, source, body) for body in bodies))
    assert all(r.status_code == 200 for r in responses), [r.text[:300] for r in responses]
    created = [
        e
        for e in (await client.get("/v1/events", headers=workspace.headers)).json()["items"]
        if e["type"] == "opportunity_created"
    ]
    assert len(created) == 1
