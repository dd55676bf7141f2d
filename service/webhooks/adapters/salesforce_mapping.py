"""What Salesforce records mean to Quarterback: ids, field values, and the events they raise.

Shared by the outbound-message adapter (salesforce.py, which diffs against the last state it
saw) and by `cdc_to_events` (Change Data Capture bodies relayed through a `standard` source,
whose header already says which fields changed). Everything here is pure.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from service.webhooks.adapters.base import MalformedDelivery, Mapped

DEFAULT_MAPPING: dict[str, Any] = {
    # The org's id (Setup → Company Information → Salesforce.com Organization ID), 15 or 18
    # characters. Required: outbound messages carry no signature, so a message is accepted
    # only when its OrganizationId is this org (and it came to this source's secret URL).
    "organization_id": None,
    # Optional IP allow-list: addresses or CIDRs (IPv4 or IPv6) Salesforce calls from, e.g.
    # its published ranges. Empty: any address.
    "allowed_ips": [],
    # StageName → Quarterback stage key. Reaching a mapped StageName raises stage_changed
    # with that `to_stage`; unmapped StageNames raise nothing (the event says so).
    "stage_map": {},
    # Used only when the message carries neither IsWon nor IsClosed (add them to the
    # outbound message's fields: they follow the org's own stage definitions).
    "won_stages": ["Closed Won"],
    "lost_stages": ["Closed Lost"],
    # Go-live: an Opportunity field (e.g. a checkbox "Live__c", a picklist
    # "Onboarding_Status__c", a date "Go_Live_Date__c") and the values that mean live,
    # compared as Salesforce sends them ("true" for a checked box); "*" means any non-empty
    # value (for dates). Or StageName values of an onboarding stage. Raises go_live.
    "go_live_field": None,
    "go_live_values": ["true"],
    "go_live_stages": [],
    # Opportunity Type → opportunity kind (new | renewal | expansion). The standard picklist
    # is New Customer and Existing Customer - Upgrade / - Replacement / - Downgrade; a
    # replacement or downgrade re-contracts an existing customer, so it counts as a renewal.
    # Many orgs add a renewal value: the common names are listed too.
    "type_kinds": {
        "New Customer": "new",
        "Existing Customer - Upgrade": "expansion",
        "Existing Customer - Replacement": "renewal",
        "Existing Customer - Downgrade": "renewal",
        "Existing Customer - Renewal": "renewal",
        "Renewal": "renewal",
    },
    # Per kind, the event raised instead of the generic one: a won renewal is renewal_won (the
    # playbook keeps the customer in Value) rather than closed_won (which would hand it back
    # to Implement); an upsell opens an expansion, not a new sale.
    "kind_events": {
        "renewal": {"closed_won": "renewal_won", "closed_lost": "renewal_lost"},
        "expansion": {"opportunity_created": "expansion_opportunity_created"},
    },
    # The first message about an opportunity that is already won or lost also raises
    # opportunity_created first: only opportunity_created creates the account, and the
    # playbook moves QUALIFY → ACQUIRE → IMPLEMENT one step at a time.
    "created_on_first_sight_of_closed": True,
    # An Opportunity field holding the account's name (e.g. a formula field
    # Account_Name__c = Account.Name), used to create the account. Without it, the name an
    # Account outbound message last showed is used, else "Salesforce account <AccountId>".
    "account_name_field": None,
    # Currency for amounts when the org is not multi-currency (no CurrencyIsoCode sent).
    "default_currency": None,
    # Account notifications raise nothing unless one of these is set: an Account field and
    # its values ("*" = any non-empty) raising go_live or churned when they become true.
    "account_go_live_field": None,
    "account_go_live_values": ["true"],
    "account_churned_field": None,
    "account_churned_values": ["true"],
}

# Events raised at most once per opportunity: a reopened and re-won deal does not hand the
# customer over a second time, and a retried older message cannot raise them again.
ONCE_PER_OPPORTUNITY = ("opportunity_created", "closed_won", "closed_lost", "go_live")
MAX_EVENT_ID = 200  # lifecycle_events.external_id
# schemas/lifecycle-event.schema.json's `type` values.
EVENT_TYPES = frozenset(
    {
        "opportunity_created",
        "closed_won",
        "closed_lost",
        "go_live",
        "renewal_window_opened",
        "renewal_won",
        "renewal_lost",
        "expansion_opportunity_created",
        "churned",
        "stage_changed",
    }
)

_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_CENT = Decimal("0.01")
_MAX_AMOUNT = Decimal(10) ** 14
_AVRO_UNION = frozenset({"string", "boolean", "double", "float", "long", "int"})


def merged(mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    """The defaults overlaid with a source's mapping, key by key."""
    return {**DEFAULT_MAPPING, **(mapping or {})}


