"""HubSpot Webhooks API (app subscriptions): verify, parse a batch, map deals to events.

HubSpot POSTs a JSON array of up to 100 events to the app's target URL. Each event names
a subscription (`deal.creation`, `deal.propertyChange` of one property, …), the portal,
the object id and when it happened, and nothing else: the deal's company, name and
amount are read through the CRM API when the source has an API token (hubspot_api.py).

Signatures are checked in hubspot_signatures.py; `sign_v3` is re-exported here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, ClassVar

from service.webhooks.adapters import register
from service.webhooks.adapters.base import (
    Acknowledgement,
    AdapterContext,
    Delivery,
    MalformedDelivery,
    Mapped,
    SourceConfig,
    VerificationFailed,
    json_ack,
    read_json,
)
from service.webhooks.adapters.hubspot_api import (
    Company,
    Deal,
    HubSpotClient,
    HubSpotUnavailable,
    LookupCache,
)
from service.webhooks.adapters.hubspot_signatures import (
    sign_v1,
    sign_v2,
    sign_v3,
    signed_headers,
    v3_uri,
    verify_signature,
)

# The signing helpers are part of this module's surface: the CLI and the docs sign with them.
__all__ = [
    "NO_TOKEN_NOTE",
    "HubSpotAdapter",
    "HubSpotEvent",
    "HubSpotOptions",
    "decide",
    "parse_batch",
    "sign_v1",
    "sign_v2",
    "sign_v3",
    "signed_headers",
    "v3_uri",
    "validate_mapping",
]

MAX_BATCH = 100
LOOKUP_CONCURRENCY = 4  # HubSpot's API allows bursts of ~100 requests per 10 s per app
# All lookups of one delivery together: HubSpot waits 5 s for the answer, and the
# framework still has to store and apply the events after them.
LOOKUP_DEADLINE = 3.5

_SIGNATURE_VERSIONS = ("v1", "v2", "v3")
_OPPORTUNITY_KINDS = ("new", "renewal", "expansion")
_DEAL_TYPE_ID = "0-3"  # objectTypeId of deals in HubSpot's generic `object.*` events
_OBJECT_TYPE_NAMES = {"0-1": "contact", "0-2": "company", "0-3": "deal", "0-5": "ticket"}
_EARLIEST_MS = 946_684_800_000  # 2000-01-01: HubSpot's events are younger than that
_LATEST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last a datetime can hold
_AMOUNT = re.compile(r"-?[0-9]{1,14}(\.[0-9]{1,2})?")
_CURRENCY = re.compile(r"[A-Z]{3}")


# --- mapping options ----------------------------------------------------------------------


@dataclass(frozen=True)
class HubSpotOptions:
    """A source's mapping, checked. `from_mapping` raises ValueError saying what is wrong."""

    closed_won_stages: frozenset[str]
    closed_lost_stages: frozenset[str]
    go_live_property: str | None
    go_live_values: frozenset[str]
    stage_map: dict[str, str]
    dealtype_kinds: dict[str, str]
    signature_versions: frozenset[str]

    @classmethod
    def from_mapping(cls, mapping: Any) -> HubSpotOptions:
        merged = {**HubSpotAdapter.default_mapping, **dict(mapping or {})}
        versions = _versions(merged)
        kinds = _string_map(merged, "dealtype_kinds")
        wrong = sorted(k for k, v in kinds.items() if v not in _OPPORTUNITY_KINDS)
        if wrong:
            raise ValueError(
                f"mapping.dealtype_kinds[{wrong[0]!r}] must be one of "
                f"{', '.join(_OPPORTUNITY_KINDS)}"
            )
        go_live_property = merged.get("go_live_property")
        if go_live_property is not None and not isinstance(go_live_property, str):
            raise ValueError("mapping.go_live_property must be a property name, or null")
        return cls(
            closed_won_stages=frozenset(_strings(merged, "closed_won_stages")),
            closed_lost_stages=frozenset(_strings(merged, "closed_lost_stages")),
            go_live_property=go_live_property or None,
            go_live_values=frozenset(_strings(merged, "go_live_values")),
            stage_map=_string_map(merged, "stage_map"),
            dealtype_kinds=kinds,
            signature_versions=frozenset(versions),
        )


