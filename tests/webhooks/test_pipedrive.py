"""Pipedrive adapter: HTTP Basic as Pipedrive sends it, v2 and v1 bodies, every mapping
branch, dedupe keys, malformed bodies. Pure: no database, no lookups (Pipedrive waits 10 s,
so the adapter never calls out)."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.webhooks.adapters.base import MalformedDelivery, Mapped, VerificationFailed
from service.webhooks.adapters.pipedrive import DEFAULT_MAPPING, PipedriveAdapter
from tests.webhooks.pd_std_support import (
    PUBLIC_URL,
    assert_canonical,
    context,
    delivery_from,
    source_config,
)

SECRET = "pd-Zq3v8m1LxT0aB7wK"
OLD_SECRET = "pd-old-9fJd2kQp"
ADAPTER = PipedriveAdapter()
EVENT_ID = "c41f9a27-6b3e-4d58-8e0a-2f7c1b9d5e36"
GO_LIVE_FIELD = "9dc80c50d78a15643bfc4ca79d76156a73a1ca0e"

# Webhooks v2, a deal marked won (Pipedrive "Guide for Webhooks v2": meta, data, previous
# holding only the changed fields; ids in meta are strings).
V2_WON: dict[str, Any] = {
    "data": {
        "id": 408,
        "title": "Stark Industries - 250 seats",
        "status": "won",
        "stage_id": 5,
        "pipeline_id": 1,
        "org_id": 87,
        "person_id": 311,
        "owner_id": 21937755,
        "value": 62500,
        "currency": "EUR",
        "won_time": "2025-06-02T14:29:55Z",
        "close_time": "2025-06-02T14:29:55Z",
        "expected_close_date": "2025-06-30",
        "custom_fields": {},
        "update_time": "2025-06-02T14:29:55Z",
    },
    "previous": {
        "status": "open",
        "won_time": None,
        "close_time": None,
        "update_time": "2025-05-30T11:15:42Z",
    },
    "meta": {
        "action": "change",
        "entity": "deal",
        "company_id": "13392704",
        "entity_id": "408",
        "id": EVENT_ID,
        "correlation_id": "9d2c7e41-3a6b-4f80-b5c9-1e2d3f4a5b6c",
        "is_bulk_edit": False,
        "timestamp": "2025-06-02T14:29:55.350Z",
        "type": "general",
        "user_id": "21937755",
        "version": "2.0",
        "webhook_id": "1184452",
        "webhook_owner_id": "21937755",
        "change_source": "app",
        "attempt": 1,
        "host": "globex-sales.pipedrive.com",
        "permitted_user_ids": ["21937755"],
    },
}

# Webhooks v1, a deal added (Pipedrive "Guide for Webhooks": whole objects in API-v1
# style, meta.id is the deal's id, epoch timestamps).
V1_ADDED: dict[str, Any] = {
    "v": 1,
    "matches_filters": {"current": []},
    "meta": {
        "v": 1,
        "action": "added",
        "object": "deal",
        "id": 408,
        "company_id": 13392704,
        "user_id": 21937755,
        "host": "globex-sales.pipedrive.com",
        "timestamp": 1717833091,
        "timestamp_micro": 1717833091123456,
        "permitted_user_ids": [21937755],
        "trans_pending": False,
        "is_bulk_update": False,
        "pipedrive_service_name": False,
        "change_source": "app",
        "webhook_id": "1184451",
    },
    "current": {
        "id": 408,
        "title": "Stark Industries - 250 seats",
        "status": "open",
        "stage_id": 1,
        "pipeline_id": 1,
        "org_id": 87,
        "org_name": "Stark Industries",
        "person_id": 311,
        "value": 62500.5,
        "currency": "EUR",
        "add_time": "2024-06-08 07:51:31",
        "update_time": "2024-06-08 07:51:31",
        "expected_close_date": "2024-09-30",
        "close_time": None,
        GO_LIVE_FIELD: None,
    },
    "previous": None,
    "retry": 0,
    "event": "added.deal",
}


def v2(
    action: str = "change",
    data: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    body = copy.deepcopy(V2_WON)
    body["meta"].update(action=action, **meta)
    if action == "create":
        body["data"].update(status="open", won_time=None, close_time=None)
        body["previous"] = None
    if data is not None:
        body["data"].update(data)
    if previous is not None:
        body["previous"] = previous
    return body


def v1_updated(current: dict[str, Any], previous: dict[str, Any], **meta: Any) -> dict[str, Any]:
    body = copy.deepcopy(V1_ADDED)
    body["event"] = "updated.deal"
    body["meta"].update(action="updated", **meta)
    body["current"] = {**body["current"], **current}
    body["previous"] = {**V1_ADDED["current"], **previous}
    return body


def pipedrive_request(
    body: dict[str, Any] | bytes,
    user: str = "quarterback",
    password: str | None = SECRET,
    headers: dict[str, str] | None = None,
) -> httpx.Request:
    """A request as Pipedrive makes it: POST, a JSON body, HTTP Basic from the webhook's
    HTTP Auth user name and password (added by httpx's own Basic auth flow)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = httpx.Request(
        "POST",
        PUBLIC_URL,
        content=content,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    if password is None:
        return request
    return next(httpx.BasicAuth(user, password).sync_auth_flow(request))


def source(mapping: dict[str, Any] | None = None, secrets: tuple[str, ...] = (SECRET,)):
    return source_config("pipedrive", secrets, DEFAULT_MAPPING, mapping)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def deliver(
    http: httpx.AsyncClient, body: dict[str, Any] | bytes, mapping: dict[str, Any] | None = None
) -> Mapped:
    """Verify and map one delivery the way the ingestion endpoint does."""
    delivery = delivery_from(pipedrive_request(body))
    src = source(mapping)
    ADAPTER.verify(delivery, src)
    [mapped] = await ADAPTER.map(delivery, src, context(http))
    if mapped.event is not None:
        assert mapped.event["id"] == mapped.dedupe_key
        assert_canonical(mapped.event)
    return mapped


# ------------------------------------------------------------------------ verification


def test_basic_credentials_as_pipedrive_sends_them_pass():
    request = pipedrive_request(V2_WON)
    expected = base64.b64encode(f"quarterback:{SECRET}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    ADAPTER.verify(delivery_from(request), source())


def test_any_current_or_rotated_secret_passes():
    request = pipedrive_request(V2_WON, password=OLD_SECRET)
    ADAPTER.verify(delivery_from(request), source(secrets=(SECRET, OLD_SECRET)))
    with pytest.raises(VerificationFailed):
        ADAPTER.verify(delivery_from(request), source(secrets=(SECRET,)))


def test_the_user_name_comes_from_the_mapping():
    request = pipedrive_request(V2_WON, user="acme-crm")
    ADAPTER.verify(delivery_from(request), source({"basic_user": "acme-crm"}))
    with pytest.raises(VerificationFailed, match="user name or password"):
        ADAPTER.verify(delivery_from(request), source())


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pipedrive_request(V2_WON, password="guessed"), "user name or password"),
        (pipedrive_request(V2_WON, user="admin"), "user name or password"),
        (pipedrive_request(V2_WON, password=f"{SECRET}x"), "user name or password"),
        (pipedrive_request(V2_WON, password=None), "missing Authorization"),
        (
            pipedrive_request(V2_WON, password=None, headers={"Authorization": f"Bearer {SECRET}"}),
            "not HTTP Basic",
        ),
        (
            pipedrive_request(V2_WON, password=None, headers={"Authorization": "Basic %%%"}),
            "not valid base64",
        ),
        (
            pipedrive_request(
                V2_WON,
                password=None,
                headers={"Authorization": "Basic " + base64.b64encode(SECRET.encode()).decode()},
            ),
            "not user:password",
        ),
    ],
    ids=["wrong-password", "wrong-user", "longer-password", "missing", "bearer", "base64", "colon"],
)
def test_wrong_or_missing_credentials_are_refused(request_: httpx.Request, message: str):
    with pytest.raises(VerificationFailed, match=message) as raised:
        ADAPTER.verify(delivery_from(request_), source())
    assert SECRET not in str(raised.value)


