"""The Salesforce adapter: outbound messages (verify, parse, state diff, Ack) and CDC bodies."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import jsonschema
import pytest

from service.webhooks.adapters import salesforce
from service.webhooks.adapters.base import (
    AdapterContext,
    MalformedDelivery,
    Mapped,
    VerificationFailed,
)
from service.webhooks.adapters.salesforce import SalesforceAdapter, cdc_to_events
from service.webhooks.adapters.salesforce_mapping import EVENT_TYPES, id18, same_id
from tests.webhooks.salesforce_fakes import (
    ORG_15,
    ORG_18,
    SALESFORCE_HEADERS,
    MemoryState,
    SObject,
    delivery,
    opportunity,
    outbound_message,
    running_listener,
    sfid,
    source_config,
    with_checksum,
)

ADAPTER = SalesforceAdapter()
SCHEMA = json.loads(
    (Path(__file__).parents[2] / "schemas" / "lifecycle-event.schema.json").read_text()
)
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
OUT = "{http://soap.sforce.com/2005/09/outbound}"

OPP = sfid("006", 1)
OPP_2 = sfid("006", 2)
ACCOUNT = sfid("001", 1)
N1, N2, N3, N4 = (sfid("04l", n) for n in range(1, 5))


def valid(results: list[Mapped]) -> list[Mapped]:
    """Every event is a canonical lifecycle event whose id is its dedupe key."""
    for item in results:
        assert (item.event is None) != (item.ignored_reason is None), item
        if item.event is not None:
            jsonschema.validate(item.event, SCHEMA)
            assert item.event["id"] == item.dedupe_key
    return results


async def mapped(body: bytes, state: MemoryState | None = None, **mapping: Any) -> list[Mapped]:
    state = state if state is not None else MemoryState()
    async with httpx.AsyncClient() as http:
        context = AdapterContext(http=http, state=state, now=datetime.now(UTC))
        return valid(await ADAPTER.map(delivery(body), source_config(**mapping), context))


def events(results: list[Mapped]) -> list[tuple[str, str]]:
    return [(m.event["type"], m.dedupe_key) for m in results if m.event is not None]


def key(notification: str, suffix: str = "") -> str:
    return f"salesforce:{ORG_18}:{notification}" + (f":{suffix}" if suffix else "")


def open_opp(notification: str = N1, /, **fields: str | None) -> SObject:
    values: dict[str, str | None] = {
        "Id": OPP,
        "AccountId": ACCOUNT,
        "Name": "Wayne - platform",
        "StageName": "Prospecting",
        "IsClosed": "false",
        "IsWon": "false",
        "Amount": "48000.0",
        "CloseDate": "2027-03-31",
        "Type": "New Customer",
        "LastModifiedDate": "2027-03-01T10:00:00.000Z",
    }
    values.update(fields)
    return opportunity(notification, **values)


def won_opp(notification: str = N2, /, **fields: str | None) -> SObject:
    values: dict[str, str | None] = {
        "StageName": "Closed Won",
        "IsClosed": "true",
        "IsWon": "true",
        "LastModifiedDate": "2027-03-28T16:02:11.000Z",
    }
    values.update(fields)
    return open_opp(notification, **values)


# --- ids ---------------------------------------------------------------------------------


def test_the_18_character_form_adds_the_case_checksum():
    # 001A0000006Vm9r: "001A0" has A at position 3 → 8 → I; "00000" → A; "6Vm9r" → V → C.
    assert id18("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert id18(ORG_15) == ORG_18
    assert with_checksum(ORG_15) == ORG_18


def test_an_18_character_id_is_case_insensitive_and_restores_the_case():
    assert id18("001a0000006vm9riac") == "001A0000006Vm9rIAC"
    assert same_id(ORG_15, ORG_18.lower())
    assert same_id(ORG_18, ORG_15)
    assert same_id(ORG_18, ORG_18)


def test_15_character_ids_are_case_sensitive_and_bad_ids_match_nothing():
    assert not same_id(ORG_15.lower(), ORG_18)  # 00d5g… is another org
    assert id18("00D5g000004XyZ1EA9") is None  # 9 is not a checksum character
    assert id18("00D5g000004XyZ1") != id18("00D5g000004XyZ2")
    assert id18("0065g00000Xk7PQ!") is None
    assert id18("short") is None
    assert not same_id(None, ORG_18)
    # The suffix claims upper-case letters where the id has digits.
    assert id18("000000000000000ZZZ") is None


# --- verify: the org --------------------------------------------------------------------


def test_verify_accepts_the_configured_org_in_either_form():
    body = outbound_message([open_opp()])
    ADAPTER.verify(delivery(body), source_config())  # 15 configured, 18 sent
    ADAPTER.verify(delivery(body), source_config(organization_id=ORG_18))
    ADAPTER.verify(delivery(body), source_config(organization_id=ORG_18.lower()))
    sent_15 = outbound_message([open_opp()], organization_id=ORG_15)
    ADAPTER.verify(delivery(sent_15), source_config(organization_id=ORG_18))


def test_verify_refuses_another_org_without_naming_ours():
    other = with_checksum("00D5g000004XyZ2")
    with pytest.raises(VerificationFailed) as refused:
        ADAPTER.verify(
            delivery(outbound_message([open_opp()], organization_id=other)), source_config()
        )
    assert other in str(refused.value)
    assert ORG_15 not in str(refused.value) and ORG_18 not in str(refused.value)


def test_verify_refuses_a_wrongly_cased_15_character_org():
    body = outbound_message([open_opp()], organization_id=ORG_15.lower())
    with pytest.raises(VerificationFailed):
        ADAPTER.verify(delivery(body), source_config())


@pytest.mark.parametrize("configured", [None, "", "not-an-id"])
def test_verify_needs_the_org_configured(configured):
    with pytest.raises(VerificationFailed, match="organization_id"):
        ADAPTER.verify(
            delivery(outbound_message([open_opp()])), source_config(organization_id=configured)
        )


async def test_a_body_without_an_org_id_is_left_to_map_which_refuses_it():
    body = outbound_message([open_opp()]).replace(
        f"<OrganizationId>{ORG_18}</OrganizationId>".encode(), b""
    )
    ADAPTER.verify(delivery(body), source_config())  # nothing to judge: map() refuses it
    with pytest.raises(MalformedDelivery, match="OrganizationId '' is not a Salesforce id"):
        await mapped(body)


def test_verify_reads_only_the_envelopes_org_id():
    # An sObject field named OrganizationId (other namespace, deeper) is not the envelope's.
    body = outbound_message(
        [open_opp(OrganizationId=ORG_18)], organization_id=with_checksum("00D5g000004XyZ2")
    )
    with pytest.raises(VerificationFailed):
        ADAPTER.verify(delivery(body), source_config())


# --- verify: the IP allow-list ------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "client_ip"),
    [
        (["13.108.0.10"], "13.108.0.10"),
        (["13.108.0.0/14"], "13.111.255.254"),
        (["2a01:111:f400::/48"], "2a01:111:f400:7e00::1"),
        (["13.108.0.0/14"], "::ffff:13.108.3.4"),  # dual-stack sockets map IPv4 into IPv6
        ("13.108.0.10", "13.108.0.10"),
        ([], "198.51.100.7"),  # no allow-list: any address
    ],
)
def test_allowed_addresses_pass(allowed, client_ip):
    body = outbound_message([open_opp()])
    ADAPTER.verify(delivery(body, client_ip=client_ip), source_config(allowed_ips=allowed))


@pytest.mark.parametrize(
    ("allowed", "client_ip"),
    [
        (["13.108.0.10"], "13.108.0.11"),
        (["13.108.0.0/14"], "13.112.0.1"),
        (["2a01:111:f400::/48"], "2a01:111:f401::1"),
        (["2a01:111:f400::/48"], "13.108.0.10"),
        (["13.108.0.0/14"], None),
        (["13.108.0.0/14"], "not-an-ip"),
    ],
)
def test_other_addresses_are_refused(allowed, client_ip):
    body = outbound_message([open_opp()])
    with pytest.raises(VerificationFailed):
        ADAPTER.verify(delivery(body, client_ip=client_ip), source_config(allowed_ips=allowed))


def test_a_bad_allow_list_entry_says_which():
    with pytest.raises(VerificationFailed, match=re.escape("13.108.0.0/99")):
        ADAPTER.verify(
            delivery(outbound_message([open_opp()])), source_config(allowed_ips=["13.108.0.0/99"])
        )


def test_the_address_is_checked_before_the_body_is_read():
    # Even an unreadable body from a foreign address is refused as unauthentic.
    with pytest.raises(VerificationFailed, match="allowed_ips"):
        ADAPTER.verify(
            delivery(b"garbage", client_ip="198.51.100.7"),
            source_config(allowed_ips=["13.108.0.0/14"]),
        )


# --- hardened parsing ----------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>&lol2;</OrganizationId></notifications></soapenv:Body></soapenv:Envelope>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>&xxe;</OrganizationId></notifications></soapenv:Body></soapenv:Envelope>"""

