"""The contract between the ingestion endpoint and a CRM adapter.

An adapter is thin (DESIGN.md, "Adapters are thin"): it verifies a delivery the way its
sender signs it, parses the body, and maps each item to a canonical lifecycle event
(schemas/lifecycle-event.schema.json) or to an `ignored` item with a reason. It stores
nothing itself: the endpoint records and applies what it returns, in one transaction.

Verification runs before anything is stored and must be cheap (it is the DoS guard):
`verify` is synchronous and does no I/O. Mapping may do I/O through the context (HubSpot
looks deals up over its API; Salesforce compares with the last state it saw).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

import httpx


class VerificationFailed(Exception):
    """The delivery is not authentic (bad or missing signature, stale timestamp, unknown
    org, wrong credentials). Answered 401; nothing is stored. The message must never
    contain a secret."""


class MalformedDelivery(Exception):
    """The delivery is authentic but its body cannot be understood. Answered 400 with
    this message, which says what is wrong."""


@dataclass(frozen=True)
class Delivery:
    """One HTTP request as the sender made it."""

    method: str
    url: str  # the public URL the sender called: QB_PUBLIC_URL + path + query, as sent
    headers: Mapping[str, str]  # keys lower-cased
    body: bytes
    client_ip: str | None
    received_at: datetime

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class SourceConfig:
    """What an adapter knows about the source a delivery came to."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    kind: str
    # The current secret first, then rotated-out secrets still inside their grace period.
    secrets: tuple[str, ...]
    # The adapter's defaults overlaid with the source's own mapping (see `default_mapping`).
    mapping: Mapping[str, Any]
    api_base_url: str | None = None
    api_token: str | None = None


class StateStore(Protocol):
    """Last seen state of a sender's records, per source (for senders that only send the
    current state, like Salesforce outbound messages)."""

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def put(self, key: str, state: dict[str, Any]) -> None: ...


@dataclass
class AdapterContext:
    http: httpx.AsyncClient  # shared client for lookups; set timeouts per call
    state: StateStore
    now: datetime
    # Per-process cache the adapter may use for lookups (bounded by the adapter).
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Mapped:
    """One item of a delivery after mapping: a canonical event, or an ignored item."""

    # Unique per source for this real change; becomes the event's id, so a redelivery of
    # the same change is recognised and applied once.
    dedupe_key: str
    event: dict[str, Any] | None = None  # a canonical lifecycle event (its `id` = dedupe_key)
    ignored_reason: str | None = None  # why this item raises nothing (mapping miss, …)
    label: str = ""  # what the sender said, for ignored items ("deal.propertyChange dealname")
    note: str | None = None  # something the outcome should say (e.g. "account keyed on deal id")


@dataclass(frozen=True)
class Acknowledgement:
    status: int
    media_type: str
    body: bytes


class Adapter(Protocol):
    kind: ClassVar[str]
    # Mapping options and their defaults; a source's `mapping` overrides them key by key.
    default_mapping: ClassVar[Mapping[str, Any]]

    def verify(self, delivery: Delivery, source: SourceConfig) -> None:
        """Raise VerificationFailed unless the delivery is authentic. No I/O."""
        ...

    async def map(
        self, delivery: Delivery, source: SourceConfig, context: AdapterContext
    ) -> list[Mapped]:
        """Parse and map; raise MalformedDelivery for a body that cannot be understood."""
        ...

    def acknowledge(self, results: list[Mapped]) -> Acknowledgement:
        """The success answer the sender expects (Salesforce needs a SOAP Ack)."""
        ...

    def reject(self, status: int, message: str) -> Acknowledgement | None:
        """An error answer in the sender's format, or None for problem+json."""
        ...


# Escapes that decode to text no database column can keep: NUL (PostgreSQL refuses it in
# text) and UTF-16 surrogates (unpaired, they cannot be encoded at all). Paired surrogates
# are fine; the exact check runs only on bodies that have such an escape.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def read_json(body: bytes, sender: str = "") -> Any:
    """A JSON body, or MalformedDelivery saying why not: not UTF-8, not JSON, nested too
    deep, a number too long for Python, NaN or Infinity (not JSON, and PostgreSQL refuses
    them), or a NUL or unpaired surrogate in a string (no database column can store it).
    `sender` adds a hint to the message, e.g. " (Pipedrive sends one object)"."""
    try:
        # Decoded here, strictly: json.loads(bytes) lets encoded surrogates through.
        text = body.decode(json.detect_encoding(body))
        value = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise MalformedDelivery(f"body is not JSON{sender}: {error}") from None
    if _SUSPECT_ESCAPE.search(text):
        bad = _unstorable(value)
        if bad is not None:
            raise MalformedDelivery(
                f"body has a string with {bad}, which no database column can store"
            )
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number (RFC 8259)")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 reads as infinity, which no JSON column keeps
        raise ValueError(f"{text[:40]} is out of the range of a double")
    return number


def _unstorable(value: Any) -> str | None:
    """What in a decoded JSON value cannot be stored: a NUL, or an unpaired surrogate.
    A loop, not recursion: json.loads allows nesting deeper than the stack has room for."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a NUL character (\\u0000)"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "an unpaired UTF-16 surrogate (\\ud800-\\udfff)"
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def json_ack(results: list[Mapped]) -> Acknowledgement:
    body = json.dumps({"received": len(results)}).encode()
    return Acknowledgement(200, "application/json", body)
