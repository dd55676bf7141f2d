"""Salesforce outbound messages: SOAP 1.1 `notifications`, answered with a SOAP Ack.

An outbound message (workflow rule or Flow action) is a SOAP envelope whose
`notifications` element (namespace http://soap.sforce.com/2005/09/outbound) carries
OrganizationId, ActionId, SessionId, EnterpriseUrl, PartnerUrl and up to 100
`Notification`s, each an `Id` (04l…, the same on every retry) and an `sObject` with the
fields chosen in the message definition (`sf:Id`, `sf:StageName`, …, all as text).

Authenticity. Salesforce does not sign these messages and sends no custom header, so a
message is accepted only when it names this source's org (15- or 18-character id, compared
through the case-safe checksum), came to the source's unguessable URL, and — when the source
has `allowed_ips` — from an allowed address. verify() has to read the org id from the body:
it does so with a hardened streaming parse (no DTD, no entities) that stops at the id; a
body it cannot read is left to map(), which refuses it as malformed before touching state.

State. A message carries the record's state when it was sent, never the change, so the
adapter keeps each opportunity's last seen state (`opportunity:{Id}` in the StateStore) and
raises events from the difference. Salesforce retries for 24 h, out of order, and a retry
carries the record's *latest* data under the old notification Id; so the state also keeps
the events each recent notification raised, and a redelivery raises exactly those again
(same ids: the endpoint sees duplicates) plus whatever really changed since.

Answer. Salesforce wants HTTP 200 with a `notificationsResponse` whose `Ack` is true, for
duplicates too, and redelivers anything else. Errors are answered as SOAP Faults: Salesforce
parses whatever comes back as SOAP, and its Setup → Outbound Messages delivery status shows
the result, so a Fault's text is what the admin reads (a JSON body would only show there as
"Content is not allowed in prolog").
"""

from __future__ import annotations

import io
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring, iterparse

from service.webhooks.adapters import register
from service.webhooks.adapters.base import (
    Acknowledgement,
    AdapterContext,
    Delivery,
    MalformedDelivery,
    Mapped,
    SourceConfig,
    StateStore,
    VerificationFailed,
)
from service.webhooks.adapters.salesforce_mapping import (
    DEFAULT_MAPPING,
    ONCE_PER_OPPORTUNITY,
    AccountRecord,
    Change,
    Opportunity,
    account_reference,
    canonical_event,
    cdc_to_events,
    event_id,
    event_type,
    fallback_account_name,
    id18,
    merged,
    same_id,
    stage_and_outcome,
)

__all__ = ["SalesforceAdapter", "cdc_to_events", "id18", "parse_message", "same_id"]

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_ENVELOPE, _BODY = f"{{{SOAP_ENV}}}Envelope", f"{{{SOAP_ENV}}}Body"
_NOTIFICATIONS = f"{{{OUTBOUND}}}notifications"
_ORG_PATH = [_ENVELOPE, _BODY, _NOTIFICATIONS, f"{{{OUTBOUND}}}OrganizationId"]
MAX_NOTIFICATIONS = 100  # the WSDL's maxOccurs
_REMEMBERED = 10  # notifications whose events a record's state keeps, for redeliveries
SOAP_MEDIA_TYPE = "text/xml; charset=utf-8"
_ID_PREFIXES = {"006": "Opportunity", "001": "Account"}
# What expat raises for a body it cannot read: not well-formed, a DTD or entity (defusedxml),
# or an XML declaration naming an encoding it cannot use (LookupError for an unknown one,
# ValueError for a multi-byte one like Shift_JIS).
_UNREADABLE_XML = (ParseError, DefusedXmlException, ValueError, LookupError)
# Characters XML 1.0 cannot carry: a Fault's text must stay parseable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soapenv:Body>"
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    b"<Ack>true</Ack>"
    b"</notificationsResponse>"
    b"</soapenv:Body>"
    b"</soapenv:Envelope>"
)


# --- the message -------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    position: int  # 1-based, for messages
    id: str  # 18 characters
    sobject_type: str | None  # "Opportunity", "Account", …; None when the record is gone
    fields: dict[str, str | None]

    @property
    def where(self) -> str:
        return f"Notification {self.position} ({self.id})"


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str  # 18 characters
    action_id: str | None
    notifications: list[Notification]


