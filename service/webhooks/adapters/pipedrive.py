"""Pipedrive webhooks (v2 and the legacy v1): HTTP Basic, one deal change per request.

Pipedrive does not sign its webhooks. The only credential it can send is the optional
"HTTP Auth username and password" of the webhook, as HTTP Basic on every request; the
source's secret is that password and `mapping.basic_user` the user name.

Pipedrive waits 10 s for a 2xx, retries three times (+3 s, +30 s, +150 s) and, after ten
failing first attempts, bans the webhook for 30 minutes and drops the events of the ban.
So mapping here is pure and fast: no lookups. Everything we need is in the body (v2's
`data` is the current deal, `previous` the changed fields; v1 sends both objects whole).

Two body shapes, told apart by their shape:
- v2: `{"meta": {"version": "2.0", "action": "create"|"change"|"delete", "entity": "deal",
  "id": <event UUID>, "company_id", "timestamp", ...}, "data": {...}|null,
  "previous": {...}|null}`
- v1: `{"v": 1, "event": "updated.deal", "meta": {"action": "updated", "object": "deal",
  "id": <the deal's id>, "company_id", "timestamp", "timestamp_micro", ...},
  "current": {...}|null, "previous": {...}|null, "retry": 0..3}`
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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

DEFAULT_MAPPING: dict[str, Any] = {
    # The HTTP Auth user name set on the Pipedrive webhook; its password is the source's
    # secret (any current or still-valid rotated secret is accepted).
    "basic_user": "quarterback",
    # Deal `stage_id`s that mean the customer went live (e.g. the "Live" stage of an
    # onboarding pipeline). Moving a deal into one of them raises go_live.
    "go_live_stage_ids": [],
    # Or a deal field whose value means go-live: a standard field name or a custom field's
    # 40-character key, e.g. "9dc80c50d78a15643bfc4ca79d76156a73a1ca0e". Null: not used.
    "go_live_field": None,
    # The values of `go_live_field` that mean go-live, compared as strings. For an enum
    # custom field that is the option id (e.g. "17"), for text the text itself.
    "go_live_values": [],
    # Deal stage_id (as a string) -> Quarterback stage key (e.g. {"7": "RENEW"}): moving a
    # deal into a mapped stage raises stage_changed with that `to_stage`.
    "stage_map": {},
}

# v1 action names -> v2's, so the mapping below speaks one language.
_V1_ACTIONS = {"added": "create", "updated": "change", "deleted": "delete", "merged": "merge"}
_AMOUNT = re.compile(r"^-?[0-9]{1,14}(\.[0-9]{1,2})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_KEY = 200  # lifecycle_events.external_id


@dataclass(frozen=True)
class Change:
    """One Pipedrive webhook, whatever its version."""

    version: int
    dedupe_key: str
    label: str  # "change.deal", "updated.deal": what Pipedrive called it
    action: str  # create | change | delete | merge (v1 names translated)
    entity: str
    current: dict[str, Any] | None
    previous: dict[str, Any] | None
    occurred_at: str  # ISO-8601 with offset
    company_id: str
    meta: Mapping[str, Any]


class PipedriveAdapter:
    kind: ClassVar[str] = "pipedrive"
    default_mapping: ClassVar[Mapping[str, Any]] = DEFAULT_MAPPING

    def verify(self, delivery: Delivery, source: SourceConfig) -> None:
        """Check the HTTP Basic credentials Pipedrive sends with every request."""
        user, password = _basic_credentials(delivery.header("authorization"))
        if not source.secrets:
            raise VerificationFailed("the source has no secret to check HTTP Basic against")
        expected_user = str(source.mapping.get("basic_user") or "").encode()
        # Both comparisons are always made, and every secret is tried, so the time taken
        # does not say which part was wrong.
        user_ok = hmac.compare_digest(user, expected_user)
        password_ok = False
        for secret in source.secrets:
            password_ok |= hmac.compare_digest(password, secret.encode())
        if not (user_ok and password_ok):
            raise VerificationFailed("wrong HTTP Basic user name or password")

    async def map(
        self, delivery: Delivery, source: SourceConfig, context: AdapterContext
    ) -> list[Mapped]:
        return [map_change(parse(delivery.body), source.mapping)]

    def acknowledge(self, results: list[Mapped]) -> Acknowledgement:
        return json_ack(results)

    def reject(self, status: int, message: str) -> Acknowledgement | None:
        return None  # Pipedrive only looks at the status code: problem+json is fine


def _basic_credentials(header: str | None) -> tuple[bytes, bytes]:
    if not header:
        raise VerificationFailed(
            "missing Authorization header: set the HTTP Auth user name and password on the "
            "Pipedrive webhook"
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise VerificationFailed("the Authorization header is not HTTP Basic")
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationFailed("the HTTP Basic credentials are not valid base64") from None
    user, colon, password = decoded.partition(b":")
    if not colon:
        raise VerificationFailed("the HTTP Basic credentials are not user:password")
    return user, password


# ---------------------------------------------------------------------------- parsing


def parse(body: bytes) -> Change:
    """Read a v2 or v1 body into a Change; MalformedDelivery says what is missing."""
    payload = read_json(body, " (Pipedrive sends one object)")
    if not isinstance(payload, dict):
        raise MalformedDelivery(
            f"body is a JSON {type(payload).__name__}, not the object Pipedrive sends"
        )
    meta = payload.get("meta")
    if not isinstance(meta, dict):
        raise MalformedDelivery("body has no `meta` object: not a Pipedrive webhook")
    if str(meta.get("version", "")).startswith("2") or (
        "entity" in meta and "data" in payload and "current" not in payload
    ):
        return _parse_v2(payload, meta)
    if "event" in payload or "current" in payload or "object" in meta:
        return _parse_v1(payload, meta)
    raise MalformedDelivery(
        'body is neither a Pipedrive webhooks v2 body (meta.version "2.0", data, previous) '
        "nor a v1 body (event, current, previous)"
    )


def _parse_v2(payload: dict[str, Any], meta: dict[str, Any]) -> Change:
    action = _required_text(meta, "action", "v2")
    entity = _required_text(meta, "entity", "v2")
    event_id = _required_text(meta, "id", "v2", what="the event's UUID")
    company_id = _required_text(meta, "company_id", "v2")
    data, previous = _object_or_null(payload, "data"), _object_or_null(payload, "previous")
    occurred_at = _timestamp(meta.get("timestamp"), "meta.timestamp")
    return Change(
        version=2,
        # v2's meta.id is the UUID of this event, the same on every attempt: a real key.
        dedupe_key=_bounded(f"pipedrive:{company_id}:{event_id}"),
        label=f"{action}.{entity}",
        action=action,
        entity=entity,
        current=data,
        previous=previous,
        occurred_at=occurred_at,
        company_id=company_id,
        meta=meta,
    )


def _parse_v1(payload: dict[str, Any], meta: dict[str, Any]) -> Change:
    event = payload.get("event")
    event_action, _, event_object = event.partition(".") if isinstance(event, str) else ("", "", "")
    action = str(meta.get("action") or event_action)
    entity = str(meta.get("object") or event_object)
    if not action or not entity:
        raise MalformedDelivery("v1 body names no action and object (meta.action, meta.object)")
    object_id = _required_text(meta, "id", "v1", what="the object's id")
    company_id = _required_text(meta, "company_id", "v1")
    micro, seconds = _whole(meta.get("timestamp_micro")), _whole(meta.get("timestamp"))
    if micro is not None:
        stamp = str(micro)
        occurred_at = _from_micro(micro)
    elif seconds is not None:
        stamp = str(seconds)
        occurred_at = _timestamp(seconds, "meta.timestamp")
    else:
        raise MalformedDelivery("v1 body has no meta.timestamp_micro or meta.timestamp")
    # v1 has no event id: meta.id is the deal's id. The best we can do is the object and
    # the time of the change, which is weaker in two ways: two changes of the same deal in
    # the same microsecond (or second, when timestamp_micro is missing) collapse into one,
    # and nothing documents that a retry keeps the original timestamp (we rely on it). v1
    # also fires duplicate triggers for one edit, with different timestamps, that this key
    # cannot recognise. Prefer v2, whose meta.id is a real per-event UUID.
    key = f"pipedrive-v1:{company_id}:{entity}:{object_id}:{stamp}"
    current, previous = payload.get("current"), payload.get("previous")
    return Change(
        version=1,
        dedupe_key=_bounded(key),
        label=str(event) if isinstance(event, str) and event else f"{action}.{entity}",
        action=_V1_ACTIONS.get(action, action),
        entity=entity,
        # For `user` objects v1 sends a list; only deals matter here and they are objects.
        current=current if isinstance(current, dict) else None,
        previous=previous if isinstance(previous, dict) else None,
        occurred_at=occurred_at,
        company_id=company_id,
        meta=meta,
    )


def _required_text(meta: Mapping[str, Any], name: str, version: str, what: str = "") -> str:
    value = meta.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        detail = f" ({what})" if what else ""
        raise MalformedDelivery(f"{version} body has no meta.{name}{detail}")
    return str(value)


def _object_or_null(payload: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, dict):
        raise MalformedDelivery(f"`{name}` is a JSON {type(value).__name__}, not an object")
    return value


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    # isdigit() alone also admits "²" and other digits int() refuses.
    return isinstance(value, str) and value.isascii() and value.isdigit()


def _whole(value: Any) -> int | None:
    """An epoch number as Pipedrive sends it (int, or digits in a string)."""
    if not _is_number(value):
        return None
    try:
        return int(float(value)) if isinstance(value, float) else int(value)
    except (ValueError, OverflowError):  # NaN, ±Infinity
        return None


def _from_micro(micro: int) -> str:
    seconds, rest = divmod(micro, 1_000_000)
    try:
        return (datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest)).isoformat()
    except (ValueError, OverflowError, OSError):
        raise MalformedDelivery(f"meta.timestamp_micro {str(micro)[:40]} is not a time") from None


def _timestamp(value: Any, where: str) -> str:
    """An ISO-8601 string (v2), or epoch seconds/milliseconds (v1, some v2 samples)."""
    try:
        if _is_number(value):
            number = float(value)
            if number > 1e11:  # milliseconds
                number /= 1000
            return datetime.fromtimestamp(number, UTC).isoformat()
        if isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value.replace(" ", "T", 1))
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()
    except (ValueError, OverflowError, OSError):
        pass
    raise MalformedDelivery(f"{where} is not a timestamp: {str(value)[:40]!r}")


def _bounded(key: str) -> str:
    # Pipedrive's ids are short; ids this long are not Pipedrive's, and truncating would
    # make different events collide.
    if len(key) > _MAX_KEY:
        raise MalformedDelivery(f"meta ids are too long to key the event ({len(key)} chars)")
    return key


# ---------------------------------------------------------------------------- mapping


def map_change(change: Change, mapping: Mapping[str, Any]) -> Mapped:
    """Decide what one Pipedrive change means. Pure: no I/O, no clock."""
    if change.entity != "deal":
        return _ignored(
            change,
            f"Pipedrive {change.entity!r} events raise nothing: only deals do; "
            f"narrow the webhook's event_object to `deal`",
        )
    if change.action == "create":
        deal = _deal(change, change.current)
        return _event(change, deal, "opportunity_created")
    if change.action in ("delete", "merge"):
        merged = change.meta.get("merged_to_id")
        into = f" (merged into deal {merged})" if merged else ""
        return _ignored(change, f"deal {change.action}d{into}: Quarterback keeps the account")
    if change.action != "change":
        return _ignored(change, f"Pipedrive action {change.action!r} is not handled")
    deal = _deal(change, change.current)
    return _map_deal_change(change, deal, mapping)


def _map_deal_change(change: Change, deal: dict[str, Any], mapping: Mapping[str, Any]) -> Mapped:
    previous = change.previous or {}
    status_changed, old_status = _changed(deal, previous, "status")
    if status_changed and deal.get("status") == "won":
        return _event(change, deal, "closed_won")
    if status_changed and deal.get("status") == "lost":
        return _event(change, deal, "closed_lost")

    stage_changed, _ = _changed(deal, previous, "stage_id")
    stage = _text(deal.get("stage_id"))
    if stage_changed and stage in {_text(s) for s in _list(mapping.get("go_live_stage_ids"))}:
        return _event(change, deal, "go_live", data={"go_live_by": f"stage_id {stage}"})
    field = mapping.get("go_live_field")
    if field and _went_live(deal, previous, str(field), _list(mapping.get("go_live_values"))):
        return _event(change, deal, "go_live", data={"go_live_by": f"field {field}"})
    if stage_changed:
        stage_map = mapping.get("stage_map") or {}
        to_stage = stage_map.get(stage) if isinstance(stage_map, Mapping) else None
        if to_stage:
            return _event(change, deal, "stage_changed", to_stage=str(to_stage))
        return _ignored(
            change,
            f"deal stage_id {stage} is not mapped; map it in the source's mapping.stage_map "
            f"(stage id -> Quarterback stage) or mapping.go_live_stage_ids, or ignore it",
        )
    if status_changed:
        return _ignored(
            change,
            f"deal status changed from {old_status!r} to {deal.get('status')!r}; only won "
            f"and lost raise events",
        )
    touched = ", ".join(sorted(previous)) or "nothing"
    return _ignored(
        change,
        f"deal change touched {touched}; none of status, stage_id or the go-live field "
        f"({field or 'not set: mapping.go_live_field'}) changed in a mapped way",
    )


def _changed(deal: Mapping[str, Any], previous: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """Did `name` change? v2's `previous` holds only changed fields, v1's the whole deal:
    in both, a field changed when `previous` has it with another value."""
    if name not in previous:
        return False, None
    return previous[name] != deal.get(name), previous[name]


def _went_live(
    deal: Mapping[str, Any], previous: Mapping[str, Any], field: str, values: list[Any]
) -> bool:
    wanted = {_text(v) for v in values}
    had_before, before = _field(previous, field)
    has_now, now = _field(deal, field)
    # Only a change *into* a go-live value counts: v2 lists the field in `previous` only
    # when it changed, and an edit of some other field must not raise go_live again.
    return has_now and had_before and _matches(now, wanted) and not _matches(before, wanted)


def _field(obj: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """A standard field, a v1 custom field (top-level hash key), or a v2 custom field
    (`custom_fields.<key>`, a typed object like {"type": "enum", "id": 17})."""
    if name in obj:
        return True, _unwrap(obj[name])
    custom = obj.get("custom_fields")
    if isinstance(custom, Mapping) and name in custom:
        return True, _unwrap(custom[name])
    return False, None


def _unwrap(value: Any) -> Any:
    if isinstance(value, Mapping):
        if "value" in value:
            return value["value"]
        if "id" in value:
            return value["id"]
        if isinstance(value.get("values"), list):  # a `set` field: several options
            return [_unwrap(item) for item in value["values"]]
    return value


def _matches(value: Any, wanted: set[str]) -> bool:
    if isinstance(value, list):
        return any(_matches(item, wanted) for item in value)
    return value is not None and _text(value) in wanted


def _deal(change: Change, deal: dict[str, Any] | None) -> dict[str, Any]:
    if deal is None:
        where = "data" if change.version == 2 else "current"
        raise MalformedDelivery(f"{change.label} has no `{where}` deal object")
    if deal.get("id") is None:
        fallback = change.meta.get("entity_id") or (
            change.meta.get("id") if change.version == 1 else None
        )
        if fallback is None:
            raise MalformedDelivery(f"{change.label}: the deal has no id")
        deal = {**deal, "id": fallback}
    return deal


# ---------------------------------------------------------------------------- events


def _event(
    change: Change,
    deal: Mapping[str, Any],
    event_type: str,
    *,
    to_stage: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> Mapped:
    account, note = _account(deal)
    event: dict[str, Any] = {
        "id": change.dedupe_key,
        "type": event_type,
        "occurred_at": change.occurred_at,
        "account": account,
        "opportunity": _opportunity(deal),
        "data": _data(change, deal, data),
    }
    if to_stage is not None:
        event["to_stage"] = to_stage
    return Mapped(change.dedupe_key, event=event, label=_label(change), note=note)


def _ignored(change: Change, reason: str) -> Mapped:
    return Mapped(change.dedupe_key, ignored_reason=reason, label=_label(change))


def _label(change: Change) -> str:
    changed = sorted(change.previous or {}) if change.action == "change" else []
    if change.version == 1 or not changed:  # v1's previous is the whole object
        return change.label
    return f"{change.label} ({', '.join(changed)})"


def _account(deal: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    org = deal.get("org_id")
    org_name = deal.get("org_name")
    if isinstance(org, Mapping):  # API-v1 style {"value": 87, "name": "..."} or {"id": ...}
        org_name = org.get("name") or org_name
        org = org.get("value", org.get("id"))
    if org is None or org == "" or isinstance(org, bool):
        deal_key = f"deal-{deal['id']}"
        note = (
            f"deal {deal['id']} has no organization; the account is keyed on the deal ({deal_key})"
        )
        return {"external_id": deal_key}, note
    account: dict[str, Any] = {"external_id": _text(org)[:200]}
    if isinstance(org_name, str) and org_name.strip():
        account["name"] = org_name.strip()[:200]
    return account, None


def _opportunity(deal: Mapping[str, Any]) -> dict[str, Any]:
    opportunity: dict[str, Any] = {"external_id": _text(deal["id"])[:200]}
    title = deal.get("title")
    if isinstance(title, str) and title:
        opportunity["name"] = title[:300]
    amount = _amount(deal.get("value"))
    if amount is not None:
        opportunity["amount"] = amount
    currency = deal.get("currency")
    if isinstance(currency, str) and _CURRENCY.match(currency.upper()):
        opportunity["currency"] = currency.upper()
    close_date = _close_date(deal)
    if close_date:
        opportunity["close_date"] = close_date
    return opportunity


def _amount(value: Any) -> str | None:
    """A deal value as the canonical decimal string ("62500.00"), never a float."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return None
    text = f"{amount:f}"
    return text if _AMOUNT.match(text) else None


def _close_date(deal: Mapping[str, Any]) -> str | None:
    # A closed deal's real close time beats the date it was expected to close.
    candidates = [deal.get("close_time"), deal.get("expected_close_date")]
    if deal.get("status") not in ("won", "lost"):
        candidates.reverse()
    for candidate in candidates:
        if isinstance(candidate, str) and len(candidate) >= 10:
            try:
                return date.fromisoformat(candidate[:10]).isoformat()
            except ValueError:
                continue
    return None


def _data(
    change: Change, deal: Mapping[str, Any], extra: Mapping[str, Any] | None
) -> dict[str, Any]:
    data = {
        "webhook_version": change.version,
        "company_id": change.company_id,
        "deal_id": _text(deal["id"]),
        "status": deal.get("status"),
        "stage_id": deal.get("stage_id"),
        "pipeline_id": deal.get("pipeline_id"),
        "change_source": change.meta.get("change_source"),
        **(extra or {}),
    }
    return {key: value for key, value in data.items() if value is not None}


def _text(value: Any) -> str:
    """Ids come as ints (v1, API) or strings (v2 meta): compare them as strings."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple | set) else [value]


register(PipedriveAdapter())