def test_a_source_without_secret_refuses_everything():
    with pytest.raises(VerificationFailed, match="no secret"):
        ADAPTER.verify(delivery_from(pipedrive_request(V2_WON)), source(secrets=()))


# ------------------------------------------------------------------------ v2 mapping


async def test_v2_deal_created_is_opportunity_created(http):
    mapped = await deliver(http, v2("create"))
    assert mapped.dedupe_key == f"pipedrive:13392704:{EVENT_ID}"
    assert mapped.label == "create.deal"
    assert mapped.note is None
    assert mapped.event == {
        "id": f"pipedrive:13392704:{EVENT_ID}",
        "type": "opportunity_created",
        "occurred_at": "2025-06-02T14:29:55.350000+00:00",
        "account": {"external_id": "87"},
        "opportunity": {
            "external_id": "408",
            "name": "Stark Industries - 250 seats",
            "amount": "62500.00",
            "currency": "EUR",
            "close_date": "2025-06-30",  # open deal: the expected close date
        },
        "data": {
            "webhook_version": 2,
            "company_id": "13392704",
            "deal_id": "408",
            "status": "open",
            "stage_id": 5,
            "pipeline_id": 1,
            "change_source": "app",
        },
    }


async def test_v2_status_to_won_is_closed_won(http):
    mapped = await deliver(http, V2_WON)
    assert mapped.event is not None
    assert mapped.event["type"] == "closed_won"
    assert mapped.event["opportunity"]["close_date"] == "2025-06-02"  # closed: close_time
    assert mapped.label == "change.deal (close_time, status, update_time, won_time)"