def _refused_xml(error: Exception) -> MalformedDelivery:
    if isinstance(error, DefusedXmlException):
        return MalformedDelivery(
            "body declares a DTD or entities, which Salesforce never sends; refused "
            f"({type(error).__name__})"
        )
    return MalformedDelivery(f"body is not well-formed XML: {error}")


def read_organization_id(body: bytes) -> str | None:
    """The envelope's OrganizationId, read by a streaming parse that stops there; None when
    the body cannot be read as an outbound message up to that point.

    Hardened like the full parse (no DTD, no entities: a DTD comes before the root, so it
    is refused before anything is read), and cheap: it stops at the id.
    """
    path: list[str] = []
    try:
        for event, element in iterparse(io.BytesIO(body), events=("start", "end"), forbid_dtd=True):
            if event == "start":
                path.append(element.tag)
                if len(path) == 1 and element.tag != _ENVELOPE:
                    return None
                continue
            if path == _ORG_PATH:
                return (element.text or "").strip()
            path.pop()
            element.clear()  # keep memory flat however long the body
    except _UNREADABLE_XML:
        return None
    return None


def _not_outbound(tag: str) -> MalformedDelivery:
    return MalformedDelivery(
        f"body is not a Salesforce outbound message: expected soapenv:Envelope/soapenv:Body/"
        f"notifications (namespace {OUTBOUND}), found {tag}"
    )


def _child(element: Element, tag: str) -> Element | None:
    return element.find(tag)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _value(element: Element) -> str | None:
    if element.get(f"{{{XSI}}}nil") in ("true", "1"):
        return None
    return element.text.strip() if element.text is not None else ""


def parse_message(body: bytes) -> OutboundMessage:
    """Parse an outbound message; MalformedDelivery says exactly what is wrong."""
    try:
        root = fromstring(body, forbid_dtd=True)
    except _UNREADABLE_XML as error:
        raise _refused_xml(error) from None
    soap_body = _child(root, _BODY) if root.tag == _ENVELOPE else None
    notifications = _child(soap_body, _NOTIFICATIONS) if soap_body is not None else None
    if notifications is None:
        if soap_body is None:
            found = root.tag if root.tag != _ENVELOPE else "an Envelope without soapenv:Body"
        else:
            found = ", ".join(child.tag for child in soap_body) or "an empty soapenv:Body"
        raise _not_outbound(found)
    org_text = (notifications.findtext(f"{{{OUTBOUND}}}OrganizationId") or "").strip()
    organization_id = id18(org_text)
    if organization_id is None:
        raise MalformedDelivery(f"OrganizationId {org_text!r} is not a Salesforce id")
    elements = notifications.findall(f"{{{OUTBOUND}}}Notification")
    if not elements:
        raise MalformedDelivery("the outbound message has no Notification")
    if len(elements) > MAX_NOTIFICATIONS:
        raise MalformedDelivery(
            f"the outbound message has {len(elements)} Notifications; Salesforce sends at most "
            f"{MAX_NOTIFICATIONS}"
        )
    action_id = (notifications.findtext(f"{{{OUTBOUND}}}ActionId") or "").strip() or None
    return OutboundMessage(
        organization_id=organization_id,
        action_id=action_id,
        notifications=[_notification(n, position) for position, n in enumerate(elements, 1)],
    )


def _notification(element: Element, position: int) -> Notification:
    id_text = (element.findtext(f"{{{OUTBOUND}}}Id") or "").strip()
    notification_id = id18(id_text)
    if notification_id is None:
        raise MalformedDelivery(f"Notification {position} has no valid Id (found {id_text[:40]!r})")
    sobject = _child(element, f"{{{OUTBOUND}}}sObject")
    fields: dict[str, str | None] = {}
    sobject_type = None
    if sobject is not None:
        for child in sobject:
            fields[_local(child.tag)] = _value(child)
        declared = sobject.get(f"{{{XSI}}}type")
        # xsi:type is "sf:Opportunity"; its prefix is irrelevant. Else tell by the Id's prefix.
        sobject_type = declared.rpartition(":")[2] if declared else None
        if not sobject_type and fields.get("Id"):
            sobject_type = _ID_PREFIXES.get(str(fields["Id"])[:3])
    if not fields:
        sobject_type = None  # deleted before it was sent: the notification has no data
    return Notification(position, notification_id, sobject_type, fields)


