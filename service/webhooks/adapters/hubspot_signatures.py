"""HubSpot's request signatures (developers.hubspot.com, "Validating requests").

- v3, sent with every app request: base64(HMAC-SHA256(client secret, method + URI +
  body + X-HubSpot-Request-Timestamp)), where the URI is the URL HubSpot called with a
  fixed set of %-escapes decoded. Timestamps older than 5 minutes are refused.
- v1 (sha256 hex of secret + body) and v2 (sha256 hex of secret + method + URI + body)
  carry no timestamp and can be replayed: a source accepts them only when its mapping
  lists them, and never when v3 headers are present (no downgrade).

`sign_v3` and `signed_headers` sign like HubSpot does, for `quarterback webhooks sign`,
the docs and the tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

from service.webhooks.adapters.base import Delivery, VerificationFailed

MAX_AGE = timedelta(minutes=5)
# HubSpot's clock may run a little ahead of ours; a timestamp further ahead than this is
# not a skew but a request signed to be replayed later.
MAX_AHEAD = timedelta(minutes=1)

SIGNATURE_V3 = "X-HubSpot-Signature-v3"
REQUEST_TIMESTAMP = "X-HubSpot-Request-Timestamp"
SIGNATURE_LEGACY = "X-HubSpot-Signature"
SIGNATURE_VERSION = "X-HubSpot-Signature-Version"

# The escapes HubSpot decodes in the URI it signs for v3 (and only these; `%20`, `%26`,
# `%3D` … stay encoded). %-escapes are case-insensitive (RFC 3986 §2.1).
_V3_DECODED_ESCAPES = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)


def verify_signature(delivery: Delivery, secrets: tuple[str, ...], allowed: frozenset[str]) -> None:
    """Raise VerificationFailed unless one of `secrets` signed `delivery` in a version
    `allowed` lists. v3 is checked whenever its headers are present, listed or not."""
    if not secrets:
        raise VerificationFailed("the source has no secret to check HubSpot signatures with")
    if delivery.header(SIGNATURE_V3) is not None or delivery.header(REQUEST_TIMESTAMP) is not None:
        # No downgrade: whatever else the request carries, v3 must hold.
        _verify_v3(delivery, secrets)
    else:
        _verify_legacy(delivery, secrets, allowed)


def v3_uri(url: str) -> str:
    """The URI as HubSpot signs it for v3: `%3A`→`:`, `%2F`→`/`, `%3F`→`?`, `%40`→`@`,
    `%21`→`!`, `%24`→`$`, `%27`→`'`, `%28`→`(`, `%29`→`)`, `%2A`→`*`, `%2C`→`,`,
    `%3B`→`;`, nothing else."""
    return _V3_DECODED_ESCAPES.sub(lambda match: chr(int(match.group(1), 16)), url)


def sign_v3(secret: str, method: str, url: str, body: bytes | str, timestamp_ms: int | str) -> str:
    """The `X-HubSpot-Signature-v3` HubSpot sends for this request to `url` (the public
    URL as called, escapes and all) at `timestamp_ms`."""
    message = b"".join(
        (method.upper().encode(), v3_uri(url).encode(), _bytes(body), str(timestamp_ms).encode())
    )
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_v1(secret: str, body: bytes | str) -> str:
    """The legacy `X-HubSpot-Signature` of `X-HubSpot-Signature-Version: v1`."""
    return hashlib.sha256(secret.encode() + _bytes(body)).hexdigest()


def sign_v2(secret: str, method: str, url: str, body: bytes | str) -> str:
    """The legacy `X-HubSpot-Signature` of `X-HubSpot-Signature-Version: v2` (the URI
    exactly as called, no decoding)."""
    return hashlib.sha256(
        secret.encode() + method.upper().encode() + url.encode() + _bytes(body)
    ).hexdigest()


def signed_headers(
    secret: str, url: str, body: bytes | str, timestamp_ms: int, method: str = "POST"
) -> dict[str, str]:
    """The headers HubSpot's Webhooks API sends with a delivery: v3 and, for older
    receivers, the v1 signature."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_V3: sign_v3(secret, method, url, body, timestamp_ms),
        REQUEST_TIMESTAMP: str(timestamp_ms),
        SIGNATURE_LEGACY: sign_v1(secret, body),
        SIGNATURE_VERSION: "v1",
    }