# No entity, nothing external: only forbidding DTDs outright refuses this one.
PLAIN_DTD = (
    b'<?xml version="1.0"?>\n<!DOCTYPE soapenv:Envelope [<!ELEMENT x ANY>]>\n'
    + (outbound_message([open_opp()]).split(b"\n", 1)[1])
)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, PLAIN_DTD], ids=["entities", "xxe", "dtd"])
async def test_dtds_and_entities_are_refused_as_malformed_before_any_state(body):
    ADAPTER.verify(delivery(body), source_config())  # unreadable: judged by map()
    state = MemoryState()
    with pytest.raises(MalformedDelivery, match="DTD or entities"):
        await mapped(body, state)
    assert state.data == {} and state.puts == 0


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, PLAIN_DTD], ids=["entities", "xxe", "dtd"])
def test_verify_reads_no_org_id_through_a_dtd(body):
    assert salesforce.read_organization_id(body) is None
    assert salesforce.read_organization_id(outbound_message([open_opp()])) == ORG_18


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "not well-formed XML"),
        (b'{"OrganizationId": "00D5g000004XyZ1EAK"}', "not well-formed XML"),
        (b"<soapenv:Envelope", "not well-formed XML"),
        (b"<html><body>hello</body></html>", "not a Salesforce outbound message"),
    ],
)
async def test_bodies_that_are_not_outbound_messages_are_malformed(body, says):
    ADAPTER.verify(delivery(body), source_config())
    with pytest.raises(MalformedDelivery, match=says):
        await mapped(body)


