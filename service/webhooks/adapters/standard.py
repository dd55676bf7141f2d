"""Standard Webhooks: canonical lifecycle events from relays, middleware and Apex.

Spec: https://github.com/standard-webhooks/standard-webhooks (spec/standard-webhooks.md,
v1.0.0). A delivery carries `webhook-id` (the message id, the same on every retry),
`webhook-timestamp` (integer Unix seconds of this attempt) and `webhook-signature` (a
space-separated list of `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`; the key is
the base64-decoded part of the `whsec_` secret). Any listed v1 signature matching any of
the source's secrets passes, which is how senders and we rotate secrets without downtime.

The body is one canonical event (schemas/lifecycle-event.schema.json) or
`{"events": [...]}` with up to 100 of them. A Salesforce Change Data Capture event relayed
as is (`ChangeEventHeader` at the top, under `payload`, or under `data.payload`) is mapped
by the Salesforce adapter's `cdc_to_events`.

Senders that cannot sign (a declarative Salesforce Flow HTTP callout) use
`mapping.auth = "header_token"`: the source's secret, sent as is in a header the Named
Credential sets. That has no replay protection; prefer signing where the sender can.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import importlib
import inspect
import json
import re
import secrets as random_secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from standardwebhooks.webhooks import Webhook

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
    # How the sender proves itself:
    # - "standard_webhooks": webhook-id / webhook-timestamp / webhook-signature, signed with
    #   the source's whsec_ secret (5-minute timestamp tolerance either way).
    # - "header_token": the source's secret itself in the `token_header` header, for senders
    #   that cannot compute an HMAC (Salesforce Flow HTTP callouts). No replay protection.
    "auth": "standard_webhooks",
    # The header that carries the secret when auth is "header_token" (case-insensitive).
    "token_header": "x-quarterback-token",
    # Options for Salesforce Change Data Capture events relayed through this source, laid
    # over the Salesforce adapter's own defaults (see salesforce.py for the keys).
    "salesforce": {},
}

TOLERANCE = timedelta(minutes=5)  # what the reference libraries use, both directions
MAX_BATCH = 100
MAX_PROBLEMS = 50  # schema problems listed in one 400 answer
_MAX_KEY = 200  # lifecycle_events.external_id
# The spec: ids must not contain "." (the signed content is dot-delimited), timestamps are
# integer seconds. The canonical integer form is required because it is what gets signed.
_MSG_ID = re.compile(r"^[^.\s]{1,256}$")
_TIMESTAMP = re.compile(r"^(0|[1-9][0-9]{0,11})$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "schemas" / "lifecycle-event.schema.json"


class StandardWebhooksAdapter:
    kind: ClassVar[str] = "standard"
    default_mapping: ClassVar[Mapping[str, Any]] = DEFAULT_MAPPING

    def verify(self, delivery: Delivery, source: SourceConfig) -> None:
        auth = source.mapping.get("auth", "standard_webhooks")
        if auth == "header_token":
            verify_token(delivery, source.secrets, _token_header(source.mapping))
        elif auth == "standard_webhooks":
            verify_signature(delivery, source.secrets)
        else:
            raise VerificationFailed(
                f"the source's mapping.auth is {auth!r}; use 'standard_webhooks' or 'header_token'"
            )

    async def map(
        self, delivery: Delivery, source: SourceConfig, context: AdapterContext
    ) -> list[Mapped]:
        signed = source.mapping.get("auth", "standard_webhooks") != "header_token"
        msg_id = delivery.header("webhook-id") if signed else None
        if signed and not msg_id:
            raise MalformedDelivery("missing webhook-id header: it keys the delivery")
        items, batch = _items(_json(delivery.body))

        cdc = [_cdc_payload(item) for item in items]
        # Every canonical event is checked before any is mapped: one 400 lists all problems.
        _validate(((i, item) for i, item in enumerate(items) if cdc[i] is None), batch)

        results: list[Mapped] = []
        for item, relayed in zip(items, cdc, strict=True):  # in the sender's order
            if relayed is not None:
                results.extend(await _cdc_events(relayed, source.mapping))
            else:
                results.append(_mapped(item, _dedupe_key(msg_id, item["id"], batch)))
        return results

    def acknowledge(self, results: list[Mapped]) -> Acknowledgement:
        return json_ack(results)

    def reject(self, status: int, message: str) -> Acknowledgement | None:
        return None  # problem+json


# ------------------------------------------------------------------------ verification


def verify_signature(delivery: Delivery, secrets: Sequence[str]) -> None:
    """Check a Standard Webhooks v1 signature against any of `secrets`.

    The timestamp is checked against `delivery.received_at`, not the wall clock, which is
    why this does not call `Webhook.verify` (that reads `datetime.now()`, and raises a bare
    ValueError on a signature entry without a comma or with bad base64). The HMAC itself
    is the library's: `Webhook(secret).sign(...)`, one instance per secret.
    """
    msg_id = delivery.header("webhook-id")
    stamp = delivery.header("webhook-timestamp")
    signature_header = delivery.header("webhook-signature")
    missing = [
        name
        for name, value in (
            ("webhook-id", msg_id),
            ("webhook-timestamp", stamp),
            ("webhook-signature", signature_header),
        )
        if not value
    ]
    if missing or msg_id is None or stamp is None or signature_header is None:
        raise VerificationFailed(f"missing Standard Webhooks header(s): {', '.join(missing)}")
    if not _MSG_ID.match(msg_id):
        raise VerificationFailed("webhook-id must be 1-256 characters without '.' or spaces")
    sent_at = _sent_at(stamp.strip())
    received_at = delivery.received_at
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    age = received_at - sent_at
    if age > TOLERANCE:
        raise VerificationFailed(
            f"webhook-timestamp is {int(age.total_seconds())} s older than the delivery; "
            f"more than {int(TOLERANCE.total_seconds())} s is refused as a possible replay"
        )
    if -age > TOLERANCE:
        raise VerificationFailed(
            f"webhook-timestamp is {int(-age.total_seconds())} s in the future; more than "
            f"{int(TOLERANCE.total_seconds())} s is refused (is the sender's clock right?)"
        )
    candidates = _v1_signatures(signature_header)
    if not candidates:
        raise VerificationFailed(
            "webhook-signature has no well-formed v1 (HMAC-SHA256) signature; "
            "v1a (ed25519) is not supported"
        )
    try:
        text = delivery.body.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationFailed(
            "the body is not UTF-8, so its signature cannot be checked"
        ) from None
    verifiers = [v for v in (_verifier(secret) for secret in secrets) if v is not None]
    if not verifiers:
        raise VerificationFailed("the source has no usable whsec_ secret")
    for verifier in verifiers:
        _, _, encoded = verifier.sign(msg_id=msg_id, timestamp=sent_at, data=text).partition(",")
        expected = base64.b64decode(encoded)
        matched = False
        for candidate in candidates:  # every entry is compared: no early exit inside a key
            matched |= hmac.compare_digest(expected, candidate)
        if matched:
            return
    raise VerificationFailed("no webhook-signature entry matches the source's secret")


def verify_token(delivery: Delivery, secrets: Sequence[str], header: str) -> None:
    """The source's secret, sent as is in `header` (for senders that cannot sign)."""
    token = delivery.header(header)
    if not token:
        raise VerificationFailed(f"missing {header} header (this source expects a token)")
    if not secrets:
        raise VerificationFailed("the source has no secret to compare the token with")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(token.encode(), secret.encode())
    if not matched:
        raise VerificationFailed(f"the {header} header does not match the source's secret")


