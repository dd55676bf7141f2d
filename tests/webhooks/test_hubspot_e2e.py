"""HubSpot through the real endpoint: signed batches, lookups against a fake HubSpot API,
exactly the right tasks for a batch mixing new, duplicate and irrelevant events."""

import time
from collections.abc import Iterator

import pytest

from service.webhooks.adapters.hubspot import signed_headers
from tests.webhooks.fake_hubspot import TOKEN, FakeHubSpot, body_of, deal_event

SECRET = "hubspot-app-client-secret-123"


@pytest.fixture(scope="module")
def hubspot_api() -> Iterator[FakeHubSpot]:
    server = FakeHubSpot().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake(hubspot_api: FakeHubSpot) -> FakeHubSpot:
    hubspot_api.reset()
    return hubspot_api


async def _post(client, source, events, *, secret=SECRET):
    raw = body_of(events)
    headers = signed_headers(secret, source["ingestion_url"], raw, int(time.time() * 1000))
    return await client.post(
        f"/webhooks/{source['id']}",
        content=raw,
        headers={**headers, "content-type": "application/json"},
    )


async def _source(make_source, fake=None):
    extra = {"api_token": TOKEN, "api_base_url": fake.base_url} if fake else {}
    return await make_source("hubspot", secret=SECRET, **extra)


async def _events(client, ws):
    return (await client.get("/v1/events?limit=200", headers=ws.headers)).json()["items"]


async def test_mixed_batch_raises_exactly_the_right_tasks(client, workspace, make_source, fake):
    fake.add_company("10", name="Acme", domain="acme.example")
    fake.add_company("20", name="Globex", domain="globex.example")
    fake.add_deal(
        "1", company_ids=("10",), dealname="Acme platform", amount="84000", dealtype="newbusiness"
    )
    fake.add_deal(
        "2", company_ids=("20",), dealname="Globex pilot", amount="12000", dealtype="newbusiness"
    )
    source = await _source(make_source, fake)
    acme = deal_event("deal.creation", object_id=1, event_id=101)
    batch = [
        acme,
        dict(acme, attemptNumber=1),  # the same notification twice in one batch
        deal_event("deal.propertyChange", object_id=1, event_id=102,
                   property_name="dealname", property_value="Acme platform v2"),
        deal_event("deal.creation", object_id=2, event_id=103),
    ]  # fmt: skip
    response = await _post(client, source, batch)
    assert response.status_code == 200, response.text
    # Redelivered later (HubSpot retries): nothing new.
    assert (await _post(client, source, batch)).status_code == 200

    events = await _events(client, workspace)
    assert sorted((e["type"].split()[0], e["outcome"]) for e in events) == [
        ("deal.propertyChange", "ignored"),
        ("opportunity_created", "applied"),
        ("opportunity_created", "applied"),
    ]
    ignored = next(e for e in events if e["outcome"] == "ignored")
    assert "dealname" in ignored["reason"]
    handoffs = (await client.get("/v1/tasks?kind=handoff", headers=workspace.headers)).json()
    assert sorted(t["title"] for t in handoffs["items"]) == [
        "Handoff: Acme from Marketing to Sales",
        "Handoff: Globex from Marketing to Sales",
    ]
    account = (
        await client.get("/v1/accounts?external_id=hubspot:10", headers=workspace.headers)
    ).json()["items"][0]
    assert (account["name"], account["domain"], account["stage"]) == (
        "Acme",
        "acme.example",
        "ACQUIRE",
    )
    opportunities = (
        await client.get(f"/v1/accounts/{account['id']}/opportunities", headers=workspace.headers)
    ).json()["items"]
    assert [(o["external_id"], o["amount"]) for o in opportunities] == [("1", "84000.00")]
    # The second delivery and the in-batch repeat were served from the lookup cache.
    assert fake.count("/crm/v3/objects/deals/1") == 1


async def test_closed_won_and_go_live_through_property_changes(
    client, workspace, make_source, fake
):
    fake.add_company("10", name="Acme")
    fake.add_deal("1", company_ids=("10",), dealname="Acme", amount="5000")
    source = await _source(make_source, fake)
    events = [
        deal_event("deal.creation", object_id=1, event_id=1, occurred_at=1748874539000),
        deal_event("deal.propertyChange", object_id=1, event_id=3, occurred_at=1748874539300,
                   property_name="onboarding_status", property_value="live"),
        deal_event("deal.propertyChange", object_id=1, event_id=2, occurred_at=1748874539200,
                   property_name="dealstage", property_value="closedwon"),
    ]  # fmt: skip
    assert (await _post(client, source, events)).status_code == 200
    account = (
        await client.get("/v1/accounts?external_id=hubspot:10", headers=workspace.headers)
    ).json()["items"][0]
    assert account["stage"] == "VALUE"  # go-live came before closed-won in the batch


async def test_without_a_token_the_account_is_keyed_on_the_deal(client, workspace, make_source):
    source = await _source(make_source)
    response = await _post(client, source, [deal_event("deal.creation", object_id=77, event_id=1)])
    assert response.status_code == 200
    [event] = await _events(client, workspace)
    assert event["outcome"] == "applied"
    assert "token" in event["reason"]
    found = await client.get("/v1/accounts?external_id=hubspot:deal-77", headers=workspace.headers)
    assert len(found.json()["items"]) == 1


async def test_hubspot_api_down_answers_503_and_stores_nothing(
    client, workspace, make_source, fake
):
    fake.add_deal("1", company_ids=(), dealname="A")
    fake.fail("/crm/v3/objects/deals/1", 503, times=20)
    source = await _source(make_source, fake)
    response = await _post(client, source, [deal_event("deal.creation", object_id=1, event_id=1)])
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert await _events(client, workspace) == []


async def test_bad_signature_and_percent_escaped_url(client, workspace, make_source):
    source = await _source(make_source)
    events = [deal_event("deal.creation", object_id=5, event_id=1)]
    assert (await _post(client, source, events, secret="wrong-secret-xyz")).status_code == 401
    # HubSpot signs the URL as called, query string included, %-escapes and all.
    raw = body_of(events)
    url = source["ingestion_url"] + "?portal=a%3Ab&x=%2F"
    headers = signed_headers(SECRET, url, raw, int(time.time() * 1000))
    response = await client.post(
        f"/webhooks/{source['id']}?portal=a%3Ab&x=%2F",
        content=raw,
        headers={**headers, "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