# --- ids ---------------------------------------------------------------------------------


def _checksum(id15: str) -> str:
    """The 3-character suffix of an 18-character id: per block of 5, bit i = char i is A-Z."""
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, char in enumerate(id15[start : start + 5]) if "A" <= char <= "Z")
        suffix += _CHECKSUM_ALPHABET[bits]
    return suffix


def id18(value: str | None) -> str | None:
    """The canonical 18-character form of a Salesforce id, or None if it is not one.

    A 15-character id is case-sensitive and gets its checksum. An 18-character id is
    case-insensitive: its suffix says which letters are upper case, so the case is restored
    from it (an id lower-cased by a spreadsheet still matches) and the suffix checked.
    """
    if not value or not _ID.match(value):
        return None
    if len(value) == 15:
        return value + _checksum(value)
    chars = list(value[:15])
    for block, code in enumerate(value[15:].upper()):
        bits = _CHECKSUM_ALPHABET.find(code)
        if bits < 0:
            return None
        for i in range(5):
            position = block * 5 + i
            upper = bool(bits >> i & 1)
            if upper and not chars[position].isalpha():
                return None  # the suffix claims a letter where there is a digit
            chars[position] = chars[position].upper() if upper else chars[position].lower()
    id15 = "".join(chars)
    return id15 + _checksum(id15)


def same_id(a: str | None, b: str | None) -> bool:
    """Whether two ids (15 or 18 characters, either) name the same record, in constant time."""
    canonical_a, canonical_b = id18(a), id18(b)
    if canonical_a is None or canonical_b is None:
        return False
    return hmac.compare_digest(canonical_a.encode(), canonical_b.encode())


# --- field values ------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _bool(fields: Mapping[str, Any], name: str, where: str) -> bool | None:
    value = fields.get(name)
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise MalformedDelivery(f"{where}: {name} is {value!r}, expected true or false")


def _date(fields: Mapping[str, Any], name: str, where: str) -> str | None:
    text = _text(fields.get(name))
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10] if "T" in text else text).isoformat()
    except ValueError:
        raise MalformedDelivery(
            f"{where}: {name} is {text!r}, not a date like 2027-03-31"
        ) from None