def _without_notifications() -> bytes:
    body = outbound_message([open_opp()]).decode()
    start, end = body.index("   <Notification>"), body.index("  </notifications>")
    return (body[:start] + body[end:]).encode()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (_without_notifications(), "has no Notification"),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>',
            "an empty soapenv:Body",
        ),
        (outbound_message([open_opp(sfid("04l", n)) for n in range(101)]), "at most 100"),
        (outbound_message([open_opp("")]), "Notification 1 has no valid Id"),
        (outbound_message([open_opp(IsWon="yes")]), r"Notification 1 \(.*\): IsWon is 'yes'"),
        (outbound_message([open_opp(Amount="lots")]), "Amount is 'lots', not a number"),
        (outbound_message([open_opp(CloseDate="31/03/2027")]), "CloseDate is '31/03/2027'"),
        (outbound_message([open_opp(Id="bogus")]), "the Opportunity has no valid Id"),
        (outbound_message([open_opp(AccountId="x")]), "AccountId 'x' is not a Salesforce id"),
        (outbound_message([open_opp(CurrencyIsoCode="dollars")]), "CurrencyIsoCode"),
        (
            outbound_message([open_opp(LastModifiedDate="yesterday")]),
            "LastModifiedDate is 'yesterday'",
        ),
        (outbound_message([open_opp()], organization_id="nope"), "OrganizationId 'nope'"),
    ],
)
async def test_malformed_messages_say_what_is_wrong(body, says):
    with pytest.raises(MalformedDelivery, match=says):
        await mapped(body)


# --- state diff ---------------------------------------------------------------------------


async def test_first_sight_of_an_open_opportunity_raises_opportunity_created():
    state = MemoryState()
    results = await mapped(outbound_message([open_opp()]), state)
    assert events(results) == [("opportunity_created", key(N1, "opportunity_created"))]
    event = results[0].event
    assert event is not None
    assert event["occurred_at"] == "2027-03-01T10:00:00+00:00"
    assert event["account"] == {"external_id": ACCOUNT, "name": f"Salesforce account {ACCOUNT}"}
    assert event["opportunity"] == {
        "external_id": OPP,
        "name": "Wayne - platform",
        "amount": "48000.00",
        "close_date": "2027-03-31",
        "kind": "new",
    }
    assert event["data"]["organization_id"] == ORG_18
    assert event["data"]["notification_id"] == N1
    assert "account_name_field" in (results[0].note or "")
    assert state.data[f"opportunity:{OPP}"]["stage"] == "Prospecting"


async def test_an_unmapped_stage_change_is_ignored_with_a_reason_to_act_on():
    state = MemoryState()
    await mapped(outbound_message([open_opp()]), state)
    results = await mapped(outbound_message([open_opp(N2, StageName="Negotiation/Review")]), state)
    assert events(results) == []
    [ignored] = results
    assert ignored.dedupe_key == key(N2)
    assert "from 'Prospecting' to 'Negotiation/Review'" in (ignored.ignored_reason or "")
    assert "mapping.stage_map" in (ignored.ignored_reason or "")
    assert state.data[f"opportunity:{OPP}"]["stage"] == "Negotiation/Review"


async def test_a_mapped_stage_raises_stage_changed_to_the_quarterback_stage():
    state = MemoryState()
    stage_map = {"Proposal/Price Quote": "ACQUIRE"}
    await mapped(outbound_message([open_opp()]), state, stage_map=stage_map)
    results = await mapped(
        outbound_message([open_opp(N2, StageName="Proposal/Price Quote")]),
        state,
        stage_map=stage_map,
    )
    assert events(results) == [("stage_changed", key(N2, "stage_changed:ACQUIRE"))]
    assert results[0].event is not None and results[0].event["to_stage"] == "ACQUIRE"
    # The same stage again is no change.
    again = await mapped(
        outbound_message([open_opp(N3, StageName="Proposal/Price Quote", Amount="50000")]),
        state,
        stage_map=stage_map,
    )
    assert events(again) == []


async def test_is_won_turning_true_raises_closed_won_once():
    state = MemoryState()
    await mapped(outbound_message([open_opp()]), state)
    results = await mapped(
        outbound_message([won_opp(CurrencyIsoCode="EUR", Amount="84000.005")]), state
    )
    assert events(results) == [("closed_won", key(N2, "closed_won"))]
    event = results[0].event
    assert event is not None
    assert event["occurred_at"] == "2027-03-28T16:02:11+00:00"
    assert event["opportunity"]["amount"] == "84000.00"  # rounded half-even to cents
    assert event["opportunity"]["currency"] == "EUR"
    # Reopened, then won again: the customer is not handed over a second time.
    await mapped(
        outbound_message(
            [open_opp(N3, StageName="Negotiation/Review", LastModifiedDate="2027-03-29T00:00:00Z")]
        ),
        state,
    )
    again = await mapped(
        outbound_message([won_opp(N4, LastModifiedDate="2027-03-30T00:00:00Z")]), state
    )
    assert events(again) == []
    assert "already raised once for this opportunity: closed_won" in (again[0].ignored_reason or "")


async def test_closed_without_winning_raises_closed_lost():
    state = MemoryState()
    await mapped(outbound_message([open_opp()]), state)
    results = await mapped(
        outbound_message([open_opp(N2, StageName="Closed Lost", IsClosed="true", IsWon="false")]),
        state,
    )
    assert events(results) == [("closed_lost", key(N2, "closed_lost"))]


