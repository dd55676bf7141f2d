"""Beyond capacity the endpoint sheds load at once; forged deliveries cost no database work."""

import asyncio
import json
import time

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY
from sqlalchemy import event

from service.app import create_app
from service.config import Settings
from service.webhooks.adapters.standard import sign


def _signed(source, n, secret=None):
    body = json.dumps({
        "id": f"shed-{n}", "type": "opportunity_created", "occurred_at": "2027-01-12T09:30:00Z",
        "account": {"external_id": f"shed-{n}", "name": f"Shed {n}"},
    })  # fmt: skip
    return body, sign(secret or source["secret"], f"msg_shed_{n}", int(time.time()), body)


def _shed_requests() -> float:
    labels = {"route": "/webhooks/{source_id}", "method": "POST", "status": "503"}
    return REGISTRY.get_sample_value("qb_http_requests_total", labels) or 0.0


async def test_overload_gets_503_with_retry_after_and_nothing_is_lost(db, workspace, make_source):
    source = await make_source("standard")
    app = create_app(
        Settings(database_url=db.url, scheduler_enabled=False, webhook_max_in_flight=2),
        engine=db.engine,
    )
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def deliver(n):
                body, headers = _signed(source, n)
                return await client.post(f"/webhooks/{source['id']}", content=body, headers=headers)

            counted_before = _shed_requests()
            responses = await asyncio.gather(*(deliver(n) for n in range(20)))
            shed = [r for r in responses if r.status_code == 503]
            accepted = [r for r in responses if r.status_code == 200]
            assert shed and accepted and len(shed) + len(accepted) == 20
            assert all(r.headers["retry-after"] == "2" for r in shed)
            assert all(r.json()["code"] == "overloaded" for r in shed)
            # Refused in front of the app, yet with a request id and under the route's label.
            assert all(r.headers["x-request-id"] for r in shed)
            assert _shed_requests() - counted_before == len(shed)
            events = (await client.get("/v1/events?limit=200", headers=workspace.headers)).json()[
                "items"
            ]
            assert len(events) == len(accepted)  # sent = stored + refused with a status


async def test_forged_delivery_to_a_known_source_costs_no_query(client, db, make_source):
    source = await make_source("standard")
    body, headers = _signed(source, 1)
    assert (
        await client.post(f"/webhooks/{source['id']}", content=body, headers=headers)
    ).status_code == 200
    statements = []

    def count(*args, **kwargs):
        statements.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        forged_body, forged = _signed(source, 2, secret="whsec_" + "A" * 43 + "=")
        response = await client.post(
            f"/webhooks/{source['id']}", content=forged_body, headers=forged
        )
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert response.status_code == 401
    assert statements == []