def _datetime(fields: Mapping[str, Any], name: str, where: str) -> datetime | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch_ms(value, f"{where}: {name}")  # Pub/Sub API: epoch milliseconds
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise MalformedDelivery(
            f"{where}: {name} is {value!r}, not a date-time like 2027-03-31T16:02:11.000Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _from_epoch_ms(value: int | float, what: str) -> datetime:
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (ValueError, OverflowError, OSError):  # NaN, ±Infinity, beyond year 1..9999
        raise MalformedDelivery(f"{what} is {str(value)[:40]}, not epoch milliseconds") from None


def _amount(value: Any, where: str, notes: list[str]) -> str | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise MalformedDelivery(f"{where}: Amount is {value!r}, not a number") from None
    if not amount.is_finite():
        raise MalformedDelivery(f"{where}: Amount is {value!r}, not a number")
    if abs(amount) >= _MAX_AMOUNT:
        notes.append(f"Amount {value} has more than 14 digits and was left out")
        return None
    return f"{amount.quantize(_CENT, rounding=ROUND_HALF_EVEN):f}"


def _domain(website: str | None) -> str | None:
    if not website:
        return None
    try:
        host = urlsplit(website if "//" in website else f"//{website}").hostname
    except ValueError:  # "http://[abc": not a URL, so no domain
        return None
    if not host:
        return None
    host = host.removeprefix("www.")
    return host if 0 < len(host) <= 253 else None


def _matches(value: Any, accepted: Any) -> bool:
    """Whether a field's value is one of the configured values ("*": any non-empty)."""
    text = _text(value if not isinstance(value, bool) else str(value).lower())
    if text is None:
        return False
    values = [str(v) for v in (accepted or [])]
    return "*" in values or text in values


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Opportunity:
    """The fields of one Opportunity as sent (only those the sender included)."""

    id: str
    fields: Mapping[str, Any]  # raw, by API name, for the mapped custom fields
    account_id: str | None
    name: str | None
    stage: str | None
    is_won: bool | None
    is_closed: bool | None
    amount: str | None
    currency: str | None
    close_date: str | None
    type: str | None
    changed_at: datetime | None  # LastModifiedDate, else SystemModstamp
    notes: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls, fields: Mapping[str, Any], where: str, mapping: Mapping[str, Any]
    ) -> Opportunity:
        record_id = id18(_text(fields.get("Id")))
        if record_id is None:
            raise MalformedDelivery(f"{where}: the Opportunity has no valid Id")
        account_text = _text(fields.get("AccountId"))
        account_id = id18(account_text)
        if account_text is not None and account_id is None:
            raise MalformedDelivery(f"{where}: AccountId {account_text!r} is not a Salesforce id")
        notes: list[str] = []
        currency = _text(fields.get("CurrencyIsoCode"))
        if currency is not None and not _CURRENCY.match(currency):
            raise MalformedDelivery(f"{where}: CurrencyIsoCode {currency!r} is not an ISO code")
        if currency is None and mapping.get("default_currency"):
            default = str(mapping["default_currency"]).upper()
            if _CURRENCY.match(default):
                currency = default
            else:
                notes.append(f"mapping.default_currency {default!r} is not a 3-letter ISO code")
        type_ = _text(fields.get("Type"))
        if type_ is not None and type_ not in (mapping.get("type_kinds") or {}):
            notes.append(
                f"Type {type_!r} is not in the source's mapping.type_kinds; the kind is left out"
            )
        return cls(
            id=record_id,
            fields=fields,
            account_id=account_id,
            name=_text(fields.get("Name")),
            stage=_text(fields.get("StageName")),
            is_won=_bool(fields, "IsWon", where),
            is_closed=_bool(fields, "IsClosed", where),
            amount=_amount(fields.get("Amount"), where, notes),
            currency=currency,
            close_date=_date(fields, "CloseDate", where),
            type=type_,
            changed_at=_datetime(fields, "LastModifiedDate", where)
            or _datetime(fields, "SystemModstamp", where),
            notes=tuple(notes),
        )

    def won(self, mapping: Mapping[str, Any]) -> bool | None:
        """IsWon when sent (it follows the org's stage definitions), else the won stages;
        None when the message says neither."""
        if self.is_won is not None:
            return self.is_won
        if self.is_closed is False:
            return False
        return None if self.stage is None else self.stage in (mapping.get("won_stages") or [])

    def lost(self, mapping: Mapping[str, Any]) -> bool | None:
        """Closed and not won: IsClosed/IsWon when sent, else the lost stages."""
        if self.is_closed is False or self.is_won is True:
            return False
        if self.is_closed is True:
            won = self.won(mapping)
            return None if won is None else not won
        if self.stage is None:
            return None
        return self.stage in (mapping.get("lost_stages") or [])

    def live(self, mapping: Mapping[str, Any]) -> bool:
        go_live_field = mapping.get("go_live_field")
        if go_live_field and _matches(
            self.fields.get(go_live_field), mapping.get("go_live_values")
        ):
            return True
        return self.stage is not None and self.stage in (mapping.get("go_live_stages") or [])

    def mapped_stage(self, mapping: Mapping[str, Any]) -> str | None:
        target = (mapping.get("stage_map") or {}).get(self.stage) if self.stage else None
        return str(target) if target else None

    def kind(self, mapping: Mapping[str, Any]) -> str | None:
        kind = (mapping.get("type_kinds") or {}).get(self.type) if self.type else None
        return kind if kind in ("new", "renewal", "expansion") else None

    def reference(self, mapping: Mapping[str, Any]) -> dict[str, Any]:
        """The event's `opportunity` object."""
        ref: dict[str, Any] = {"external_id": self.id}
        values = {
            "name": self.name[:300] if self.name else None,
            "amount": self.amount,
            "currency": self.currency,
            "close_date": self.close_date,
            "kind": self.kind(mapping),
        }
        ref.update({key: value for key, value in values.items() if value is not None})
        return ref

    def account_name(self, mapping: Mapping[str, Any]) -> str | None:
        name_field = mapping.get("account_name_field")
        return _text(self.fields.get(name_field)) if name_field else None


