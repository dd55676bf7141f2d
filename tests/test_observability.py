"""Request ids, metrics and JSON logs."""

import json
import logging

from service.kit.observability import REQUEST_ID, JsonFormatter
from tests import factories


async def test_request_id_is_returned_and_kept_when_sane(client, workspace):
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    kept = await client.get("/healthz", headers={"x-request-id": "req-abc-123456"})
    assert kept.headers["x-request-id"] == "req-abc-123456"
    replaced = await client.get("/healthz", headers={"x-request-id": "bad id\nwith newline"})
    assert replaced.headers["x-request-id"] != "bad id\nwith newline"


async def test_metrics_expose_requests_events_tasks_and_queues(client, workspace):
    account = await factories.create_account(client, workspace, stage="ACQUIRE")
    await factories.walk(client, workspace, account["id"], "IMPLEMENT")
    await client.post(
        "/v1/events",
        json={"id": "m1", "type": "go_live", "occurred_at": "2027-01-01T00:00:00Z",
              "account": {"id": account["id"]}},
        headers=workspace.headers,
    )  # fmt: skip
    text = (await client.get("/metrics")).text
    assert (
        'qb_http_requests_total{method="POST",route="/v1/accounts/{account_id}/transitions",status="201"}'
        in text
    )
    assert 'qb_events_total{outcome="applied"}' in text
    assert 'qb_tasks_raised_total{kind="handoff"}' in text
    for gauge in ("qb_outbox_backlog", "qb_timer_lag_seconds", "qb_webhook_deliveries"):
        assert gauge in text


def test_json_log_lines_carry_the_request_id():
    record = logging.LogRecord(
        "quarterback.test", logging.INFO, __file__, 1, "hello %s", ("x",), None
    )
    token = REQUEST_ID.set("req-42-abcdef")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line["message"] == "hello x" and line["request_id"] == "req-42-abcdef"
    assert line["level"] == "info" and line["time"].endswith("Z")