# --- authenticity ------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise VerificationFailed(
                f"mapping.allowed_ips has {entry!r}, which is not an IP address or CIDR"
            ) from None
    return tuple(networks)


def _check_client_ip(client_ip: str | None, allowed: Any) -> None:
    if not allowed:
        return
    entries = (allowed,) if isinstance(allowed, str) else tuple(str(a) for a in allowed)
    networks = _networks(entries)
    if not client_ip:
        raise VerificationFailed("the client IP is unknown, so mapping.allowed_ips cannot pass")
    try:
        address = ipaddress.ip_address(client_ip.strip().strip("[]"))
    except ValueError:
        raise VerificationFailed(f"client IP {client_ip!r} is not an IP address") from None
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)  # ::ffff:a.b.c.d from a dual-stack socket
    if not any(
        candidate in network
        for candidate in candidates
        for network in networks
        if candidate.version == network.version
    ):
        raise VerificationFailed(f"client IP {client_ip} is not in this source's allowed_ips")


# --- the adapter -------------------------------------------------------------------------


class SalesforceAdapter:
    kind: ClassVar[str] = "salesforce"
    default_mapping: ClassVar[Mapping[str, Any]] = DEFAULT_MAPPING

    def validate_mapping(self, mapping: Mapping[str, Any]) -> None:
        """Refuse, when the source is saved, what would otherwise refuse every delivery."""
        org = mapping.get("organization_id")
        if org is not None and id18(str(org)) is None:
            raise ValueError("organization_id is not a 15- or 18-character Salesforce id")
        allowed = mapping.get("allowed_ips") or []
        try:
            _networks(tuple(str(entry) for entry in allowed))
        except VerificationFailed as exc:
            raise ValueError(str(exc)) from None

    def verify(self, delivery: Delivery, source: SourceConfig) -> None:
        """Accept only this source's org, from an allowed address.

        A body that cannot be read as an outbound message (not XML, a DTD, no
        OrganizationId) is not judged here: map() refuses it as MalformedDelivery, with what
        is wrong, before it reads or writes any state. Whatever map() can accept has its
        OrganizationId where this reads it, so nothing is mapped without passing the org
        check. The configured org id is never echoed.
        """
        expected = source.mapping.get("organization_id")
        if not expected or id18(str(expected)) is None:
            raise VerificationFailed(
                "this Salesforce source has no valid mapping.organization_id: set it to the "
                "org's id (Setup → Company Information), 15 or 18 characters"
            )
        # The address first: it is the cheapest check and spares parsing foreign bodies.
        _check_client_ip(delivery.client_ip, source.mapping.get("allowed_ips"))
        sent = read_organization_id(delivery.body)
        if sent is not None and not same_id(sent, str(expected)):
            raise VerificationFailed(
                f"OrganizationId {sent[:18]!r} is not the organization this source accepts"
            )

    async def map(
        self, delivery: Delivery, source: SourceConfig, context: AdapterContext
    ) -> list[Mapped]:
        message = parse_message(delivery.body)
        mapping = merged(source.mapping)  # the framework merged already; harmless twice
        received_at = delivery.received_at
        if received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=UTC)
        results: list[Mapped] = []
        # In order, one after the other: a message may hold several notifications of the
        # same record, each diffed against the state the previous one left.
        for notification in message.notifications:
            results.extend(
                await _map_notification(message, notification, mapping, context, received_at)
            )
        return results

    def acknowledge(self, results: list[Mapped]) -> Acknowledgement:
        # One Ack covers every notification of the message, duplicates and ignored ones too.
        return Acknowledgement(200, SOAP_MEDIA_TYPE, _ACK)

    def reject(self, status: int, message: str) -> Acknowledgement | None:
        """A SOAP 1.1 Fault: Salesforce reads error bodies as SOAP and its delivery status
        page shows what it found, so the faultstring is what the admin sees."""
        code = "soapenv:Server" if status >= 500 else "soapenv:Client"
        text = escape(_NOT_XML.sub("?", message)[:2000])
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
            "<soapenv:Body><soapenv:Fault>"
            f"<faultcode>{code}</faultcode><faultstring>{text}</faultstring>"
            "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        )
        return Acknowledgement(status, SOAP_MEDIA_TYPE, body.encode())