@dataclass(frozen=True)
class AccountRecord:
    """An Account outbound message's fields."""

    id: str
    fields: Mapping[str, Any]
    name: str | None
    domain: str | None
    changed_at: datetime | None

    @classmethod
    def parse(cls, fields: Mapping[str, Any], where: str) -> AccountRecord:
        record_id = id18(_text(fields.get("Id")))
        if record_id is None:
            raise MalformedDelivery(f"{where}: the Account has no valid Id")
        name = _text(fields.get("Name"))
        return cls(
            id=record_id,
            fields=fields,
            name=name[:200] if name else None,
            domain=_domain(_text(fields.get("Website"))),
            changed_at=_datetime(fields, "LastModifiedDate", where)
            or _datetime(fields, "SystemModstamp", where),
        )

    def flags(self, mapping: Mapping[str, Any]) -> dict[str, bool]:
        """The mapped Account conditions (go_live, churned) and whether each holds now."""
        flags: dict[str, bool] = {}
        for event_type in ("go_live", "churned"):
            name = mapping.get(f"account_{event_type}_field")
            if name:
                flags[event_type] = _matches(
                    self.fields.get(name), mapping.get(f"account_{event_type}_values")
                )
        return flags


# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One event a record change raises, before it becomes a canonical event."""

    base_type: str  # opportunity_created | closed_won | closed_lost | go_live | stage_changed
    label: str  # what the sender said that raised it
    to_stage: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def event_type(
    base_type: str, kind: str | None, mapping: Mapping[str, Any]
) -> tuple[str, str | None]:
    """The event a change raises for an opportunity of this kind (mapping.kind_events), and
    a note when the mapping names an event type Quarterback does not know (a typo there must
    not turn every delivery into a 400 that Salesforce retries for a day)."""
    by_kind = ((mapping.get("kind_events") or {}).get(kind) or {}) if kind else {}
    chosen = by_kind.get(base_type)
    if not chosen:
        return base_type, None
    if chosen not in EVENT_TYPES:
        return base_type, (
            f"mapping.kind_events.{kind}.{base_type} is {chosen!r}, not an event type; "
            f"{base_type} was raised"
        )
    return str(chosen), None