async def test_without_is_won_and_is_closed_the_won_and_lost_stages_decide():
    state = MemoryState()
    bare: dict[str, str | None] = {"IsWon": None, "IsClosed": None}
    await mapped(outbound_message([open_opp(**bare)]), state)
    results = await mapped(
        outbound_message([open_opp(N2, StageName="Signed", **bare)]), state, won_stages=["Signed"]
    )
    assert events(results) == [("closed_won", key(N2, "closed_won"))]
    lost = await mapped(
        outbound_message([open_opp(sfid("04l", 9), Id=OPP_2, StageName="Closed Lost", **bare)]),
        MemoryState(),
        created_on_first_sight_of_closed=False,
    )
    assert events(lost) == [("closed_lost", key(sfid("04l", 9), "closed_lost"))]


async def test_go_live_by_a_mapped_field_value():
    state = MemoryState()
    mapping = {"go_live_field": "Live__c"}
    await mapped(outbound_message([won_opp(N1, Live__c="false")]), state, **mapping)
    results = await mapped(outbound_message([won_opp(N2, Live__c="true")]), state, **mapping)
    assert events(results) == [("go_live", key(N2, "go_live"))]
    # Once only.
    again = await mapped(
        outbound_message([won_opp(N3, Live__c="true", Amount="1")]), state, **mapping
    )
    assert events(again) == []


async def test_go_live_by_any_value_of_a_date_field_or_by_stage():
    state = MemoryState()
    by_date = {"go_live_field": "Go_Live_Date__c", "go_live_values": ["*"]}
    await mapped(outbound_message([won_opp(N1, Go_Live_Date__c=None)]), state, **by_date)
    results = await mapped(
        outbound_message([won_opp(N2, Go_Live_Date__c="2027-06-15")]), state, **by_date
    )
    assert events(results) == [("go_live", key(N2, "go_live"))]

    state = MemoryState()
    by_stage = {"go_live_stages": ["Live"]}
    await mapped(outbound_message([won_opp(N1)]), state, **by_stage)
    results = await mapped(outbound_message([won_opp(N2, StageName="Live")]), state, **by_stage)
    assert events(results) == [("go_live", key(N2, "go_live"))]


async def test_first_sight_of_a_won_opportunity_raises_created_then_closed_won():
    results = await mapped(outbound_message([won_opp(N1)]))
    assert events(results) == [
        ("opportunity_created", key(N1, "opportunity_created")),
        ("closed_won", key(N1, "closed_won")),
    ]
    assert len({m.dedupe_key for m in results}) == 2


async def test_first_sight_of_a_closed_opportunity_can_skip_created():
    results = await mapped(outbound_message([won_opp(N1)]), created_on_first_sight_of_closed=False)
    assert events(results) == [("closed_won", key(N1, "closed_won"))]


async def test_the_opportunity_type_chooses_kind_and_event():
    renewal = await mapped(outbound_message([won_opp(N1, Type="Existing Customer - Replacement")]))
    assert events(renewal) == [
        ("opportunity_created", key(N1, "opportunity_created")),
        ("renewal_won", key(N1, "renewal_won")),
    ]
    assert renewal[1].event is not None and renewal[1].event["opportunity"]["kind"] == "renewal"
    lost_renewal = await mapped(
        outbound_message([open_opp(N1, Type="Renewal", StageName="Closed Lost", IsClosed="true")]),
        created_on_first_sight_of_closed=False,
    )
    assert events(lost_renewal) == [("renewal_lost", key(N1, "renewal_lost"))]
    upsell = await mapped(outbound_message([open_opp(N1, Type="Existing Customer - Upgrade")]))
    assert events(upsell) == [
        ("expansion_opportunity_created", key(N1, "expansion_opportunity_created"))
    ]
    unknown = await mapped(outbound_message([open_opp(N1, Type="Partner Referral")]))
    assert unknown[0].event is not None and "kind" not in unknown[0].event["opportunity"]
    assert "mapping.type_kinds" in (unknown[0].note or "")


async def test_a_typo_in_kind_events_falls_back_and_says_so():
    results = await mapped(
        outbound_message([open_opp(N1, Type="Existing Customer - Upgrade")]),
        kind_events={"expansion": {"opportunity_created": "expansion_created"}},
    )
    assert events(results) == [("opportunity_created", key(N1, "opportunity_created"))]
    assert "'expansion_created', not an event type" in (results[0].note or "")


def test_the_known_event_types_are_the_schemas():
    assert set(SCHEMA["properties"]["type"]["enum"]) == EVENT_TYPES


async def test_currency_and_amount_edges():
    single_currency = await mapped(outbound_message([open_opp()]), default_currency="usd")
    assert single_currency[0].event is not None
    assert single_currency[0].event["opportunity"]["currency"] == "USD"
    sent_wins = await mapped(
        outbound_message([open_opp(CurrencyIsoCode="EUR")]), default_currency="USD"
    )
    assert sent_wins[0].event is not None
    assert sent_wins[0].event["opportunity"]["currency"] == "EUR"
    bad_default = await mapped(outbound_message([open_opp()]), default_currency="dollars")
    assert bad_default[0].event is not None
    assert "currency" not in bad_default[0].event["opportunity"]
    assert "mapping.default_currency" in (bad_default[0].note or "")
    huge = await mapped(outbound_message([open_opp(Amount="1.0E15")]))
    assert huge[0].event is not None and "amount" not in huge[0].event["opportunity"]
    assert "more than 14 digits" in (huge[0].note or "")
    scientific = await mapped(outbound_message([open_opp(Amount="4.8E4")]))
    assert scientific[0].event is not None
    assert scientific[0].event["opportunity"]["amount"] == "48000.00"