async def test_v2_status_to_lost_is_closed_lost(http):
    body = v2(
        data={"status": "lost", "lost_time": "2025-06-03T09:00:00Z", "won_time": None},
        previous={"status": "open", "lost_time": None},
    )
    mapped = await deliver(http, body)
    assert mapped.event is not None and mapped.event["type"] == "closed_lost"


@pytest.mark.parametrize(
    ("status", "before"), [("open", "won"), ("deleted", "open")], ids=["reopened", "deleted"]
)
async def test_v2_other_status_changes_are_ignored_with_reason(http, status, before):
    mapped = await deliver(http, v2(data={"status": status}, previous={"status": before}))
    assert mapped.event is None
    assert mapped.ignored_reason == (
        f"deal status changed from {before!r} to {status!r}; only won and lost raise events"
    )


@pytest.mark.parametrize("configured", [[9], ["9"]], ids=["int", "string"])
async def test_v2_moving_into_a_go_live_stage_is_go_live(http, configured):
    body = v2(data={"stage_id": 9, "pipeline_id": 3}, previous={"stage_id": 8})
    mapped = await deliver(http, body, {"go_live_stage_ids": configured})
    assert mapped.event is not None
    assert mapped.event["type"] == "go_live"
    assert mapped.event["data"]["go_live_by"] == "stage_id 9"


async def test_v2_go_live_by_custom_field_value(http):
    mapping = {"go_live_field": GO_LIVE_FIELD, "go_live_values": ["17"]}
    body = v2(
        data={"custom_fields": {GO_LIVE_FIELD: {"type": "enum", "id": 17}}},
        previous={"custom_fields": {GO_LIVE_FIELD: {"type": "enum", "id": 16}}},
    )
    mapped = await deliver(http, body, mapping)
    assert mapped.event is not None
    assert mapped.event["type"] == "go_live"
    assert mapped.event["data"]["go_live_by"] == f"field {GO_LIVE_FIELD}"


