"""Standard Webhooks adapter: the spec's test vector, signatures and rotation, timestamp
tolerance, header-token auth, schema validation with JSON pointers, batches, and Salesforce
CDC events relayed through a standard source."""

from __future__ import annotations

import base64
import copy
import importlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.webhooks.adapters.base import MalformedDelivery, Mapped, VerificationFailed
from service.webhooks.adapters.standard import (
    DEFAULT_MAPPING,
    StandardWebhooksAdapter,
    load_validator,
    new_secret,
    sign,
)
from tests.webhooks.pd_std_support import (
    PUBLIC_URL,
    assert_canonical,
    context,
    delivery_from,
    source_config,
)

ADAPTER = StandardWebhooksAdapter()

# The spec's published vector (standard-webhooks libraries/python/tests/test_webhooks.py,
# test_sign_function; the same in every reference library).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = '{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_INVALID = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="

SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
OTHER_SECRET = "whsec_xmaCfkkpFBu2VSrPu3q1ACvG7k7+MBuk"
NOW = datetime(2027, 1, 12, 9, 30, 5, tzinfo=UTC)
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"

EVENT: dict[str, Any] = {
    "id": "ps-golive-7",
    "type": "go_live",
    "occurred_at": "2027-01-12T09:30:00Z",
    "account": {"external_id": "company-981", "name": "Wayne Enterprises"},
    "data": {"project": "phase 1"},
}
WON: dict[str, Any] = {
    "id": "sf-006Dn000004ABC-won",
    "type": "closed_won",
    "occurred_at": "2027-03-28T16:02:11+01:00",
    "account": {"external_id": "001Dn00000AbCdE"},
    "opportunity": {"external_id": "006Dn000004ABC", "amount": "84000.00", "currency": "USD"},
    "contract": {"start": "2027-04-01", "end": "2028-03-31", "arr": "84000.00"},
}


def signed_request(
    body: dict[str, Any] | str | bytes,
    secret: str | list[str] = SECRET,
    msg_id: str = MSG_ID,
    timestamp: int | datetime = NOW,
    headers: dict[str, str] | None = None,
) -> httpx.Request:
    """A request as a Standard Webhooks sender makes it: the raw body it signed."""
    content = json.dumps(body) if isinstance(body, dict) else body
    raw = content.encode() if isinstance(content, str) else content
    signed = sign(secret, msg_id, timestamp, raw)
    return httpx.Request(
        "POST",
        PUBLIC_URL,
        content=raw,
        headers={"content-type": "application/json", **signed, **(headers or {})},
    )


def source(mapping: dict[str, Any] | None = None, secrets: tuple[str, ...] = (SECRET,)):
    return source_config("standard", secrets, DEFAULT_MAPPING, mapping)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def deliver(
    http: httpx.AsyncClient,
    request: httpx.Request,
    mapping: dict[str, Any] | None = None,
    received_at: datetime = NOW,
) -> list[Mapped]:
    delivery = delivery_from(request, received_at)
    src = source(mapping)
    ADAPTER.verify(delivery, src)
    return await ADAPTER.map(delivery, src, context(http))


def refused(request: httpx.Request, src=None, received_at: datetime = NOW) -> str:
    with pytest.raises(VerificationFailed) as raised:
        ADAPTER.verify(delivery_from(request, received_at), src or source())
    message = str(raised.value)
    for secret in (SECRET, OTHER_SECRET, VECTOR_SECRET):
        assert secret not in message and secret.removeprefix("whsec_") not in message
    return message


# ------------------------------------------------------------------------ the spec vector


def test_sign_reproduces_the_spec_vector():
    headers = sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.encode())
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    as_datetime = sign(
        VECTOR_SECRET, VECTOR_ID, datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC), VECTOR_BODY
    )
    assert as_datetime == headers


def _vector_request(signature: str) -> httpx.Request:
    return httpx.Request(
        "POST",
        PUBLIC_URL,
        content=VECTOR_BODY.encode(),
        headers={
            "webhook-id": VECTOR_ID,
            "webhook-timestamp": str(VECTOR_TIMESTAMP),
            "webhook-signature": signature,
        },
    )


def test_verify_accepts_the_spec_vector_and_refuses_its_invalid_twin():
    received = datetime.fromtimestamp(VECTOR_TIMESTAMP + 3, UTC)
    vector_source = source(secrets=(VECTOR_SECRET,))
    ADAPTER.verify(delivery_from(_vector_request(VECTOR_SIGNATURE), received), vector_source)
    message = refused(_vector_request(VECTOR_INVALID), vector_source, received)
    assert message == "no webhook-signature entry matches the source's secret"