# --- notifications → events --------------------------------------------------------------


async def _map_notification(
    message: OutboundMessage,
    notification: Notification,
    mapping: Mapping[str, Any],
    context: AdapterContext,
    received_at: datetime,
) -> list[Mapped]:
    base = f"salesforce:{message.organization_id}:{notification.id}"
    kind = notification.sobject_type
    label = f"{kind or 'deleted record'} notification {notification.id}"
    if kind is None:
        return [
            _ignored(
                base,
                "the record was deleted before Salesforce sent the message (the notification "
                "carries no data); nothing to do",
                label,
            )
        ]
    if kind == "Opportunity":
        return await _map_opportunity(message, notification, base, mapping, context, received_at)
    if kind == "Account":
        return await _map_account(message, notification, base, mapping, context, received_at)
    return [
        _ignored(
            base,
            f"{kind} notifications raise no lifecycle event: only Opportunity (and Account, "
            "with mapping.account_go_live_field or account_churned_field) are mapped; remove "
            "this outbound message or ignore it",
            label,
        )
    ]


def _ignored(key: str, reason: str, label: str) -> Mapped:
    return Mapped(key, ignored_reason=reason, label=label)


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _stale(changed_at: datetime | None, previous: Mapping[str, Any] | None) -> datetime | None:
    """The newer time already seen, if this message's record is older than it."""
    seen = _when((previous or {}).get("changed_at"))
    if changed_at is not None and seen is not None and changed_at < seen:
        return seen
    return None


def _replayed(previous: Mapping[str, Any] | None, notification_id: str) -> list[Mapped]:
    """The events this notification raised before, exactly as they were."""
    for entry in (previous or {}).get("notifications") or []:
        if entry.get("id") == notification_id:
            return [
                Mapped(
                    stored["event"]["id"],
                    event=stored["event"],
                    label=stored.get("label", ""),
                    note=stored.get("note"),
                )
                for stored in entry.get("events") or []
            ]
    return []


def _remember(
    previous: Mapping[str, Any] | None, notification_id: str, new: list[Mapped]
) -> list[dict[str, Any]]:
    """The state's list of recent notifications and their events (a list: JSONB reorders
    object keys), with this notification's new events added."""
    memory = [dict(entry) for entry in (previous or {}).get("notifications") or []]
    if not new:
        return memory
    stored = [{"event": m.event, "label": m.label, "note": m.note} for m in new]
    for entry in memory:
        if entry.get("id") == notification_id:
            entry["events"] = [*(entry.get("events") or []), *stored]
            break
    else:
        memory.append({"id": notification_id, "events": stored})
    return memory[-_REMEMBERED:]


def _latest(changed_at: datetime | None, previous: Mapping[str, Any] | None) -> str | None:
    seen = _when((previous or {}).get("changed_at"))
    newest = max((t for t in (changed_at, seen) if t is not None), default=None)
    return newest.isoformat() if newest else None


async def _known_account(state: StateStore, account_id: str) -> Mapping[str, Any]:
    return await state.get(f"account:{account_id}") or {}