async def test_nothing_changed_is_ignored_with_the_reason():
    state = MemoryState()
    await mapped(outbound_message([open_opp()]), state)
    results = await mapped(outbound_message([open_opp(N2, Amount="50000")]), state)
    [ignored] = results
    assert ignored.dedupe_key == key(N2)
    assert "nothing that raises an event changed" in (ignored.ignored_reason or "")


async def test_a_message_without_the_deciding_fields_says_to_add_them():
    state = MemoryState()
    await mapped(outbound_message([open_opp()]), state)
    results = await mapped(
        outbound_message([opportunity(N2, Id=OPP, AccountId=ACCOUNT, Amount="1")]), state
    )
    assert "add them to the outbound message" in (results[0].ignored_reason or "")


async def test_an_opportunity_without_account_is_ignored_until_it_has_one():
    state = MemoryState()
    results = await mapped(outbound_message([open_opp(AccountId=None)]), state)
    assert "has no AccountId" in (results[0].ignored_reason or "")
    assert state.data == {}  # not seen yet: the next message with an account is first sight
    later = await mapped(outbound_message([open_opp(N2)]), state)
    assert events(later) == [("opportunity_created", key(N2, "opportunity_created"))]


async def test_an_older_message_retried_late_does_not_regress_the_state():
    state = MemoryState()
    stage_map = {"Prospecting": "ACQUIRE"}
    await mapped(outbound_message([won_opp(N2)]), state, stage_map=stage_map)
    stored = dict(state.data[f"opportunity:{OPP}"])
    late = await mapped(outbound_message([open_opp(N1)]), state, stage_map=stage_map)
    assert events(late) == []
    assert "out of order" in (late[0].ignored_reason or "")
    assert state.data[f"opportunity:{OPP}"] == stored


async def test_the_account_is_named_by_the_mapped_field():
    results = await mapped(
        outbound_message([open_opp(Account_Name__c="Wayne Enterprises")]),
        account_name_field="Account_Name__c",
    )
    assert results[0].event is not None
    assert results[0].event["account"]["name"] == "Wayne Enterprises"
    assert results[0].note is None


async def test_account_notifications_name_the_account_and_raise_nothing_by_default():
    state = MemoryState()
    account = SObject(
        N1,
        "Account",
        {"Id": ACCOUNT, "Name": "Wayne Enterprises", "Website": "www.wayne.example/about"},
    )
    results = await mapped(outbound_message([account, open_opp(N2)]), state)
    assert results[0].event is None
    assert results[0].dedupe_key == key(N1)
    assert "account_go_live_field" in (results[0].ignored_reason or "")
    assert results[1].event is not None
    assert results[1].event["account"] == {
        "external_id": ACCOUNT,
        "name": "Wayne Enterprises",
        "domain": "wayne.example",
    }
    assert results[1].note is None


async def test_a_mapped_account_field_raises_go_live_when_it_becomes_true():
    state = MemoryState()
    mapping = {"account_go_live_field": "Customer_Status__c", "account_go_live_values": ["Live"]}
    onboarding = SObject(
        N1, "Account", {"Id": ACCOUNT, "Name": "Wayne", "Customer_Status__c": "Onboarding"}
    )
    live = SObject(N2, "Account", {"Id": ACCOUNT, "Name": "Wayne", "Customer_Status__c": "Live"})
    first = await mapped(outbound_message([onboarding]), state, **mapping)
    assert events(first) == []
    assert "none of the mapped fields (Customer_Status__c) became true" in (
        first[0].ignored_reason or ""
    )
    results = await mapped(outbound_message([live]), state, **mapping)
    assert events(results) == [("go_live", key(N2, "go_live"))]
    assert results[0].event is not None
    assert results[0].event["account"] == {"external_id": ACCOUNT, "name": "Wayne"}
    still = await mapped(outbound_message([SObject(N3, "Account", live.fields)]), state, **mapping)
    assert events(still) == []


async def test_other_objects_and_deleted_records_are_ignored():
    contact = SObject(N1, "Contact", {"Id": sfid("003", 1), "LastName": "Kent"})
    deleted = SObject(N2, "", {})
    results = await mapped(outbound_message([contact, deleted]))
    assert [m.dedupe_key for m in results] == [key(N1), key(N2)]
    assert "Contact notifications raise no lifecycle event" in (results[0].ignored_reason or "")
    assert "deleted" in (results[1].ignored_reason or "")


async def test_a_batch_maps_every_notification_in_order():
    # The two notifications of the research note's example.
    upgrade = won_opp(N1, Type="Existing Customer - Upgrade")
    other = open_opp(N2, Id=OPP_2, AccountId=sfid("001", 2), StageName="Negotiation/Review")
    results = await mapped(outbound_message([upgrade, other]))
    assert events(results) == [
        ("expansion_opportunity_created", key(N1, "expansion_opportunity_created")),
        ("closed_won", key(N1, "closed_won")),
        ("opportunity_created", key(N2, "opportunity_created")),
    ]


async def test_two_notifications_of_one_record_in_a_message_diff_in_turn():
    results = await mapped(outbound_message([open_opp(N1), won_opp(N2)]))
    assert events(results) == [
        ("opportunity_created", key(N1, "opportunity_created")),
        ("closed_won", key(N2, "closed_won")),
    ]