def _token_header(mapping: Mapping[str, Any]) -> str:
    return str(mapping.get("token_header") or DEFAULT_MAPPING["token_header"]).lower()


def _sent_at(stamp: str) -> datetime:
    if not _TIMESTAMP.match(stamp):
        raise VerificationFailed("webhook-timestamp is not an integer number of seconds")
    try:
        return datetime.fromtimestamp(int(stamp), UTC)
    except (OverflowError, ValueError, OSError):
        raise VerificationFailed("webhook-timestamp is out of range") from None


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded v1 entries of a webhook-signature header; others are skipped (the
    spec's list may mix versions, and one malformed entry must not hide a good one)."""
    found = []
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if version != "v1" or not comma:
            continue
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(decoded) == hashlib.sha256().digest_size:
            found.append(decoded)
    return found


def _verifier(secret: str) -> Webhook | None:
    try:
        return Webhook(secret)
    except Exception:  # empty or undecodable secret: it cannot verify anything
        return None


def sign(
    secret: str | Sequence[str], msg_id: str, timestamp: int | datetime, body: bytes | str
) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, signed with one secret or several
    (several: one v1 entry each, as a sender does while rotating). For tests, the docs and
    `quarterback webhooks sign`."""
    if isinstance(timestamp, datetime):
        aware = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
        seconds = int(aware.timestamp())
    else:
        seconds = int(timestamp)
    sent_at = datetime.fromtimestamp(seconds, UTC)
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    keys = [secret] if isinstance(secret, str) else list(secret)
    signatures = [Webhook(key).sign(msg_id=msg_id, timestamp=sent_at, data=text) for key in keys]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": " ".join(signatures),
    }


def new_secret() -> str:
    """A fresh `whsec_` secret: 32 random bytes (the spec asks for 24 to 64)."""
    return "whsec_" + base64.b64encode(random_secrets.token_bytes(32)).decode()


# ------------------------------------------------------------------------ body


def _json(body: bytes) -> Any:
    return read_json(body)


def _items(payload: Any) -> tuple[list[Any], bool]:
    """The events of a body and whether it was a batch."""
    if not isinstance(payload, dict):
        raise MalformedDelivery(
            f"body is a JSON {type(payload).__name__}; send one lifecycle event (an object) "
            f'or {{"events": [...]}}'
        )
    if "events" not in payload:
        return [payload], False
    extra = sorted(set(payload) - {"events"})
    if extra:
        raise MalformedDelivery(
            f'a batch body has only the key "events"; unexpected: {", ".join(extra)}'
        )
    events = payload["events"]
    if not isinstance(events, list):
        raise MalformedDelivery(f'"events" is a JSON {type(events).__name__}, not an array')
    if len(events) > MAX_BATCH:
        raise MalformedDelivery(
            f"a batch holds at most {MAX_BATCH} events; this one has {len(events)}"
        )
    return events, True


def _cdc_payload(item: Any) -> dict[str, Any] | None:
    """The CDC `payload` (the object holding ChangeEventHeader) of a relayed event: the
    item itself, its `payload`, or CometD's `data.payload`."""
    if not isinstance(item, dict):
        return None
    data = item.get("data")
    for candidate in (
        item,
        item.get("payload"),
        data.get("payload") if isinstance(data, dict) else None,
    ):
        if isinstance(candidate, dict) and isinstance(candidate.get("ChangeEventHeader"), dict):
            return candidate
    return None


def _dedupe_key(msg_id: str | None, event_id: str, batch: bool) -> str:
    # The framework keys stored events on Mapped.dedupe_key, and the canonical event's `id`
    # must equal it. With signatures, the key is the webhook-id: the spec makes it the
    # idempotency key, the same on every retry, and it is signed, while the event's own id
    # is whatever the sender wrote. In a batch one webhook-id covers several events, so the
    # event id tells them apart. A header-token sender has no webhook-id (a Flow cannot
    # make one), so its event id is the key. Either way the sender's id is kept in
    # data.sender_event_id.
    if msg_id is None:
        key = f"stdwh-token:{event_id}"
    elif batch:
        key = f"stdwh:{msg_id}:{event_id}"
    else:
        key = f"stdwh:{msg_id}"
    if len(key) > _MAX_KEY:  # long ids: a stable digest, so a retry still matches
        return "stdwh:sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _mapped(item: dict[str, Any], key: str) -> Mapped:
    event = dict(item)
    event["id"] = key
    event["data"] = {**(item.get("data") or {}), "sender_event_id": item["id"]}
    return Mapped(key, event=event, label=str(item["type"]))


async def _cdc_events(payload: dict[str, Any], mapping: Mapping[str, Any]) -> list[Mapped]:
    convert = _cdc_mapper()
    if convert is None:
        raise MalformedDelivery(
            "the body is a Salesforce Change Data Capture event, but this build has no "
            "Salesforce CDC mapping (service.webhooks.adapters.salesforce.cdc_to_events)"
        )
    overrides = mapping.get("salesforce") or {}
    merged = {**_salesforce_defaults(), **(overrides if isinstance(overrides, Mapping) else {})}
    result = convert(payload, merged)
    if inspect.isawaitable(result):
        result = await result
    return list(result)


def _cdc_mapper() -> Any:
    """`cdc_to_events` of the Salesforce adapter (re-exported by salesforce.py, written in
    salesforce_mapping.py). Looked up at call time: another module owns it, and a build
    without it should still verify and map everything else, and say what is missing."""
    for name in ("salesforce", "salesforce_mapping"):
        try:
            module = importlib.import_module(f"service.webhooks.adapters.{name}")
        except ImportError:
            continue
        convert = getattr(module, "cdc_to_events", None)
        if convert is not None:
            return convert
    return None


def _salesforce_defaults() -> Mapping[str, Any]:
    from service.webhooks.adapters import get_adapter

    try:
        return get_adapter("salesforce").default_mapping
    except (ImportError, KeyError):
        return {}


# ------------------------------------------------------------------------ schema


def load_validator(path: Path = SCHEMA_PATH) -> Draft202012Validator:
    """The lifecycle event schema's validator. The schema lives at the repository root,
    next to the `service` package; without it this adapter cannot work, so say so."""
    try:
        schema = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RuntimeError(
            f"cannot load the lifecycle event schema from {path} ({error}); the standard "
            f"webhook adapter validates every event against it, so deploy schemas/ with "
            f"the service"
        ) from error
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_format_checker())