# ------------------------------------------------------------------------ signatures


def test_a_correct_signature_passes():
    ADAPTER.verify(delivery_from(signed_request(EVENT), NOW), source())


def test_the_wrong_secret_is_refused():
    assert "no webhook-signature entry matches" in refused(signed_request(EVENT, OTHER_SECRET))


def test_a_rotated_out_secret_still_in_grace_passes():
    request = signed_request(EVENT, OTHER_SECRET)
    ADAPTER.verify(delivery_from(request, NOW), source(secrets=(SECRET, OTHER_SECRET)))


def test_a_sender_signing_with_old_and_new_secrets_passes_either_source():
    request = signed_request(EVENT, [OTHER_SECRET, SECRET])
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    ADAPTER.verify(delivery_from(request, NOW), source(secrets=(SECRET,)))
    ADAPTER.verify(delivery_from(request, NOW), source(secrets=(OTHER_SECRET,)))


def test_one_good_signature_among_others_and_junk_passes():
    good = signed_request(EVENT).headers["webhook-signature"]
    junk = [
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",  # another key's
        "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",  # unknown version
        "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==",
        "v1",  # no comma: the reference library would crash on this one
        "v1,not*base64",
    ]
    request = signed_request(EVENT, headers={"webhook-signature": " ".join([*junk, good])})
    ADAPTER.verify(delivery_from(request, NOW), source())
    only_junk = signed_request(EVENT, headers={"webhook-signature": " ".join(junk)})
    assert "no webhook-signature entry matches" in refused(only_junk)


def test_no_v1_signature_at_all_is_refused():
    request = signed_request(EVENT, headers={"webhook-signature": "v1a,AAAA v1"})
    assert "no well-formed v1 (HMAC-SHA256) signature" in refused(request)


@pytest.mark.parametrize(
    ("tamper", "value"),
    [
        ("body", json.dumps({**EVENT, "type": "churned"})),
        ("body", json.dumps(EVENT) + " "),
        ("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X"),
        ("webhook-timestamp", str(int(NOW.timestamp()) - 1)),
    ],
    ids=["event-type", "trailing-space", "id", "timestamp"],
)
def test_tampering_with_body_id_or_timestamp_is_refused(tamper, value):
    request = signed_request(EVENT)
    headers = dict(request.headers)
    content = request.content
    if tamper == "body":
        content = value.encode()
        headers.pop("content-length")
    else:
        headers[tamper] = value
    forged = httpx.Request("POST", PUBLIC_URL, content=content, headers=headers)
    assert "no webhook-signature entry matches" in refused(forged)


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        (["webhook-id"], "missing Standard Webhooks header(s): webhook-id"),
        (["webhook-timestamp"], "missing Standard Webhooks header(s): webhook-timestamp"),
        (["webhook-signature"], "missing Standard Webhooks header(s): webhook-signature"),
        (
            ["webhook-id", "webhook-signature"],
            "missing Standard Webhooks header(s): webhook-id, webhook-signature",
        ),
    ],
)
def test_missing_headers_are_named(missing, message):
    request = signed_request(EVENT)
    headers = {k: v for k, v in request.headers.items() if k not in missing}
    assert refused(httpx.Request("POST", PUBLIC_URL, content=request.content, headers=headers)) == (
        message
    )


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        ("webhook-timestamp", "1768210205.0", "not an integer number of seconds"),
        ("webhook-timestamp", "01768210205", "not an integer number of seconds"),
        ("webhook-timestamp", "soon", "not an integer number of seconds"),
        ("webhook-timestamp", "999999999999", "out of range"),
        ("webhook-id", "msg.1674087231", "without '.'"),
    ],
)
def test_malformed_metadata_is_refused(header, value, message):
    assert message in refused(signed_request(EVENT, headers={header: value}))


# ------------------------------------------------------------------------ tolerance


@pytest.mark.parametrize("skew", [-300, -1, 0, 1, 300])
def test_timestamps_within_five_minutes_pass(skew):
    request = signed_request(EVENT, timestamp=NOW + timedelta(seconds=skew))
    ADAPTER.verify(delivery_from(request, NOW), source())


def test_a_stale_timestamp_is_refused():
    request = signed_request(EVENT, timestamp=NOW - timedelta(seconds=301))
    assert refused(request) == (
        "webhook-timestamp is 301 s older than the delivery; more than 300 s is refused as a "
        "possible replay"
    )


def test_a_future_timestamp_is_refused():
    request = signed_request(EVENT, timestamp=NOW + timedelta(seconds=301))
    assert "301 s in the future" in refused(request)