# --- redelivery ---------------------------------------------------------------------------


async def test_a_redelivery_raises_the_same_events_under_the_same_ids_and_changes_nothing():
    state = MemoryState()
    body = outbound_message([won_opp(N1), open_opp(N2, Id=OPP_2)])
    first = await mapped(body, state)
    stored, puts = json.dumps(state.data, sort_keys=True), state.puts
    again = await mapped(body, state)
    assert [(m.dedupe_key, m.event) for m in again] == [(m.dedupe_key, m.event) for m in first]
    assert json.dumps(state.data, sort_keys=True) == stored
    assert state.puts == puts


async def test_a_redelivery_of_an_ignored_notification_keeps_its_key():
    state = MemoryState()
    await mapped(outbound_message([open_opp(N1)]), state)
    body = outbound_message([open_opp(N2, Amount="1")])
    first, again = await mapped(body, state), await mapped(body, state)
    assert [m.dedupe_key for m in first] == [m.dedupe_key for m in again] == [key(N2)]


async def test_a_redelivery_carrying_newer_data_adds_only_the_new_events():
    # Salesforce sends the record's latest data, even when retrying an old notification.
    state = MemoryState()
    first = await mapped(outbound_message([open_opp(N1)]), state)
    again = await mapped(outbound_message([won_opp(N1)]), state)
    assert events(again) == [
        ("opportunity_created", key(N1, "opportunity_created")),  # replayed: a duplicate
        ("closed_won", key(N1, "closed_won")),
    ]
    assert again[0].event == first[0].event


async def test_a_late_redelivery_replays_its_own_events_after_newer_ones():
    state = MemoryState()
    await mapped(outbound_message([open_opp(N1)]), state)
    await mapped(outbound_message([won_opp(N2)]), state)
    late = await mapped(outbound_message([won_opp(N1)]), state)
    assert events(late) == [("opportunity_created", key(N1, "opportunity_created"))]
    late_stale = await mapped(outbound_message([open_opp(N2)]), state)  # older data, N2's id
    assert events(late_stale) == [("closed_won", key(N2, "closed_won"))]


async def test_a_redelivery_moving_to_another_mapped_stage_gets_its_own_id():
    state = MemoryState()
    stage_map = {"Prospecting": "QUALIFY", "Proposal/Price Quote": "ACQUIRE"}
    await mapped(outbound_message([open_opp(N1)]), state, stage_map=stage_map)
    again = await mapped(
        outbound_message([open_opp(N1, StageName="Proposal/Price Quote")]),
        state,
        stage_map=stage_map,
    )
    assert [k for _, k in events(again)] == [
        key(N1, "opportunity_created"),
        key(N1, "stage_changed:QUALIFY"),
        key(N1, "stage_changed:ACQUIRE"),
    ]


async def test_a_redelivery_never_lists_an_event_twice():
    # Without LastModifiedDate ordering, an old notification retried with its old stage
    # derives the stage_changed it raised the first time: it is replayed, not repeated.
    state = MemoryState()
    stage_map = {"Prospecting": "QUALIFY", "Proposal/Price Quote": "ACQUIRE"}
    bare: dict[str, str | None] = {"LastModifiedDate": None}
    await mapped(outbound_message([open_opp(N1, **bare)]), state, stage_map=stage_map)
    await mapped(
        outbound_message([open_opp(N2, StageName="Proposal/Price Quote", **bare)]),
        state,
        stage_map=stage_map,
    )
    again = await mapped(outbound_message([open_opp(N1, **bare)]), state, stage_map=stage_map)
    assert [k for _, k in events(again)] == [
        key(N1, "opportunity_created"),
        key(N1, "stage_changed:QUALIFY"),
    ]
    remembered = state.data[f"opportunity:{OPP}"]["notifications"]
    assert [len(entry["events"]) for entry in remembered] == [2, 1]


async def test_the_remembered_notifications_are_bounded():
    state = MemoryState()
    stage_map = {"A": "QUALIFY", "B": "ACQUIRE"}
    for n in range(30):
        stage = "A" if n % 2 else "B"
        await mapped(
            outbound_message([open_opp(sfid("04l", 100 + n), StageName=stage)]),
            state,
            stage_map=stage_map,
        )
    assert len(state.data[f"opportunity:{OPP}"]["notifications"]) == 10


# --- the answers --------------------------------------------------------------------------


def test_the_ack_is_the_soap_notifications_response_salesforce_expects():
    ack = ADAPTER.acknowledge([Mapped("x", ignored_reason="duplicate")])
    assert ack.status == 200
    assert ack.media_type == "text/xml; charset=utf-8"
    root = ElementTree.fromstring(ack.body)
    assert root.tag == f"{SOAP}Envelope"
    [body] = list(root)
    assert body.tag == f"{SOAP}Body"
    [response] = list(body)
    assert response.tag == f"{OUT}notificationsResponse"
    [ack_element] = list(response)
    assert ack_element.tag == f"{OUT}Ack" and ack_element.text == "true"
    assert ADAPTER.acknowledge([]).body == ack.body