def event_id(base: str, type_: str, to_stage: str | None = None) -> str:
    """`{base}:{type}`, and the target for stage_changed: one message may move an opportunity
    to a stage and a redelivery of it (carrying newer data) to another."""
    key = f"{base}:{type_}" + (f":{to_stage}" if to_stage else "")
    if len(key) > MAX_EVENT_ID:
        raise MalformedDelivery(f"event id {key[:60]}… is longer than {MAX_EVENT_ID} characters")
    return key


def canonical_event(
    *,
    id: str,
    type: str,
    occurred_at: datetime,
    account: dict[str, Any],
    opportunity: dict[str, Any] | None = None,
    to_stage: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    when = occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=UTC)
    event: dict[str, Any] = {
        "id": id,
        "type": type,
        "occurred_at": when.isoformat(),
        "account": account,
    }
    if opportunity is not None:
        event["opportunity"] = opportunity
    if to_stage is not None:
        event["to_stage"] = to_stage
    if data:
        event["data"] = {key: value for key, value in data.items() if value is not None}
    return event


def account_reference(
    account_id: str, name: str | None = None, domain: str | None = None
) -> dict[str, Any]:
    ref: dict[str, Any] = {"external_id": account_id}
    if name:
        ref["name"] = name[:200]
    if domain:
        ref["domain"] = domain
    return ref


def fallback_account_name(account_id: str) -> tuple[str, str]:
    """A name to create an account with when the sender gave none, and the note saying so."""
    return (
        f"Salesforce account {account_id}",
        f"account named after its Salesforce id {account_id}: set mapping.account_name_field "
        "(e.g. a formula field Account.Name) or send Account outbound messages to name it",
    )


# --- Change Data Capture -----------------------------------------------------------------