async def test_v2_go_live_field_already_live_does_not_fire_again(http):
    """An edit of another field of a live deal: `previous` does not list the go-live field."""
    mapping = {"go_live_field": GO_LIVE_FIELD, "go_live_values": ["17"]}
    body = v2(
        data={"title": "Renamed", "custom_fields": {GO_LIVE_FIELD: {"type": "enum", "id": 17}}},
        previous={"title": "Stark Industries - 250 seats"},
    )
    mapped = await deliver(http, body, mapping)
    assert mapped.event is None
    assert mapped.ignored_reason == (
        f"deal change touched title; none of status, stage_id or the go-live field "
        f"({GO_LIVE_FIELD}) changed in a mapped way"
    )


async def test_v2_go_live_by_standard_field_and_set_values(http):
    mapping = {"go_live_field": "label_ids", "go_live_values": ["4"]}
    body = v2(data={"label_ids": [2, 4]}, previous={"label_ids": [2]})
    mapped = await deliver(http, body, mapping)
    assert mapped.event is not None and mapped.event["type"] == "go_live"


async def test_v2_mapped_stage_is_stage_changed(http):
    body = v2(data={"status": "open", "stage_id": 7}, previous={"stage_id": 6})
    mapped = await deliver(http, body, {"stage_map": {"7": "RENEW"}})
    assert mapped.event is not None
    assert mapped.event["type"] == "stage_changed"
    assert mapped.event["to_stage"] == "RENEW"


async def test_v2_unmapped_stage_is_ignored_with_the_fix(http):
    body = v2(data={"status": "open", "stage_id": 7}, previous={"stage_id": 6})
    mapped = await deliver(http, body, {"stage_map": {"8": "RENEW"}})
    assert mapped.event is None
    assert mapped.ignored_reason == (
        "deal stage_id 7 is not mapped; map it in the source's mapping.stage_map "
        "(stage id -> Quarterback stage) or mapping.go_live_stage_ids, or ignore it"
    )
    assert mapped.label == "change.deal (stage_id)"


async def test_v2_won_wins_over_a_stage_move_in_the_same_change(http):
    body = v2(data={"stage_id": 7}, previous={"status": "open", "stage_id": 6})
    mapped = await deliver(http, body, {"stage_map": {"7": "RENEW"}})
    assert mapped.event is not None and mapped.event["type"] == "closed_won"


async def test_v2_other_entities_and_deletions_are_ignored(http):
    person = v2("change", entity="person")
    mapped = await deliver(http, person)
    assert mapped.event is None
    assert mapped.ignored_reason is not None and "only deals do" in mapped.ignored_reason
    assert mapped.label == "change.person (close_time, status, update_time, won_time)"

    deleted = v2("delete", merged_to_id="412")
    deleted["previous"], deleted["data"] = deleted["data"], None
    mapped = await deliver(http, deleted)
    assert (
        mapped.ignored_reason
        == "deal deleted (merged into deal 412): Quarterback keeps the account"
    )


async def test_v2_deal_without_organization_is_keyed_on_the_deal(http):
    mapped = await deliver(http, v2("create", data={"org_id": None}))
    assert mapped.event is not None
    assert mapped.event["account"] == {"external_id": "deal-408"}
    assert (
        mapped.note == "deal 408 has no organization; the account is keyed on the deal (deal-408)"
    )


async def test_v2_organization_as_object(http):
    org = {"value": 87, "name": "Stark Industries"}
    mapped = await deliver(http, v2("create", data={"org_id": org}))
    assert mapped.event is not None
    assert mapped.event["account"] == {"external_id": "87", "name": "Stark Industries"}


@pytest.mark.parametrize(
    ("value", "amount"),
    [(1234.5, "1234.50"), ("99.999", "100.00"), (0, "0.00"), (None, None), ("n/a", None)],
)
async def test_deal_value_becomes_a_decimal_string(http, value, amount):
    mapped = await deliver(http, v2("create", data={"value": value, "currency": "usd"}))
    assert mapped.event is not None
    assert mapped.event["opportunity"].get("amount") == amount
    assert mapped.event["opportunity"]["currency"] == "USD"