@pytest.mark.parametrize(
    ("status", "code"), [(400, "soapenv:Client"), (401, "soapenv:Client"), (503, "soapenv:Server")]
)
def test_errors_are_soap_faults_the_delivery_status_page_can_show(status, code):
    answer = ADAPTER.reject(status, "Notification 2 (04l…): Amount is '<lots> & more'\x00")
    assert answer is not None
    assert answer.status == status and answer.media_type == "text/xml; charset=utf-8"
    fault = ElementTree.fromstring(answer.body).find(f"{SOAP}Body/{SOAP}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == code
    assert fault.findtext("faultstring") == "Notification 2 (04l…): Amount is '<lots> & more'?"


# --- Change Data Capture -------------------------------------------------------------------


def cdc(
    change_type: str = "UPDATE", changed: list[str] | None = None, **fields: Any
) -> dict[str, Any]:
    return {
        "ChangeEventHeader": {
            "entityName": "Opportunity",
            "recordIds": [OPP],
            "changeType": change_type,
            "changeOrigin": "com/salesforce/api/soap/61.0;client=SfdcInternalAPI/",
            "transactionKey": "0002343d-9d90-e395-ed20-cf416ba652ad",
            "sequenceNumber": 2,
            "commitTimestamp": 1806249731000,
            "commitNumber": 10842866009,
            "commitUser": "0055g00000Ab1cDAAR",
            "changedFields": changed if changed is not None else list(fields),
        },
        **fields,
    }


CDC_KEY = "salesforce-cdc:0002343d-9d90-e395-ed20-cf416ba652ad:2"


def cdc_mapped(payload: dict[str, Any], **mapping: Any) -> list[Mapped]:
    return valid(cdc_to_events(payload, mapping))


def test_cdc_create_raises_opportunity_created():
    payload = cdc(
        "CREATE",
        changed=[],
        AccountId=ACCOUNT,
        Name="Wayne - platform",
        StageName="Prospecting",
        IsClosed=False,
        IsWon=False,
        Amount=48000.0,
        CloseDate="2027-03-31",
        Type="New Customer",
    )
    results = cdc_mapped(payload)
    assert events(results) == [("opportunity_created", f"{CDC_KEY}:opportunity_created")]
    event = results[0].event
    assert event is not None
    assert event["occurred_at"] == "2027-03-28T16:02:11+00:00"  # commitTimestamp
    assert event["opportunity"]["amount"] == "48000.00"
    assert event["account"]["name"] == f"Salesforce account {ACCOUNT}"


def test_cdc_create_of_a_won_opportunity_raises_both():
    payload = cdc(
        "CREATE", changed=[], AccountId=ACCOUNT, StageName="Closed Won", IsClosed=True, IsWon=True
    )
    assert events(cdc_mapped(payload)) == [
        ("opportunity_created", f"{CDC_KEY}:opportunity_created"),
        ("closed_won", f"{CDC_KEY}:closed_won"),
    ]


def test_cdc_update_to_won_raises_closed_won():
    payload = cdc(
        changed=["StageName", "IsClosed", "IsWon", "LastModifiedDate"],
        AccountId=ACCOUNT,  # added by the relay
        StageName="Closed Won",
        IsClosed=True,
        IsWon=True,
        LastModifiedDate="2027-03-28T16:02:11.000Z",
    )
    assert events(cdc_mapped(payload)) == [("closed_won", f"{CDC_KEY}:closed_won")]


def test_cdc_update_closing_without_winning_raises_closed_lost():
    payload = cdc(
        changed=["StageName", "IsClosed"], AccountId=ACCOUNT, StageName="Closed Lost", IsClosed=True
    )
    assert events(cdc_mapped(payload)) == [("closed_lost", f"{CDC_KEY}:closed_lost")]


def test_cdc_update_trusts_changed_fields_over_fields_a_relay_added():
    # The relay enriched the body with the whole record; only the Amount changed.
    payload = cdc(changed=["Amount"], AccountId=ACCOUNT, Amount=1.0, IsWon=True, IsClosed=True)
    [ignored] = cdc_mapped(payload)
    assert ignored.dedupe_key == CDC_KEY and ignored.event is None


def test_cdc_update_of_a_mapped_stage_and_go_live():
    payload = cdc(AccountId=ACCOUNT, StageName="Onboarding", Live__c=True)
    results = cdc_mapped(payload, stage_map={"Onboarding": "IMPLEMENT"}, go_live_field="Live__c")
    assert events(results) == [
        ("stage_changed", f"{CDC_KEY}:stage_changed:IMPLEMENT"),
        ("go_live", f"{CDC_KEY}:go_live"),
    ]


def test_cdc_update_without_account_is_ignored_and_says_what_the_relay_must_add():
    [ignored] = cdc_mapped(cdc(changed=["IsWon", "IsClosed"], IsWon=True, IsClosed=True))
    assert "relay must add the opportunity's AccountId" in (ignored.ignored_reason or "")


def test_cdc_update_of_an_unmapped_stage_is_ignored():
    [ignored] = cdc_mapped(cdc(AccountId=ACCOUNT, StageName="Negotiation/Review"))
    assert "mapping.stage_map" in (ignored.ignored_reason or "")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"changeType": "GAP_UPDATE"}, "gap event"),
        ({"changeType": "DELETE"}, "DELETE of an opportunity"),
        ({"entityName": "Contact"}, "Contact change events"),
        ({"recordIds": ["006*"]}, "wildcard"),
    ],
)
def test_cdc_events_that_map_to_nothing_are_ignored(change, says):
    payload = cdc(AccountId=ACCOUNT, IsWon=True)
    payload["ChangeEventHeader"].update(change)
    [ignored] = cdc_mapped(payload)
    assert says in (ignored.ignored_reason or "")
    assert ignored.dedupe_key == CDC_KEY