V3_SIGNATURE_LENGTH = 44


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def _epoch_ms(when: datetime) -> int:
    if when.tzinfo is None:  # the framework passes aware datetimes; naive ones are UTC
        when = when.replace(tzinfo=UTC)
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _matches(expected: str, received: str) -> bool:
    return hmac.compare_digest(expected.encode(), received.encode())


def _verify_v3(delivery: Delivery, secrets: tuple[str, ...]) -> None:
    signature = delivery.header(SIGNATURE_V3)
    timestamp = delivery.header(REQUEST_TIMESTAMP)
    if not signature:
        raise VerificationFailed(f"{REQUEST_TIMESTAMP} is present but {SIGNATURE_V3} is not")
    if not timestamp:
        raise VerificationFailed(f"{SIGNATURE_V3} is present but {REQUEST_TIMESTAMP} is not")
    timestamp = timestamp.strip()
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 16):
        raise VerificationFailed(f"{REQUEST_TIMESTAMP} is not epoch milliseconds")
    age_ms = _epoch_ms(delivery.received_at) - int(timestamp)
    if age_ms > MAX_AGE // timedelta(milliseconds=1):
        raise VerificationFailed(
            f"{REQUEST_TIMESTAMP} is more than 5 minutes old (a replay, or a clock that is off)"
        )
    if -age_ms > MAX_AHEAD // timedelta(milliseconds=1):
        raise VerificationFailed(f"{REQUEST_TIMESTAMP} is more than a minute in the future")
    # A proxy that form-decodes headers turns base64's `+` into a space; a leading one is
    # then lost with the header's surrounding whitespace, so pad back to the length of a
    # base64 HMAC-SHA256 (44 characters). Only the real signature matches either way.
    received = signature.strip().replace(" ", "+").rjust(V3_SIGNATURE_LENGTH, "+")
    for secret in secrets:
        expected = sign_v3(secret, delivery.method, delivery.url, delivery.body, timestamp)
        if _matches(expected, received):
            return
    raise VerificationFailed(
        f"{SIGNATURE_V3} does not match the request signed with the source's secret "
        f"({len(secrets)} tried); check the app's client secret and that the public URL "
        "(QB_PUBLIC_URL) is the target URL HubSpot calls"
    )


def _verify_legacy(delivery: Delivery, secrets: tuple[str, ...], allowed: frozenset[str]) -> None:
    legacy = sorted(allowed - {"v3"})
    if not legacy:
        raise VerificationFailed(
            f"no {SIGNATURE_V3} and {REQUEST_TIMESTAMP} headers; this source accepts only v3 "
            "signatures (list v1 or v2 in mapping.signature_versions for a legacy sender)"
        )
    signature = delivery.header(SIGNATURE_LEGACY)
    if not signature:
        raise VerificationFailed(f"no {SIGNATURE_V3} or {SIGNATURE_LEGACY} header")
    declared = (delivery.header(SIGNATURE_VERSION) or "").strip().lower()
    if declared and declared not in ("v1", "v2"):
        raise VerificationFailed(f"{SIGNATURE_VERSION} {declared!r} is not v1 or v2")
    if declared and declared not in allowed:
        raise VerificationFailed(
            f"{declared} signatures are not accepted by this source "
            f"(mapping.signature_versions is {sorted(allowed)})"
        )
    versions = [declared] if declared else legacy
    received = signature.strip().lower()
    for secret in secrets:
        for version in versions:
            if version == "v1":
                expected = sign_v1(secret, delivery.body)
            else:
                expected = sign_v2(secret, delivery.method, delivery.url, delivery.body)
            if _matches(expected, received):
                return
    raise VerificationFailed(
        f"{SIGNATURE_LEGACY} ({'/'.join(versions)}) does not match the request signed with "
        f"the source's secret ({len(secrets)} tried)"
    )