async def test_v2_epoch_timestamps_and_numeric_ids_are_accepted(http):
    """Some v2 samples carry numbers where the guide shows strings."""
    body = v2("create", company_id=13392704, timestamp=1727447128)
    mapped = await deliver(http, body)
    assert mapped.dedupe_key == f"pipedrive:13392704:{EVENT_ID}"
    assert mapped.event is not None
    assert mapped.event["occurred_at"] == "2024-09-27T14:25:28+00:00"


# ------------------------------------------------------------------------ v1 mapping


async def test_v1_deal_added_is_opportunity_created(http):
    mapped = await deliver(http, V1_ADDED)
    assert mapped.dedupe_key == "pipedrive-v1:13392704:deal:408:1717833091123456"
    assert mapped.label == "added.deal"
    assert mapped.event is not None
    assert mapped.event["type"] == "opportunity_created"
    assert mapped.event["occurred_at"] == "2024-06-08T07:51:31.123456+00:00"
    assert mapped.event["account"] == {"external_id": "87", "name": "Stark Industries"}
    assert mapped.event["opportunity"]["amount"] == "62500.50"
    assert mapped.event["opportunity"]["close_date"] == "2024-09-30"
    assert mapped.event["data"]["webhook_version"] == 1


async def test_v1_status_to_won_is_closed_won(http):
    body = v1_updated(
        {"status": "won", "close_time": "2024-06-12 07:51:31", "won_time": "2024-06-12 07:51:31"},
        {"status": "open"},
    )
    mapped = await deliver(http, body)
    assert mapped.label == "updated.deal"
    assert mapped.event is not None
    assert mapped.event["type"] == "closed_won"
    assert mapped.event["opportunity"]["close_date"] == "2024-06-12"


async def test_v1_status_to_lost_is_closed_lost(http):
    mapped = await deliver(http, v1_updated({"status": "lost"}, {"status": "open"}))
    assert mapped.event is not None and mapped.event["type"] == "closed_lost"


async def test_v1_go_live_by_top_level_custom_field(http):
    mapping = {"go_live_field": GO_LIVE_FIELD, "go_live_values": ["17"]}
    body = v1_updated({"status": "won", GO_LIVE_FIELD: "17"}, {"status": "won"})
    mapped = await deliver(http, body, mapping)
    assert mapped.event is not None and mapped.event["type"] == "go_live"
    # v1's previous is the whole deal: an unchanged live value is not a new go-live.
    again = v1_updated(
        {"status": "won", GO_LIVE_FIELD: "17"}, {"status": "won", GO_LIVE_FIELD: "17"}
    )
    assert (await deliver(http, again, mapping)).event is None


async def test_v1_stage_moves(http):
    moved = v1_updated({"stage_id": 9}, {"stage_id": 8})
    live = await deliver(http, moved, {"go_live_stage_ids": [9]})
    assert live.event is not None and live.event["type"] == "go_live"
    mapped = await deliver(http, moved, {"stage_map": {"9": "EXPAND"}})
    assert mapped.event is not None and mapped.event["to_stage"] == "EXPAND"
    ignored = await deliver(http, moved)
    assert (
        ignored.ignored_reason is not None and "stage_id 9 is not mapped" in ignored.ignored_reason
    )


async def test_v1_merged_and_non_deal_events_are_ignored(http):
    merged = v1_updated({}, {})
    merged["event"], merged["meta"]["action"] = "merged.deal", "merged"
    assert (await deliver(http, merged)).ignored_reason == (
        "deal merged: Quarterback keeps the account"
    )
    person = copy.deepcopy(V1_ADDED)
    person["event"], person["meta"]["object"] = "added.person", "person"
    mapped = await deliver(http, person)
    assert mapped.label == "added.person"
    assert mapped.dedupe_key == "pipedrive-v1:13392704:person:408:1717833091123456"
    assert mapped.ignored_reason is not None and "'person' events" in mapped.ignored_reason