def _cdc_body(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The change event's fields, from any of the shapes a relay may forward: the payload
    itself, CometD's `{schema, payload, event}`, or the older `{data: {payload}, channel}`."""
    body: Any = payload
    if isinstance(body, Mapping) and isinstance(body.get("data"), Mapping):
        body = body["data"]
    if isinstance(body, Mapping) and isinstance(body.get("payload"), Mapping):
        body = body["payload"]
    if not isinstance(body, Mapping) or not isinstance(body.get("ChangeEventHeader"), Mapping):
        raise MalformedDelivery(
            "not a Change Data Capture event: no ChangeEventHeader object (expected the event "
            "payload, {schema, payload, event} or {data: {payload}, channel})"
        )
    return body


def _unwrap(value: Any) -> Any:
    """Pub/Sub API bodies decoded from Avro keep nullable unions as {"string": "…"}."""
    if isinstance(value, Mapping) and len(value) == 1:
        [(kind, inner)] = value.items()
        if kind in _AVRO_UNION:
            return inner
    return value


def _header_text(header: Mapping[str, Any], name: str) -> str:
    value = header.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MalformedDelivery(f"ChangeEventHeader.{name} is missing or not a string")
    return value.strip()


def _header_int(header: Mapping[str, Any], name: str) -> int:
    value = header.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedDelivery(f"ChangeEventHeader.{name} is missing or not an integer")
    return value


def cdc_to_events(payload: Mapping[str, Any], mapping: Mapping[str, Any] | None) -> list[Mapped]:
    """Map one Opportunity change event (Change Data Capture) to canonical events.

    CDC is not pushed over HTTP: a relay (our subscriber, MuleSoft, Event Relay…) forwards
    each event through a `standard` source, which calls this. The header says which fields
    changed, so no state is needed: CREATE → opportunity_created (and closed_won /
    closed_lost / go_live / stage_changed for what the new record already is); UPDATE →
    closed_won when IsWon became true, closed_lost when IsClosed became true without IsWon,
    go_live when the go-live field or stage was set, stage_changed for a mapped StageName.

    An UPDATE carries only the changed fields, so it has no AccountId (nor Type) unless the
    relay adds them; without an AccountId the change is kept as ignored and says so. The ids
    are `salesforce-cdc:{transactionKey}:{sequenceNumber}` (plus the record id when one event
    names several records), then `:{event type}` per event.
    """
    mapping = merged(mapping)
    body = _cdc_body(payload)
    header: Mapping[str, Any] = body["ChangeEventHeader"]
    entity = _header_text(header, "entityName")
    change_type = _header_text(header, "changeType")
    transaction_key = _header_text(header, "transactionKey")
    sequence = _header_int(header, "sequenceNumber")
    committed = _from_epoch_ms(
        _header_int(header, "commitTimestamp"), "ChangeEventHeader.commitTimestamp"
    )
    record_ids = header.get("recordIds")
    if (
        not isinstance(record_ids, list)
        or not record_ids
        or not all(isinstance(r, str) and r for r in record_ids)
    ):
        raise MalformedDelivery("ChangeEventHeader.recordIds is missing or not a list of ids")
    changed_fields = header.get("changedFields") or []
    if not isinstance(changed_fields, list):
        raise MalformedDelivery("ChangeEventHeader.changedFields is not a list")
    base = f"salesforce-cdc:{transaction_key}:{sequence}"
    if len(base) > 120:
        raise MalformedDelivery("ChangeEventHeader.transactionKey is too long to be one")
    label = f"{entity}ChangeEvent {change_type}"

    if entity != "Opportunity":
        return [
            Mapped(
                base,
                ignored_reason=f"{entity} change events raise no lifecycle event; only "
                "Opportunity is mapped: stop relaying this object or ignore it",
                label=label,
            )
        ]
    if change_type.startswith("GAP_"):
        return [
            Mapped(
                base,
                ignored_reason=f"{change_type} is a gap event: Salesforce could not send the "
                "changed values; the relay must re-read the opportunity and send its state",
                label=label,
            )
        ]
    if change_type not in ("CREATE", "UPDATE"):
        return [
            Mapped(
                base,
                ignored_reason=f"{change_type} of an opportunity raises no lifecycle event",
                label=label,
            )
        ]

    fields = {name: _unwrap(value) for name, value in body.items() if name != "ChangeEventHeader"}
    # changedFields names what an UPDATE changed; a relay may add unchanged fields (AccountId,
    # Type) to the body, so the body's keys count only when the header does not say.
    changed = {str(name) for name in changed_fields} or set(fields)
    results: list[Mapped] = []
    for record_id in record_ids:
        key = base if len(record_ids) == 1 else f"{base}:{record_id}"
        if record_id.endswith("*"):
            results.append(
                Mapped(
                    key,
                    ignored_reason=f"recordIds {record_id!r} is a wildcard (a field type "
                    "conversion touched every opportunity): nothing to map per record",
                    label=label,
                )
            )
            continue
        where = f"change event {key}"
        opportunity = Opportunity.parse({**fields, "Id": record_id}, where, mapping)
        if change_type == "CREATE":
            changes = _created_changes(opportunity, mapping)
        else:
            changes = _updated_changes(opportunity, changed, mapping)
        results.extend(_cdc_mapped(key, label, opportunity, changes, committed, mapping))
    return results


def _created_changes(opportunity: Opportunity, mapping: Mapping[str, Any]) -> list[Change]:
    """What a newly seen opportunity raises: it exists, and whatever it already is."""
    won, lost = opportunity.won(mapping), opportunity.lost(mapping)
    changes: list[Change] = []
    if not (won or lost) or mapping.get("created_on_first_sight_of_closed", True):
        changes.append(Change("opportunity_created", f"new Opportunity {opportunity.id}"))
    changes.extend(
        stage_and_outcome(
            opportunity,
            mapping,
            stage_moved=True,
            won=won,
            lost=lost,
            live=opportunity.live(mapping),
        )
    )
    return changes


def _updated_changes(
    opportunity: Opportunity, changed: set[str], mapping: Mapping[str, Any]
) -> list[Change]:
    stage_moved = "StageName" in changed and opportunity.stage is not None
    if "IsWon" in changed or "IsClosed" in changed:
        won = opportunity.is_won is True
        # IsClosed became true and IsWon did not change (so it stayed false), or went false.
        lost = opportunity.is_closed is True and not opportunity.is_won
    else:
        won = stage_moved and opportunity.stage in (mapping.get("won_stages") or [])
        lost = stage_moved and opportunity.stage in (mapping.get("lost_stages") or [])
    go_live_field = mapping.get("go_live_field")
    live = bool(
        go_live_field
        and go_live_field in changed
        and _matches(opportunity.fields.get(go_live_field), mapping.get("go_live_values"))
    ) or (stage_moved and opportunity.stage in (mapping.get("go_live_stages") or []))
    return stage_and_outcome(
        opportunity, mapping, stage_moved=stage_moved, won=won, lost=lost, live=live
    )


def stage_and_outcome(
    opportunity: Opportunity,
    mapping: Mapping[str, Any],
    *,
    stage_moved: bool,
    won: bool | None,
    lost: bool | None,
    live: bool,
) -> list[Change]:
    """stage_changed, closed_won | closed_lost and go_live, in the order a customer lives them."""
    changes: list[Change] = []
    stage = opportunity.stage
    target = opportunity.mapped_stage(mapping)
    if stage_moved and target:
        changes.append(Change("stage_changed", f"StageName {stage!r}", to_stage=target))
    if won:
        changes.append(Change("closed_won", f"IsWon true (StageName {stage!r})"))
    elif lost:
        changes.append(Change("closed_lost", f"IsClosed true, IsWon false (StageName {stage!r})"))
    if live:
        changes.append(Change("go_live", _live_label(opportunity, mapping)))
    return changes


def _live_label(opportunity: Opportunity, mapping: Mapping[str, Any]) -> str:
    name = mapping.get("go_live_field")
    if name and _matches(opportunity.fields.get(name), mapping.get("go_live_values")):
        return f"{name} {opportunity.fields.get(name)!r}"
    return f"StageName {opportunity.stage!r}"


def _cdc_mapped(
    key: str,
    label: str,
    opportunity: Opportunity,
    changes: list[Change],
    committed: datetime,
    mapping: Mapping[str, Any],
) -> list[Mapped]:
    if not changes:
        stage = (
            f" (StageName {opportunity.stage!r} is not in mapping.stage_map)"
            if (opportunity.stage and not opportunity.mapped_stage(mapping))
            else ""
        )
        return [
            Mapped(
                key,
                ignored_reason=f"nothing that raises an event changed on Opportunity "
                f"{opportunity.id}{stage}",
                label=label,
            )
        ]
    if opportunity.account_id is None:
        return [
            Mapped(
                key,
                ignored_reason=f"Opportunity {opportunity.id} has no AccountId: UPDATE change "
                "events carry only the changed fields, so the relay must add the "
                "opportunity's AccountId (and Type) to the event",
                label=label,
            )
        ]
    kind = opportunity.kind(mapping)
    results = []
    for change in changes:
        type_, type_note = event_type(change.base_type, kind, mapping)
        notes = [*opportunity.notes, *([type_note] if type_note else [])]
        name = opportunity.account_name(mapping)
        if name is None and type_ == "opportunity_created":
            name, note = fallback_account_name(opportunity.account_id)
            notes.append(note)
        id_ = event_id(key, type_, change.to_stage)
        event = canonical_event(
            id=id_,
            type=type_,
            occurred_at=committed,
            account=account_reference(opportunity.account_id, name),
            opportunity=opportunity.reference(mapping),
            to_stage=change.to_stage,
            data={"stage_name": opportunity.stage, "opportunity_type": opportunity.type},
        )
        results.append(
            Mapped(
                id_,
                event=event,
                label=f"{label}: {change.label}",
                note="; ".join(notes) or None,
            )
        )
    return results