def validate_mapping(mapping: Any) -> None:
    """Raise ValueError unless `mapping` is a valid HubSpot mapping (for the sources API)."""
    HubSpotOptions.from_mapping(mapping)


def _versions(mapping: dict[str, Any]) -> list[str]:
    versions = _strings(mapping, "signature_versions")
    if not versions or set(versions) - set(_SIGNATURE_VERSIONS):
        raise ValueError("mapping.signature_versions must list some of v1, v2, v3")
    return versions


def _strings(mapping: dict[str, Any], name: str) -> list[str]:
    value = mapping.get(name)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"mapping.{name} must be a list of strings")
    return value


def _string_map(mapping: dict[str, Any], name: str) -> dict[str, str]:
    value = mapping.get(name)
    if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
        raise ValueError(f"mapping.{name} must map strings to non-empty strings")
    return {str(k): v for k, v in value.items()}


# --- parsing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubSpotEvent:
    """One element of a delivery's array, checked."""

    portal_id: int
    subscription_id: int
    event_id: int
    object_id: int
    occurred_at: int  # epoch milliseconds
    subscription_type: str  # `object.*` events of deals normalised to `deal.*`
    object_type: str  # "deal", "contact", … or the objectTypeId of other objects
    property_name: str | None
    property_value: str | None
    change_source: str | None
    source_id: str | None
    app_id: int | None

    @property
    def dedupe_key(self) -> str:
        # eventId alone is not unique (HubSpot's docs): the five together are.
        return (
            f"hubspot:{self.portal_id}:{self.subscription_id}:{self.event_id}:"
            f"{self.object_id}:{self.occurred_at}"
        )

    @property
    def label(self) -> str:
        if self.property_name is None:
            return self.subscription_type
        return f"{self.subscription_type} {self.property_name}={self.property_value!r}"


def parse_batch(body: bytes) -> list[HubSpotEvent]:
    items = read_json(body)
    if not isinstance(items, list):
        raise MalformedDelivery(
            f"body is not a JSON array of HubSpot events: it is a JSON {_json_type(items)}"
        )
    if len(items) > MAX_BATCH:
        raise MalformedDelivery(
            f"body holds {len(items)} events; HubSpot sends at most {MAX_BATCH} per request"
        )
    return [_parse_event(item, n, len(items)) for n, item in enumerate(items, start=1)]


def _parse_event(item: Any, n: int, total: int) -> HubSpotEvent:
    where = f"item {n} of {total}"
    if not isinstance(item, dict):
        raise MalformedDelivery(
            f"body is not a JSON array of HubSpot events: {where} is a JSON {_json_type(item)}"
        )

    def integer(name: str, *, required: bool = True) -> int | None:
        value = item.get(name)
        if value is None:
            if required:
                raise MalformedDelivery(f"{where} has no {name}")
            return None
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
            return value  # HubSpot's ids and times are (positive) Java longs
        raise MalformedDelivery(
            f"{where}: {name} must be a non-negative integer, not {value!r:.40}"
        )

    def text(name: str) -> str | None:
        value = item.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise MalformedDelivery(f"{where}: {name} must be a string, not {value!r:.40}")

    # Some of HubSpot's tables call it eventType; deliveries say subscriptionType.
    subscription_type = text("subscriptionType") or text("eventType")
    if not subscription_type:
        raise MalformedDelivery(f"{where} has no subscriptionType")
    object_type, _, action = subscription_type.partition(".")
    if object_type == "object":  # the generic format: the type is in objectTypeId
        type_id = text("objectTypeId")
        if not type_id:
            raise MalformedDelivery(f"{where} is an {subscription_type} without objectTypeId")
        object_type = _OBJECT_TYPE_NAMES.get(type_id, type_id)
        if type_id == _DEAL_TYPE_ID:
            subscription_type = f"deal.{action}"
    property_name = text("propertyName")
    if action == "propertyChange" and not property_name:
        raise MalformedDelivery(f"{where} is a {subscription_type} without propertyName")
    occurred_at = _required(integer("occurredAt"))
    if not _EARLIEST_MS <= occurred_at <= _LATEST_MS:
        raise MalformedDelivery(f"{where}: occurredAt {occurred_at} is not epoch milliseconds")
    return HubSpotEvent(
        portal_id=_required(integer("portalId")),
        subscription_id=_required(integer("subscriptionId")),
        event_id=_required(integer("eventId")),
        object_id=_required(integer("objectId")),
        occurred_at=occurred_at,
        subscription_type=subscription_type,
        object_type=object_type,
        property_name=property_name,
        # A cleared property arrives with an empty (or, in some captures, no) value.
        property_value=(text("propertyValue") or "") if property_name else None,
        change_source=text("changeSource"),
        source_id=text("sourceId"),
        app_id=integer("appId", required=False),
    )