@functools.cache
def _validator() -> Draft202012Validator:
    return load_validator()


def _format_checker() -> FormatChecker:
    checker = FormatChecker()
    # jsonschema checks date-time only with the optional rfc3339-validator installed; the
    # schema needs it (occurred_at must carry an offset), so check it here.
    checker.checks("date-time", raises=ValueError)(_is_rfc3339)
    return checker


def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True  # formats apply to strings only
    match = _RFC3339.match(value)
    if not match:
        return False
    datetime.fromisoformat(value.upper())  # a real date and time? (raises ValueError)
    return True


def _validate(items: Iterable[tuple[int, Any]], batch: bool) -> None:
    """Every schema problem of every event, each with its JSON pointer, in one error."""
    problems: list[str] = []
    first_seen: dict[str, int] = {}
    validator = _validator()
    for index, item in items:
        prefix = f"/events/{index}" if batch else ""
        errors = sorted(validator.iter_errors(item), key=lambda e: [str(p) for p in e.path])
        for error in errors:
            problems.extend(_describe(error, prefix))
        if batch and isinstance(item, dict) and isinstance(item.get("id"), str):
            if item["id"] in first_seen:
                problems.append(
                    f"{prefix}/id: {item['id']!r} repeats /events/{first_seen[item['id']]}/id"
                )
            first_seen.setdefault(item["id"], index)
    if problems:
        # jsonschema reports each missing required property as its own error, each naming
        # them all: list every problem once, in order.
        problems = list(dict.fromkeys(problems))
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        tail = f"; and {more} more" if more else ""
        raise MalformedDelivery(
            "not a valid lifecycle event (schemas/lifecycle-event.schema.json): "
            + "; ".join(shown)
            + tail
        )


def _describe(error: ValidationError, prefix: str) -> list[str]:
    pointer = prefix + "".join(f"/{_escape(part)}" for part in error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        return [
            f"{pointer}/{_escape(name)}: is required"
            for name in error.validator_value
            if name not in instance
        ]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = set(error.schema.get("properties", {}))
        return [
            f"{pointer}/{_escape(name)}: is not allowed here"
            for name in instance
            if name not in allowed
        ]
    if error.validator == "anyOf" and pointer.endswith("/account"):
        return [f"{pointer}: name the account with id or external_id"]
    message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
    return [f"{pointer or '(the body)'}: {message}"]


def _escape(part: object) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


register(StandardWebhooksAdapter())