async def _map_opportunity(
    message: OutboundMessage,
    notification: Notification,
    base: str,
    mapping: Mapping[str, Any],
    context: AdapterContext,
    received_at: datetime,
) -> list[Mapped]:
    opportunity = Opportunity.parse(notification.fields, notification.where, mapping)
    label = f"Opportunity {opportunity.id}" + (
        f" StageName {opportunity.stage!r}" if opportunity.stage else ""
    )
    key = f"opportunity:{opportunity.id}"
    previous = await context.state.get(key)
    replay = _replayed(previous, notification.id)
    seen = _stale(opportunity.changed_at, previous)
    if seen is not None:
        assert opportunity.changed_at is not None
        return replay or [
            _ignored(
                base,
                f"Opportunity {opportunity.id} was last modified at "
                f"{opportunity.changed_at.isoformat()}, before the state already seen "
                f"({seen.isoformat()}): Salesforce retried an older message out of order; "
                "nothing to do",
                label,
            )
        ]
    account_id = opportunity.account_id or (previous or {}).get("account_id")
    if not account_id:
        # No state is kept: once the message carries AccountId, this is a first sight.
        return replay or [
            _ignored(
                base,
                f"Opportunity {opportunity.id} has no AccountId: add the AccountId field to "
                "the outbound message, or give the opportunity an account",
                label,
            )
        ]

    raised: dict[str, str] = dict((previous or {}).get("raised") or {})
    changes = _opportunity_changes(opportunity, previous, raised, mapping)
    account = await _known_account(context.state, account_id)
    replayed_ids = {m.dedupe_key for m in replay}
    new: list[Mapped] = []
    for change in changes:
        mapped = _opportunity_event(
            message,
            notification,
            base,
            opportunity,
            account_id,
            account,
            change,
            mapping,
            occurred_at=opportunity.changed_at or received_at,
        )
        if mapped.dedupe_key in replayed_ids:
            continue
        new.append(mapped)
        if change.base_type in ONCE_PER_OPPORTUNITY:
            raised[change.base_type] = notification.id

    state = {
        "account_id": account_id,
        # A message that leaves a field out says nothing about it: keep what was seen.
        "stage": opportunity.stage or (previous or {}).get("stage"),
        "is_won": _keep(opportunity.is_won, previous, "is_won"),
        "is_closed": _keep(opportunity.is_closed, previous, "is_closed"),
        "changed_at": _latest(opportunity.changed_at, previous),
        "raised": raised,
        "notifications": _remember(previous, notification.id, new),
    }
    if state != previous:
        await context.state.put(key, state)
    if replay or new:
        return [*replay, *new]
    return [_ignored(base, _unchanged_reason(opportunity, previous, raised, mapping), label)]


def _keep(value: bool | None, previous: Mapping[str, Any] | None, name: str) -> bool | None:
    return value if value is not None else (previous or {}).get(name)


def _opportunity_changes(
    opportunity: Opportunity,
    previous: Mapping[str, Any] | None,
    raised: Mapping[str, str],
    mapping: Mapping[str, Any],
) -> list[Change]:
    """What differs from the last state seen. Outcomes are raised once per opportunity."""
    won, lost = opportunity.won(mapping), opportunity.lost(mapping)
    changes: list[Change] = []
    first_sight = previous is None
    if first_sight and (not (won or lost) or mapping.get("created_on_first_sight_of_closed", True)):
        changes.append(Change("opportunity_created", f"first sight of {opportunity.id}"))
    stage_moved = opportunity.stage is not None and (
        first_sight or opportunity.stage != (previous or {}).get("stage")
    )
    changes.extend(
        stage_and_outcome(
            opportunity,
            mapping,
            stage_moved=stage_moved,
            won=bool(won) and "closed_won" not in raised,
            lost=bool(lost) and "closed_lost" not in raised,
            live=opportunity.live(mapping) and "go_live" not in raised,
        )
    )
    return changes


def _opportunity_event(
    message: OutboundMessage,
    notification: Notification,
    base: str,
    opportunity: Opportunity,
    account_id: str,
    account: Mapping[str, Any],
    change: Change,
    mapping: Mapping[str, Any],
    *,
    occurred_at: datetime,
) -> Mapped:
    type_, type_note = event_type(change.base_type, opportunity.kind(mapping), mapping)
    notes = [*opportunity.notes, *([type_note] if type_note else [])]
    name = opportunity.account_name(mapping) or account.get("name")
    if name is None and type_ == "opportunity_created":
        # Only opportunity_created creates accounts, and it needs a name to.
        name, note = fallback_account_name(account_id)
        notes.append(note)
    id_ = event_id(base, type_, change.to_stage)
    event = canonical_event(
        id=id_,
        type=type_,
        occurred_at=occurred_at,
        account=account_reference(account_id, name, account.get("domain")),
        opportunity=opportunity.reference(mapping),
        to_stage=change.to_stage,
        data={
            "organization_id": message.organization_id,
            "action_id": message.action_id,
            "notification_id": notification.id,
            "stage_name": opportunity.stage,
            "opportunity_type": opportunity.type,
        },
    )
    return Mapped(
        id_,
        event=event,
        label=f"Opportunity {opportunity.id}: {change.label}",
        note="; ".join(notes) or None,
    )