def test_a_replay_of_an_old_capture_is_refused_even_with_a_valid_signature():
    received = datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC) + timedelta(days=1)
    message = refused(_vector_request(VECTOR_SIGNATURE), source(secrets=(VECTOR_SECRET,)), received)
    assert "older than the delivery" in message


# ------------------------------------------------------------------------ secrets


def test_new_secrets_are_whsec_and_usable():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    request = signed_request(EVENT, secret)
    ADAPTER.verify(delivery_from(request, NOW), source(secrets=(secret,)))


def test_unusable_secrets_are_skipped_and_none_at_all_refuses():
    request = signed_request(EVENT)
    ADAPTER.verify(delivery_from(request, NOW), source(secrets=("", SECRET)))
    assert refused(request, source(secrets=())) == "the source has no usable whsec_ secret"


# ------------------------------------------------------------------------ header token

TOKEN_MAPPING = {"auth": "header_token"}


def token_request(
    body: dict[str, Any], token: str | None = SECRET, header: str = "X-Quarterback-Token"
):
    """A Salesforce Flow HTTP callout: the Named Credential adds the token header."""
    headers = {"content-type": "application/json"}
    if token is not None:
        headers[header] = token
    return httpx.Request("POST", PUBLIC_URL, json=body, headers=headers)


async def test_header_token_auth(http):
    [mapped] = await deliver(http, token_request(EVENT), TOKEN_MAPPING)
    assert mapped.dedupe_key == "stdwh-token:ps-golive-7"
    assert mapped.event is not None and mapped.event["data"]["sender_event_id"] == "ps-golive-7"

    rotated = source(TOKEN_MAPPING, secrets=(OTHER_SECRET, SECRET))
    ADAPTER.verify(delivery_from(token_request(EVENT), NOW), rotated)

    assert refused(token_request(EVENT, "guess"), source(TOKEN_MAPPING)) == (
        "the x-quarterback-token header does not match the source's secret"
    )
    assert refused(token_request(EVENT, None), source(TOKEN_MAPPING)) == (
        "missing x-quarterback-token header (this source expects a token)"
    )
    # A signed request is not a token: this source does not look at signatures.
    assert "missing x-quarterback-token" in refused(signed_request(EVENT), source(TOKEN_MAPPING))


async def test_header_token_in_a_custom_header(http):
    mapping = {"auth": "header_token", "token_header": "X-Api-Key"}
    [mapped] = await deliver(http, token_request(WON, header="x-api-key"), mapping)
    assert mapped.event is not None and mapped.event["type"] == "closed_won"
    assert "missing x-api-key" in refused(token_request(WON), source(mapping))


def test_signature_source_refuses_a_bare_token():
    assert "missing Standard Webhooks header(s)" in refused(token_request(EVENT))


def test_an_unknown_auth_mode_is_refused():
    message = refused(signed_request(EVENT), source({"auth": "none"}))
    assert (
        message == "the source's mapping.auth is 'none'; use 'standard_webhooks' or 'header_token'"
    )


# ------------------------------------------------------------------------ mapping


async def test_one_event_is_keyed_on_the_webhook_id(http):
    [mapped] = await deliver(http, signed_request(EVENT))
    assert mapped.dedupe_key == f"stdwh:{MSG_ID}"
    assert mapped.label == "go_live"
    assert mapped.event == {
        **EVENT,
        "id": f"stdwh:{MSG_ID}",
        "data": {"project": "phase 1", "sender_event_id": "ps-golive-7"},
    }
    assert_canonical(mapped.event)


async def test_a_retry_keeps_the_key(http):
    """Retries carry the same webhook-id and a new timestamp and signature."""
    [first] = await deliver(http, signed_request(WON))
    later = NOW + timedelta(minutes=30)
    [retry] = await deliver(http, signed_request(WON, timestamp=later), received_at=later)
    assert retry.dedupe_key == first.dedupe_key and retry.event == first.event
    [other] = await deliver(http, signed_request(WON, msg_id="msg_other"))
    assert other.dedupe_key != first.dedupe_key