def test_cdc_accepts_the_cometd_wrappers_and_avro_unions():
    inner = cdc(
        changed=["IsWon", "IsClosed"],
        AccountId={"string": ACCOUNT},
        IsWon={"boolean": True},
        IsClosed=True,
    )
    for wrapped in (
        {"schema": "abc", "payload": inner, "event": {"replayId": 42}},
        {
            "data": {"schema": "abc", "payload": inner, "event": {"replayId": 42}},
            "channel": "/data/OpportunityChangeEvent",
        },
    ):
        assert events(cdc_mapped(wrapped)) == [("closed_won", f"{CDC_KEY}:closed_won")]


def test_cdc_events_naming_several_records_key_each_record():
    payload = cdc(changed=["StageName"], AccountId=ACCOUNT, StageName="Onboarding")
    payload["ChangeEventHeader"]["recordIds"] = [OPP, OPP_2]
    results = cdc_mapped(payload, stage_map={"Onboarding": "IMPLEMENT"})
    assert [k for _, k in events(results)] == [
        f"{CDC_KEY}:{OPP}:stage_changed:IMPLEMENT",
        f"{CDC_KEY}:{OPP_2}:stage_changed:IMPLEMENT",
    ]


def test_cdc_ids_are_stable():
    payload = cdc(changed=["IsWon", "IsClosed"], AccountId=ACCOUNT, IsWon=True, IsClosed=True)
    assert cdc_mapped(payload) == cdc_mapped(json.loads(json.dumps(payload)))


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"IsWon": True}, "no ChangeEventHeader"),
        ({"ChangeEventHeader": {"entityName": "Opportunity"}}, "changeType"),
        (
            {
                "ChangeEventHeader": {
                    "entityName": "Opportunity",
                    "changeType": "UPDATE",
                    "transactionKey": "t",
                    "sequenceNumber": "1",
                    "commitTimestamp": 1,
                    "recordIds": [OPP],
                }
            },
            "sequenceNumber",
        ),
        (
            {
                "ChangeEventHeader": {
                    "entityName": "Opportunity",
                    "changeType": "UPDATE",
                    "transactionKey": "t",
                    "sequenceNumber": 1,
                    "commitTimestamp": 1,
                    "recordIds": "006",
                }
            },
            "recordIds",
        ),
        (cdc(AccountId=ACCOUNT, IsWon="maybe"), "IsWon is 'maybe'"),
    ],
)
def test_cdc_malformed_bodies_say_what_is_wrong(payload, says):
    with pytest.raises(MalformedDelivery, match=says):
        cdc_to_events(payload, None)


# --- over real HTTP ---------------------------------------------------------------------------


async def test_over_http_salesforce_gets_its_ack_and_a_foreign_org_a_fault():
    source = source_config(allowed_ips=["127.0.0.0/8"])
    with running_listener(ADAPTER, source) as listener:
        async with httpx.AsyncClient(timeout=10) as client:
            body = outbound_message([won_opp(N1)])
            answer = await client.post(listener.url, content=body, headers=SALESFORCE_HEADERS)
            again = await client.post(listener.url, content=body, headers=SALESFORCE_HEADERS)
            foreign = await client.post(
                listener.url,
                content=outbound_message(
                    [won_opp(N1)], organization_id=with_checksum("00D000000000001")
                ),
                headers=SALESFORCE_HEADERS,
            )
    for response in (answer, again):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/xml; charset=utf-8"
        assert (
            ElementTree.fromstring(response.content).findtext(
                f"{SOAP}Body/{OUT}notificationsResponse/{OUT}Ack"
            )
            == "true"
        )
    assert [[m.dedupe_key for m in seen] for seen in listener.seen] == [
        [key(N1, "opportunity_created"), key(N1, "closed_won")]
    ] * 2
    assert foreign.status_code == 401
    fault = ElementTree.fromstring(foreign.content).find(f"{SOAP}Body/{SOAP}Fault")
    assert fault is not None and "is not the organization" in (fault.findtext("faultstring") or "")


async def test_over_http_a_body_with_a_dtd_gets_a_fault_and_nothing_is_kept():
    with running_listener(ADAPTER, source_config()) as listener:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                listener.url, content=BILLION_LAUGHS, headers=SALESFORCE_HEADERS
            )
    assert response.status_code == 400
    fault = ElementTree.fromstring(response.content).find(f"{SOAP}Body/{SOAP}Fault")
    assert fault is not None and fault.findtext("faultcode") == "soapenv:Client"
    assert "DTD or entities" in (fault.findtext("faultstring") or "")
    assert listener.seen == [] and listener.state.data == {}


async def test_over_http_an_address_outside_the_allow_list_is_refused():
    source = source_config(allowed_ips=["13.108.0.0/14"])
    with running_listener(ADAPTER, source) as listener:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                listener.url, content=outbound_message([open_opp()]), headers=SALESFORCE_HEADERS
            )
    assert response.status_code == 401
    assert "127.0.0.1 is not in this source's allowed_ips" in response.text
    assert listener.seen == [] and listener.state.data == {}


def test_the_adapter_registers_itself_as_salesforce():
    from service.webhooks.adapters import _ADAPTERS

    assert isinstance(_ADAPTERS[salesforce.SalesforceAdapter.kind], SalesforceAdapter)
    assert SalesforceAdapter.kind == "salesforce"
