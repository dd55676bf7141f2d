"""The example deliveries in docs/examples are accepted as the docs say they are."""

import base64
import time
from pathlib import Path

from service.webhooks.adapters.hubspot import signed_headers
from service.webhooks.adapters.standard import sign

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


async def _events(client, ws):
    return (await client.get("/v1/events", headers=ws.headers)).json()["items"]


async def test_standard_example(client, workspace, make_source):
    source = await make_source("standard")
    body = (EXAMPLES / "standard-event.json").read_text()
    headers = sign(source["secret"], "msg_docs", int(time.time()), body)
    response = await client.post(f"/webhooks/{source['id']}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert [e["outcome"] for e in await _events(client, workspace)] == ["applied"]


async def test_hubspot_example(client, workspace, make_source):
    source = await make_source("hubspot", secret="docs-client-secret")
    body = (EXAMPLES / "hubspot-batch.json").read_bytes()
    headers = signed_headers(
        "docs-client-secret", source["ingestion_url"], body, int(time.time() * 1000)
    )
    response = await client.post(f"/webhooks/{source['id']}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    events = await _events(client, workspace)
    assert sorted(e["type"] for e in events) == ["closed_won", "opportunity_created"]


async def test_pipedrive_example(client, workspace, make_source):
    source = await make_source("pipedrive")
    body = (EXAMPLES / "pipedrive-deal-won.json").read_bytes()
    auth = base64.b64encode(f"quarterback:{source['secret']}".encode()).decode()
    response = await client.post(
        f"/webhooks/{source['id']}",
        content=body,
        headers={"authorization": f"Basic {auth}", "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert [e["type"] for e in await _events(client, workspace)] == ["closed_won"]


async def test_salesforce_example(client, workspace, make_source):
    source = await make_source("salesforce", mapping={"organization_id": "00D5g000004AbCd"})
    response = await client.post(
        f"/webhooks/{source['id']}",
        content=(EXAMPLES / "salesforce-outbound.xml").read_bytes(),
        headers={"content-type": "text/xml; charset=utf-8"},
    )
    assert response.status_code == 200 and "<Ack>true</Ack>" in response.text