async def test_a_batch_keys_each_event_on_webhook_id_and_event_id(http):
    events = [
        EVENT,
        WON,
        {**EVENT, "id": "manual-1", "type": "stage_changed", "to_stage": "EXPAND"},
    ]
    mapped = await deliver(http, signed_request({"events": events}))
    assert [m.dedupe_key for m in mapped] == [
        f"stdwh:{MSG_ID}:ps-golive-7",
        f"stdwh:{MSG_ID}:sf-006Dn000004ABC-won",
        f"stdwh:{MSG_ID}:manual-1",
    ]
    assert [m.label for m in mapped] == ["go_live", "closed_won", "stage_changed"]
    for item, sent in zip(mapped, events, strict=True):
        assert item.event is not None
        assert item.event["data"]["sender_event_id"] == sent["id"]
        assert_canonical(item.event)
    assert mapped[2].event is not None and mapped[2].event["to_stage"] == "EXPAND"


async def test_an_empty_batch_maps_to_nothing(http):
    assert await deliver(http, signed_request({"events": []})) == []


async def test_long_ids_give_a_stable_key_that_fits(http):
    long_id = "e" * 200
    body = {"events": [{**EVENT, "id": long_id}]}
    [first] = await deliver(http, signed_request(body, msg_id="msg_" + "x" * 200))
    [again] = await deliver(http, signed_request(body, msg_id="msg_" + "x" * 200))
    assert first.dedupe_key.startswith("stdwh:sha256:") and len(first.dedupe_key) <= 200
    assert first.dedupe_key == again.dedupe_key
    assert first.event is not None and first.event["data"]["sender_event_id"] == long_id


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "body is not JSON"),
        (
            b"[1, 2]",
            'body is a JSON list; send one lifecycle event (an object) or {"events": [...]}',
        ),
        ({"events": {"id": 1}}, '"events" is a JSON dict, not an array'),
        (
            {"events": [], "source": "x"},
            'a batch body has only the key "events"; unexpected: source',
        ),
        ({"events": [EVENT] * 101}, "a batch holds at most 100 events; this one has 101"),
        (
            {"events": [EVENT, WON, EVENT]},
            "/events/2/id: 'ps-golive-7' repeats /events/0/id",
        ),
    ],
    ids=["not-json", "array", "events-not-list", "extra-keys", "too-many", "repeated-id"],
)
async def test_malformed_bodies(http, body, message):
    with pytest.raises(MalformedDelivery) as raised:
        await deliver(http, signed_request(body))
    assert message in str(raised.value)


async def test_every_schema_problem_is_reported_with_its_pointer(http):
    events = [
        {**EVENT, "type": "won"},
        {**EVENT, "id": "b", "account": {}, "color": "red"},
        {
            "id": "c",
            "type": "stage_changed",
            "occurred_at": "2027-01-12T09:30:00",
            "account": {"external_id": "x"},
        },
        {**WON, "id": "d", "opportunity": {"external_id": "o", "amount": 84000.0}},
        {**EVENT, "id": "e", "occurred_at": "2027-02-30T00:00:00Z"},
        {"type": "churned"},
        "not an event",
    ]
    with pytest.raises(MalformedDelivery) as raised:
        await deliver(http, signed_request({"events": events}))
    message = str(raised.value)
    assert message.startswith("not a valid lifecycle event (schemas/lifecycle-event.schema.json): ")
    for problem in [
        "/events/0/type: 'won' is not one of",
        "/events/1/account: name the account with id or external_id",
        "/events/1/color: is not allowed here",
        "/events/2/occurred_at: '2027-01-12T09:30:00' is not a 'date-time'",
        "/events/2/to_stage: is required",
        "/events/3/opportunity/amount: 84000.0 is not of type 'string'",
        "/events/4/occurred_at: '2027-02-30T00:00:00Z' is not a 'date-time'",
        "/events/5/id: is required",
        "/events/5/occurred_at: is required",
        "/events/5/account: is required",
        "/events/6: 'not an event' is not of type 'object'",
    ]:
        assert problem in message, (problem, message)


async def test_a_single_event_reports_pointers_from_the_root(http):
    broken = {k: v for k, v in EVENT.items() if k != "account"} | {"to_stage": 3}
    with pytest.raises(MalformedDelivery) as raised:
        await deliver(http, signed_request(broken))
    assert "/account: is required" in str(raised.value)
    assert "/to_stage: 3 is not of type 'string'" in str(raised.value)


async def test_the_schema_must_be_found():
    missing = Path("/nonexistent/schemas/lifecycle-event.schema.json")
    with pytest.raises(
        RuntimeError, match="cannot load the lifecycle event schema from /nonexistent"
    ):
        load_validator(missing)


def test_acknowledgement_is_a_plain_2xx():
    ack = ADAPTER.acknowledge([])
    assert ack.status == 200 and json.loads(ack.body) == {"received": 0}
    assert ADAPTER.reject(400, "bad") is None


# ------------------------------------------------------------------------ Salesforce CDC