def _required(value: int | None) -> int:
    assert value is not None  # `integer(required=True)` raised otherwise
    return value


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


# --- deciding what an event means ---------------------------------------------------------


@dataclass(frozen=True)
class _Emit:
    type: str
    to_stage: str | None = None


def decide(event: HubSpotEvent, options: HubSpotOptions) -> _Emit | str:
    """The lifecycle event a HubSpot event means, or why it means none."""
    if event.object_type != "deal":
        return (
            f"{event.subscription_type} is about a {event.object_type}, not a deal; only deal "
            "events are mapped (remove the subscription from the HubSpot app to stop them)"
        )
    if event.subscription_type == "deal.creation":
        return _Emit("opportunity_created")
    if event.subscription_type != "deal.propertyChange":
        return (
            f"{event.subscription_type} does not map to a lifecycle event; only deal.creation "
            "and deal.propertyChange of dealstage or the go-live property are mapped"
        )
    name, value = event.property_name, event.property_value or ""
    go_live = options.go_live_property
    if name == "dealstage":
        if value in options.closed_won_stages:
            return _Emit("closed_won")
        if value in options.closed_lost_stages:
            return _Emit("closed_lost")
        if go_live == "dealstage" and value in options.go_live_values:
            return _Emit("go_live")
        if value in options.stage_map:
            return _Emit("stage_changed", to_stage=options.stage_map[value])
        return (
            f"dealstage {value!r} is not mapped; map it in the source's "
            "mapping.closed_won_stages, closed_lost_stages or stage_map, or ignore it"
        )
    if name == go_live:
        if value in options.go_live_values:
            return _Emit("go_live")
        return (
            f"{name} changed to {value!r}, which is not one of mapping.go_live_values "
            f"{sorted(options.go_live_values)}"
        )
    return (
        f"deal property {name!r} is not mapped; Quarterback reads dealstage and the go-live "
        f"property ({go_live or 'none set'}): set mapping.go_live_property, or unsubscribe it"
    )


# --- deal facts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _DealFacts:
    account: dict[str, str]
    opportunity: dict[str, str]
    note: str | None = None


NO_TOKEN_NOTE = "no HubSpot API token: account keyed on the deal id"


def _keyed_on_deal(deal_id: str) -> dict[str, str]:
    return {"external_id": f"deal-{deal_id}", "name": f"HubSpot deal {deal_id}"}


def _facts(deal: Deal, company: Company | None, options: HubSpotOptions) -> _DealFacts:
    opportunity: dict[str, str] = {"external_id": deal.id}
    if name := deal.prop("dealname"):
        opportunity["name"] = name[:300]
    if amount := _amount(deal.prop("amount")):
        opportunity["amount"] = amount
    currency = (deal.prop("deal_currency_code") or "").upper()
    if _CURRENCY.fullmatch(currency):
        opportunity["currency"] = currency
    if close_date := _date(deal.prop("closedate")):
        opportunity["close_date"] = close_date
    kind = options.dealtype_kinds.get(deal.prop("dealtype") or "")
    if kind:
        opportunity["kind"] = kind
    if company is None:
        note = (
            f"deal {deal.id} has no company in HubSpot: account keyed on the deal id"
            if not deal.company_ids
            else f"company {deal.company_ids[0]} of deal {deal.id} was not found in HubSpot: "
            "account keyed on the deal id"
        )
        return _DealFacts(_keyed_on_deal(deal.id), opportunity, note)
    account = {"external_id": company.id, "name": (company.name or f"HubSpot company {company.id}")}
    account["name"] = account["name"][:200]
    if company.domain:
        account["domain"] = company.domain[:253]
    return _DealFacts(account, opportunity)


