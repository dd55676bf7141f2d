"""Outbound webhooks: outbox rows written with the change, signed deliveries to a real
local receiver that fails, stalls and recovers, retries, resends, shared dispatchers."""

import asyncio
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from service.db.types import utcnow
from service.outbound import dispatcher
from service.outbound.service import check_url
from tests import factories
from tests.receiver import Receiver

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "outbound-webhook.schema.json"


@pytest.fixture(scope="module")
def receiver_server():
    server = Receiver().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def receiver(receiver_server):
    receiver_server.reset()
    return receiver_server


@pytest.fixture
async def http():
    async with httpx.AsyncClient() as client:
        yield client


async def _subscribe(client, ws, url, events, **extra):
    response = await client.post(
        "/v1/subscriptions", json={"url": url, "events": events, **extra}, headers=ws.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _deliveries(client, ws, subscription):
    response = await client.get(
        f"/v1/subscriptions/{subscription['id']}/deliveries", headers=ws.headers
    )
    return response.json()["items"]


async def _handoff(client, ws):
    account = await factories.create_account(client, ws, name="Acme", stage="ACQUIRE")
    [result] = await factories.walk(client, ws, account["id"], "IMPLEMENT")
    return account, result


async def test_change_and_announcement_are_delivered_signed(client, db, workspace, receiver, http):
    subscription = await _subscribe(
        client, workspace, receiver.url, ["task.raised", "account.stage_changed"]
    )
    assert subscription["secret"].startswith("whsec_")
    read = await client.get(f"/v1/subscriptions/{subscription['id']}", headers=workspace.headers)
    assert "secret" not in read.json()
    account, result = await _handoff(client, workspace)

    assert await dispatcher.deliver_due(db.sessionmaker, http) == 2
    by_type = {payload["type"]: payload for payload in receiver.payloads()}
    assert by_type["account.stage_changed"]["data"]["to_stage"] == "IMPLEMENT"
    assert by_type["account.stage_changed"]["data"]["account_id"] == account["id"]
    assert by_type["task.raised"]["data"]["id"] == result["handoff_task"]["id"]
    verifier = Webhook(subscription["secret"])
    for item in receiver.received:
        verifier.verify(item.body, item.headers)  # raises if the signature is wrong
    deliveries = await _deliveries(client, workspace, subscription)
    assert {d["status"] for d in deliveries} == {"delivered"}
    assert all(d["attempts"][0]["status_code"] == 200 for d in deliveries)


async def test_department_filter_and_no_rows_without_subscribers(
    client, db, workspace, receiver, http
):
    # No subscription yet: a handoff queues nothing.
    await _handoff(client, workspace)
    assert await dispatcher.deliver_due(db.sessionmaker, http) == 0
    await _subscribe(client, workspace, receiver.url, ["task.raised"], department="csm")
    account = await factories.create_account(client, workspace, stage="ACQUIRE")
    await factories.walk(client, workspace, account["id"], "IMPLEMENT", "VALUE")
    assert await dispatcher.deliver_due(db.sessionmaker, http) == 1
    [payload] = receiver.payloads()
    assert payload["data"]["department"] == "csm"


async def test_failures_are_retried_with_backoff_and_recorded(
    client, db, workspace, receiver, http
):
    subscription = await _subscribe(client, workspace, receiver.url, ["account.stage_changed"])
    receiver.answer((500, 0), (503, 0))
    await _handoff(client, workspace)
    now = utcnow()
    await dispatcher.deliver_due(db.sessionmaker, http, now=now)
    [pending] = await _deliveries(client, workspace, subscription)
    assert pending["status"] == "pending" and pending["last_error"] == "HTTP 500"
    assert await dispatcher.deliver_due(db.sessionmaker, http, now=now) == 0  # not due yet
    await dispatcher.deliver_due(db.sessionmaker, http, now=now + timedelta(seconds=10))
    await dispatcher.deliver_due(db.sessionmaker, http, now=now + timedelta(minutes=10))
    [delivered] = await _deliveries(client, workspace, subscription)
    assert delivered["status"] == "delivered"
    assert [a["status_code"] for a in delivered["attempts"]] == [500, 503, 200]
    # Every attempt carried the same webhook-id, so the receiver can drop repeats.
    assert len({item.headers["webhook-id"] for item in receiver.received}) == 1


async def test_a_stalled_receiver_times_out(client, db, workspace, receiver, http):
    subscription = await _subscribe(client, workspace, receiver.url, ["account.stage_changed"])
    receiver.answer((200, 2.0))
    await _handoff(client, workspace)
    await dispatcher.deliver_due(
        db.sessionmaker, http, send_timeout=httpx.Timeout(0.3, connect=1.0)
    )
    [message] = await _deliveries(client, workspace, subscription)
    assert message["status"] == "pending"
    assert "Timeout" in message["attempts"][0]["error"]


async def test_gone_disables_and_repeated_failures_mark_failing(
    client, db, workspace, receiver, http
):
    flaky = await _subscribe(client, workspace, receiver.url, ["account.stage_changed"])
    receiver.answer(*[(500, 0)] * 5)
    account = await factories.create_account(client, workspace, stage="QUALIFY")
    await factories.walk(client, workspace, account["id"], "ACQUIRE", "IMPLEMENT", "VALUE",
                         "RENEW", "VALUE")  # fmt: skip
    await dispatcher.deliver_due(db.sessionmaker, http)
    read = (await client.get(f"/v1/subscriptions/{flaky['id']}", headers=workspace.headers)).json()
    assert (read["status"], read["consecutive_failures"]) == ("failing", 5)

    receiver.reset()
    receiver.answer((410, 0))
    await client.delete(f"/v1/subscriptions/{flaky['id']}", headers=workspace.headers)
    gone = await _subscribe(client, workspace, receiver.url, ["account.stage_changed"])
    await factories.walk(client, workspace, account["id"], "RENEW")
    await dispatcher.deliver_due(db.sessionmaker, http)
    read = (await client.get(f"/v1/subscriptions/{gone['id']}", headers=workspace.headers)).json()
    assert (read["status"], read["enabled"]) == ("disabled", False)


async def test_resend_delivers_again_with_the_same_id(client, db, workspace, receiver, http):
    subscription = await _subscribe(client, workspace, receiver.url, ["account.stage_changed"])
    await _handoff(client, workspace)
    await dispatcher.deliver_due(db.sessionmaker, http)
    [message] = await _deliveries(client, workspace, subscription)
    resent = await client.post(
        f"/v1/subscriptions/{subscription['id']}/deliveries/{message['id']}/resend",
        headers=workspace.headers,
    )
    assert resent.status_code == 200 and resent.json()["status"] == "pending"
    await dispatcher.deliver_due(db.sessionmaker, http)
    assert [item.headers["webhook-id"] for item in receiver.received] == [
        f"msg_{message['id']}"
    ] * 2


async def test_two_dispatchers_never_send_one_message_twice(client, db, workspace, receiver, http):
    await _subscribe(client, workspace, receiver.url, ["account.stage_changed", "task.raised"])
    for _ in range(8):
        account = await factories.create_account(client, workspace, stage="ACQUIRE")
        await factories.walk(client, workspace, account["id"], "IMPLEMENT", "VALUE")
    handled = await asyncio.gather(
        dispatcher.deliver_due(db.sessionmaker, http, worker_id="a"),
        dispatcher.deliver_due(db.sessionmaker, http, worker_id="b"),
    )
    assert sum(handled) == 32
    counts = Counter(item.headers["webhook-id"] for item in receiver.received)
    assert len(counts) == 32 and set(counts.values()) == {1}


async def test_subscriptions_validate_and_stay_in_their_workspace(
    client, workspace, other_workspace, receiver
):
    bad = await client.post(
        "/v1/subscriptions", json={"url": receiver.url, "events": ["task.exploded"]},
        headers=workspace.headers,
    )  # fmt: skip
    assert bad.status_code == 422
    assert (
        await client.post(
            "/v1/subscriptions",
            json={"url": "ftp://x", "events": ["task.raised"]},
            headers=workspace.headers,
        )
    ).status_code == 422
    subscription = await _subscribe(client, workspace, receiver.url, ["task.raised"])
    for method, path in (
        ("GET", f"/v1/subscriptions/{subscription['id']}"),
        ("PATCH", f"/v1/subscriptions/{subscription['id']}"),
        ("DELETE", f"/v1/subscriptions/{subscription['id']}"),
        ("GET", f"/v1/subscriptions/{subscription['id']}/deliveries"),
    ):
        response = await client.request(
            method, path, json={} if method == "PATCH" else None, headers=other_workspace.headers
        )
        assert response.status_code == 404, (method, path)


def test_private_addresses_are_refused_unless_allowed():
    for url in ("http://127.0.0.1/x", "http://10.0.0.5/x", "http://localhost:8000/x",
                "http://[::1]/x", "http://169.254.169.254/latest"):  # fmt: skip
        with pytest.raises(Exception, match="private or loopback"):
            check_url(url, allow_private=False)
        assert check_url(url, allow_private=True) == url
    assert check_url("https://hooks.example.com/x", allow_private=False)


def test_retry_schedule_spans_about_three_days():
    total = sum((dispatcher.retry_delay(n, rng=lambda: 0.5) for n in range(1, 10)), timedelta())
    assert timedelta(days=3) <= total <= timedelta(days=3, hours=12)
    assert dispatcher.retry_delay(10) is None
    low = dispatcher.retry_delay(3, rng=lambda: 0.0)
    high = dispatcher.retry_delay(3, rng=lambda: 1.0)
    assert low < timedelta(minutes=30) < high


async def test_delivered_bodies_match_the_documented_schema(client, db, workspace, receiver, http):
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    subscription = await _subscribe(
        client, workspace, receiver.url,
        ["task.raised", "account.stage_changed", "handoff.accepted", "task.completed"],
    )  # fmt: skip
    _, result = await _handoff(client, workspace)
    task_id = result["handoff_task"]["id"]
    await client.post(f"/v1/tasks/{task_id}/accept", headers=workspace.headers)
    await client.patch(f"/v1/tasks/{task_id}", json={"status": "done"}, headers=workspace.headers)
    await dispatcher.deliver_due(db.sessionmaker, http)
    types = sorted(payload["type"] for payload in receiver.payloads())
    assert types == ["account.stage_changed", "handoff.accepted", "task.completed", "task.raised"]
    for payload in receiver.payloads():
        validator.validate(payload)
    assert subscription["id"]