CDC_PAYLOAD: dict[str, Any] = {
    "ChangeEventHeader": {
        "entityName": "Opportunity",
        "recordIds": ["006Dn000004ABCDIA2"],
        "changeType": "UPDATE",
        "changeOrigin": "com/salesforce/api/soap/61.0;client=SfdcInternalAPI/",
        "transactionKey": "0002343d-9d90-e395-ed20-cf416ba652ad",
        "sequenceNumber": 2,
        "commitTimestamp": 1811257331000,
        "commitNumber": 10828000021425,
        "commitUser": "005Dn000001XyZaIAK",
        "changedFields": ["StageName", "IsWon", "IsClosed", "LastModifiedDate"],
    },
    "StageName": "Closed Won",
    "IsWon": True,
    "IsClosed": True,
    "LastModifiedDate": "2027-05-25T09:02:11.000Z",
}


def _cdc_module():
    """Where the Salesforce helper keeps cdc_to_events (salesforce.py re-exports it)."""
    for name in ("salesforce", "salesforce_mapping"):
        try:
            module = importlib.import_module(f"service.webhooks.adapters.{name}")
        except ImportError:
            continue
        if hasattr(module, "cdc_to_events"):
            return module
    return None


def _with_account(payload: dict[str, Any]) -> dict[str, Any]:
    # An UPDATE carries only changed fields; the relay adds the opportunity's AccountId.
    return {**payload, "AccountId": "001Dn00000AbCdEIAZ"}


@pytest.mark.parametrize(
    "body",
    [
        _with_account(CDC_PAYLOAD),
        {
            "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
            "payload": _with_account(CDC_PAYLOAD),
            "event": {"replayId": 18098},
        },
        {
            "data": {
                "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
                "payload": _with_account(CDC_PAYLOAD),
                "event": {"replayId": 18098},
            },
            "channel": "/data/OpportunityChangeEvent",
        },
    ],
    ids=["bare", "payload", "cometd"],
)
async def test_relayed_cdc_events_go_to_the_salesforce_mapping(http, body):
    module = _cdc_module()
    if module is None:
        pytest.skip("service.webhooks.adapters.salesforce.cdc_to_events is not there yet")
    mapped = await deliver(http, signed_request(body))
    assert [m.event["type"] for m in mapped if m.event] == ["closed_won"]
    # Keys are the Salesforce mapping's (transaction and sequence), not the webhook-id: a
    # relay that re-sends the change under a new webhook-id is still recognised.
    assert all("0002343d-9d90-e395-ed20-cf416ba652ad" in m.dedupe_key for m in mapped)
    assert mapped == module.cdc_to_events(_with_account(CDC_PAYLOAD), {})


async def test_a_batch_may_mix_canonical_and_relayed_cdc_events_in_order(http):
    if _cdc_module() is None:
        pytest.skip("service.webhooks.adapters.salesforce.cdc_to_events is not there yet")
    body = {"events": [EVENT, {"payload": _with_account(CDC_PAYLOAD)}, WON]}
    mapped = await deliver(http, signed_request(body))
    assert [m.event["type"] for m in mapped if m.event] == ["go_live", "closed_won", "closed_won"]
    assert mapped[0].dedupe_key == f"stdwh:{MSG_ID}:ps-golive-7"
    assert mapped[-1].dedupe_key == f"stdwh:{MSG_ID}:sf-006Dn000004ABC-won"


async def test_relayed_cdc_uses_the_sources_salesforce_options(http):
    if _cdc_module() is None:
        pytest.skip("service.webhooks.adapters.salesforce.cdc_to_events is not there yet")
    live = copy.deepcopy(_with_account(CDC_PAYLOAD))
    live["ChangeEventHeader"]["changedFields"] = ["Live__c", "LastModifiedDate"]
    for name in ("StageName", "IsWon", "IsClosed"):
        del live[name]
    live["Live__c"] = True
    [unmapped] = await deliver(http, signed_request({"payload": live}))
    assert unmapped.event is None and unmapped.ignored_reason
    options = {"salesforce": {"go_live_field": "Live__c"}}
    [mapped] = await deliver(http, signed_request({"payload": live}), options)
    assert mapped.event is not None and mapped.event["type"] == "go_live"


async def test_relayed_cdc_without_the_salesforce_mapping_says_so(http):
    if _cdc_module() is not None:
        pytest.skip("the Salesforce CDC mapping exists: the relay test covers it")
    with pytest.raises(MalformedDelivery, match="no Salesforce CDC mapping"):
        await deliver(http, signed_request({"payload": CDC_PAYLOAD}))