def _amount(raw: str | None) -> str | None:
    """HubSpot's amount ("84000", "1234.5") as the schema's decimal string, or None."""
    if raw is None:
        return None
    try:
        value = Decimal(raw)
        if not value.is_finite():
            return None
        text = format(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), "f")
    except InvalidOperation:  # not a number, or too large to quantize
        return None
    return text if _AMOUNT.fullmatch(text) else None


def _date(raw: str | None) -> str | None:
    """HubSpot's closedate (ISO datetime, or epoch ms in older answers) as a UTC date."""
    if raw is None:
        return None
    try:
        if raw.isascii() and raw.isdigit():
            when = datetime.fromtimestamp(int(raw) / 1000, UTC)
        else:
            when = datetime.fromisoformat(raw)
    except (ValueError, OverflowError, OSError):
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.date().isoformat()


async def _look_up(
    client: HubSpotClient, deal_ids: list[str], options: HubSpotOptions
) -> dict[str, _DealFacts | None]:
    """Facts of each deal (None: HubSpot does not know it), a few lookups at a time."""
    gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)

    async def one(deal_id: str) -> _DealFacts | None:
        async with gate:
            deal = await client.deal(deal_id)
            if deal is None:
                return None
            company = await client.company(deal.company_ids[0]) if deal.company_ids else None
            return _facts(deal, company, options)

    try:
        async with asyncio.timeout(LOOKUP_DEADLINE):
            outcomes = await asyncio.gather(
                *(one(deal_id) for deal_id in deal_ids), return_exceptions=True
            )
    except TimeoutError:
        raise HubSpotUnavailable(
            f"looking up {len(deal_ids)} deal(s) in HubSpot took over {LOOKUP_DEADLINE} s"
        ) from None
    found: dict[str, _DealFacts | None] = {}
    for deal_id, outcome in zip(deal_ids, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            # Every lookup has finished; the framework keeps the events for replay.
            raise outcome
        found[deal_id] = outcome
    return found


# --- the adapter --------------------------------------------------------------------------


_CACHE_KEY = "hubspot.lookups"


class HubSpotAdapter:
    kind: ClassVar[str] = "hubspot"
    default_mapping: ClassVar[Mapping[str, Any]] = {
        # dealstage ids (internal ids, never labels) that mean won and lost. The default
        # pipeline's are closedwon/closedlost; custom pipelines' stages have numeric ids
        # ("148309307"): list them with GET /crm/v3/pipelines/deals.
        "closed_won_stages": ["closedwon"],
        "closed_lost_stages": ["closedlost"],
        # A deal property whose change to one of go_live_values means go-live: a custom
        # property, or "dealstage" with the live stage of an onboarding pipeline. null
        # turns go-live off. The app must subscribe to deal.propertyChange of it.
        "go_live_property": "onboarding_status",
        "go_live_values": ["live"],
        # dealstage id -> Quarterback stage key ({"contractsent": "ACQUIRE"}): a deal
        # entering one of these stages emits stage_changed. Won/lost stages win over it.
        "stage_map": {},
        # dealtype value -> opportunity kind (new | renewal | expansion), read with the
        # API token. HubSpot's default options are newbusiness and existingbusiness;
        # portals that tell renewals from upsells add their own options: map them here.
        # A deal created with an "expansion" kind emits expansion_opportunity_created.
        "dealtype_kinds": {"newbusiness": "new", "existingbusiness": "renewal"},
        # Signatures accepted: "v3" (HMAC with a timestamp; every app request has it).
        # "v1"/"v2" (SHA-256 of secret + request, no timestamp, so replayable) only for
        # senders that cannot send v3; they are never enough when v3 headers are present.
        "signature_versions": ["v3"],
    }

    def validate_mapping(self, mapping: Mapping[str, Any]) -> None:
        """Raise ValueError with a usable message unless the mapping is valid."""
        validate_mapping(mapping)

    def verify(self, delivery: Delivery, source: SourceConfig) -> None:
        verify_signature(delivery, source.secrets, _signature_versions(source))

    async def map(
        self, delivery: Delivery, source: SourceConfig, context: AdapterContext
    ) -> list[Mapped]:
        options = HubSpotOptions.from_mapping(source.mapping)
        events = parse_batch(delivery.body)
        decisions = [(event, decide(event, options)) for event in events]
        wanted = [str(e.object_id) for e, d in decisions if isinstance(d, _Emit)]
        facts: dict[str, _DealFacts | None] = {}
        if source.api_token and wanted:
            client = HubSpotClient(
                context.http,
                token=source.api_token,
                base_url=source.api_base_url,
                cache=_lookup_cache(context),
                cache_namespace=str(source.id),
            )
            facts = await _look_up(client, list(dict.fromkeys(wanted)), options)
        return [
            _mapped(event, decision, facts, looked_up=bool(source.api_token))
            for event, decision in decisions
        ]

    def acknowledge(self, results: list[Mapped]) -> Acknowledgement:
        return json_ack(results)

    def reject(self, status: int, message: str) -> Acknowledgement | None:
        return None


def _signature_versions(source: SourceConfig) -> frozenset[str]:
    merged = {**HubSpotAdapter.default_mapping, **dict(source.mapping or {})}
    try:
        return frozenset(_versions(merged))
    except ValueError as exc:
        raise VerificationFailed(f"the source's mapping is invalid: {exc}") from None


def _lookup_cache(context: AdapterContext) -> LookupCache:
    cache = context.cache.get(_CACHE_KEY)
    if not isinstance(cache, LookupCache):
        cache = context.cache[_CACHE_KEY] = LookupCache()
    return cache


def _mapped(
    event: HubSpotEvent,
    decision: _Emit | str,
    facts: dict[str, _DealFacts | None],
    *,
    looked_up: bool,
) -> Mapped:
    key = event.dedupe_key
    if isinstance(decision, str):
        return Mapped(key, ignored_reason=decision, label=event.label)
    deal_id = str(event.object_id)
    if looked_up:
        found = facts.get(deal_id)
        if found is None:
            return Mapped(
                key,
                ignored_reason=(
                    f"deal {deal_id} was not found in HubSpot (deleted or merged since); "
                    "nothing to apply"
                ),
                label=event.label,
            )
    else:
        found = _DealFacts(_keyed_on_deal(deal_id), {"external_id": deal_id}, NO_TOKEN_NOTE)
    event_type = decision.type
    if event_type == "opportunity_created" and found.opportunity.get("kind") == "expansion":
        event_type = "expansion_opportunity_created"
    canonical: dict[str, Any] = {
        "id": key,
        "type": event_type,
        "occurred_at": datetime.fromtimestamp(event.occurred_at / 1000, UTC).isoformat(
            timespec="milliseconds"
        ),
        # Copies: events of one deal in a batch must not share (mutable) dicts.
        "account": dict(found.account),
        "opportunity": dict(found.opportunity),
        "data": _data(event),
    }
    if decision.to_stage is not None:
        canonical["to_stage"] = decision.to_stage
    return Mapped(key, event=canonical, label=event.label, note=found.note)


def _data(event: HubSpotEvent) -> dict[str, Any]:
    # Not attemptNumber: a redelivery must produce the very same event.
    data = {
        "portal_id": event.portal_id,
        "deal_id": str(event.object_id),
        "subscription_type": event.subscription_type,
        "property_name": event.property_name,
        "property_value": event.property_value,
        "change_source": event.change_source,
        "source_id": event.source_id,
        "app_id": event.app_id,
    }
    return {name: value for name, value in data.items() if value is not None}


register(HubSpotAdapter())
