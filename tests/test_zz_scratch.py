import json, time
import pytest
from service.webhooks.adapters.standard import sign
@pytest.mark.parametrize("data", [{"x": float("nan")}, {"x": float("inf")}, {"x": 10**300}, {"x": "\u0000"}, {"\u0000": 1}, {"x": "\ud800"}])
async def test_scratch(client, workspace, data):
    r = await client.post("/v1/webhook-sources", json={"kind": "standard", "name": "h"}, headers=workspace.headers)
    src = r.json()
    ev = {"id": f"e", "type": "opportunity_created", "occurred_at": "2027-01-12T09:30:00Z", "account": {"external_id": "a", "name": "A"}, "data": data}
    body = json.dumps(ev)
    h = sign(src["secret"], f"m", int(time.time()), body)
    r = await client.post(f"/webhooks/{src['id']}", content=body.encode(), headers=h)
    assert r.status_code == 200
@pytest.mark.parametrize("name", ["a\u0000b"])
async def test_account(client, workspace, name):
    r = await client.post("/v1/accounts", json={"name": name}, headers=workspace.headers)
    assert r.status_code < 500, r.text