async def test_v1_without_timestamp_micro_keys_on_seconds(http):
    body = copy.deepcopy(V1_ADDED)
    del body["meta"]["timestamp_micro"]
    mapped = await deliver(http, body)
    assert mapped.dedupe_key == "pipedrive-v1:13392704:deal:408:1717833091"
    assert mapped.event is not None
    assert mapped.event["occurred_at"] == "2024-06-08T07:51:31+00:00"


# ------------------------------------------------------------------------ dedupe keys


async def test_retries_keep_the_key_and_other_events_get_their_own(http):
    first = await deliver(http, V2_WON)
    retry = await deliver(http, v2(attempt=3))  # Pipedrive retries carry meta.attempt
    assert retry.dedupe_key == first.dedupe_key
    assert retry.event == first.event
    other = await deliver(http, v2(id="0b7e2f1a-9c44-4b1e-8d6a-1f2e3d4c5b6a"))
    assert other.dedupe_key != first.dedupe_key

    v1_first = await deliver(http, V1_ADDED)
    v1_retry = copy.deepcopy(V1_ADDED)
    v1_retry["retry"] = 2
    assert (await deliver(http, v1_retry)).dedupe_key == v1_first.dedupe_key
    later = copy.deepcopy(V1_ADDED)
    later["meta"]["timestamp_micro"] += 1
    assert (await deliver(http, later)).dedupe_key != v1_first.dedupe_key


async def test_another_company_has_other_keys(http):
    mapped = await deliver(http, v2(company_id="777"))
    assert mapped.dedupe_key == f"pipedrive:777:{EVENT_ID}"


# ------------------------------------------------------------------------ malformed


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not JSON"),
        (b"\xff\xfe", "body is not JSON"),
        (b"[]", "body is a JSON list"),
        (json.dumps({"data": {}}).encode(), "no `meta` object"),
        (json.dumps({"meta": {"foo": 1}}).encode(), "neither a Pipedrive webhooks v2 body"),
        (_without(V2_WON, "meta", "id"), r"v2 body has no meta.id \(the event's UUID\)"),
        (_without(V2_WON, "meta", "company_id"), "v2 body has no meta.company_id"),
        (_without(V2_WON, "meta", "action"), "v2 body has no meta.action"),
        (v2(timestamp="yesterday"), "meta.timestamp is not a timestamp: 'yesterday'"),
        (v2(data=None) | {"data": None}, "change.deal has no `data` deal object"),
        (v2() | {"data": [1]}, "`data` is a JSON list, not an object"),
        (_without(V1_ADDED, "meta", "id"), r"v1 body has no meta.id \(the object's id\)"),
        (_without(V1_ADDED, "meta", "company_id"), "v1 body has no meta.company_id"),
        (
            _without(_without(V1_ADDED, "meta", "timestamp"), "meta", "timestamp_micro"),
            "v1 body has no meta.timestamp_micro or meta.timestamp",
        ),
        (V1_ADDED | {"current": None}, "added.deal has no `current` deal object"),
        (v2(id="x" * 300), "meta ids are too long"),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "array",
        "no-meta",
        "unknown-shape",
        "v2-no-id",
        "v2-no-company",
        "v2-no-action",
        "v2-bad-timestamp",
        "v2-null-data",
        "v2-data-not-object",
        "v1-no-id",
        "v1-no-company",
        "v1-no-timestamp",
        "v1-null-current",
        "absurd-id",
    ],
)
async def test_malformed_bodies_say_what_is_wrong(http, body, message):
    with pytest.raises(MalformedDelivery, match=message):
        await deliver(http, body)


def test_acknowledgement_is_a_plain_2xx():
    ack = ADAPTER.acknowledge([Mapped("k", ignored_reason="r")])
    assert ack.status == 200 and json.loads(ack.body) == {"received": 1}
    assert ADAPTER.reject(401, "no") is None