def _unchanged_reason(
    opportunity: Opportunity,
    previous: Mapping[str, Any] | None,
    raised: Mapping[str, str],
    mapping: Mapping[str, Any],
) -> str:
    """Why a notification raised nothing, in words an admin can act on."""
    stage = opportunity.stage
    before = (previous or {}).get("stage")
    if stage is None and opportunity.is_won is None and opportunity.is_closed is None:
        return (
            f"Opportunity {opportunity.id}: the message carries none of StageName, IsWon and "
            "IsClosed; add them to the outbound message's fields"
        )
    parts = []
    if stage is not None and stage != before and not opportunity.mapped_stage(mapping):
        moved = f"from {before!r} to {stage!r}" if before else f"to {stage!r}"
        parts.append(
            f"StageName changed {moved}, which is not mapped; map it in the source's "
            "mapping.stage_map (StageName → Quarterback stage) or ignore it"
        )
    holding = {
        "closed_won": opportunity.won(mapping),
        "closed_lost": opportunity.lost(mapping),
        "go_live": opportunity.live(mapping),
    }
    done = [
        f"{t} (notification {raised[t]})" for t, holds in holding.items() if holds and t in raised
    ]
    if done:
        parts.append(f"already raised once for this opportunity: {', '.join(done)}")
    if not parts:
        parts.append(
            f"nothing that raises an event changed since the last message (StageName "
            f"{stage or before!r})"
        )
    return f"Opportunity {opportunity.id}: " + "; ".join(parts)


async def _map_account(
    message: OutboundMessage,
    notification: Notification,
    base: str,
    mapping: Mapping[str, Any],
    context: AdapterContext,
    received_at: datetime,
) -> list[Mapped]:
    """Remember the account's name and domain (opportunity events use them to create it) and
    raise go_live / churned when a mapped Account field becomes true."""
    record = AccountRecord.parse(notification.fields, notification.where)
    label = f"Account {record.id}" + (f" {record.name!r}" if record.name else "")
    key = f"account:{record.id}"
    previous = await context.state.get(key)
    replay = _replayed(previous, notification.id)
    if _stale(record.changed_at, previous) is not None:
        return replay or [
            _ignored(
                base,
                f"Account {record.id}: an older message retried out of order; nothing to do",
                label,
            )
        ]
    flags = record.flags(mapping)
    before: Mapping[str, Any] = (previous or {}).get("flags") or {}
    new: list[Mapped] = []
    replayed_ids = {m.dedupe_key for m in replay}
    for type_, holds in flags.items():
        if not holds or before.get(type_):
            continue  # raised when the condition becomes true, not while it stays true
        id_ = event_id(base, type_)
        if id_ in replayed_ids:
            continue
        field_name = mapping.get(f"account_{type_}_field")
        event = canonical_event(
            id=id_,
            type=type_,
            occurred_at=record.changed_at or received_at,
            account=account_reference(
                record.id,
                record.name or (previous or {}).get("name"),
                record.domain or (previous or {}).get("domain"),
            ),
            data={
                "organization_id": message.organization_id,
                "action_id": message.action_id,
                "notification_id": notification.id,
                str(field_name): record.fields.get(str(field_name)),
            },
        )
        new.append(
            Mapped(
                id_,
                event=event,
                label=f"Account {record.id}: {field_name} {record.fields.get(str(field_name))!r}",
            )
        )
    state = {
        "name": record.name or (previous or {}).get("name"),
        "domain": record.domain or (previous or {}).get("domain"),
        "flags": {**before, **flags},
        "changed_at": _latest(record.changed_at, previous),
        "notifications": _remember(previous, notification.id, new),
    }
    if state != previous:
        await context.state.put(key, state)
    if replay or new:
        return [*replay, *new]
    if not flags:
        reason = (
            "Account notifications raise no event by themselves (the account's Name and "
            "Website are kept to name it in opportunity events); set "
            "mapping.account_go_live_field or mapping.account_churned_field to raise go_live "
            "or churned from an Account field"
        )
    else:
        reason = (
            f"Account {record.id}: none of the mapped fields "
            f"({', '.join(str(mapping.get(f'account_{t}_field')) for t in flags)}) became true"
        )
    return [_ignored(base, reason, label)]


register(SalesforceAdapter())
