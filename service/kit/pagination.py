"""Cursor pagination on time-ordered (UUIDv7) primary keys."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from service.errors import InvalidInput

T = TypeVar("T")

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> uuid.UUID | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError):
        raise invalid_cursor() from None


def trim_page(
    rows: list[T], limit: int, id_of: Callable[[T], uuid.UUID]
) -> tuple[list[T], str | None]:
    """Drop the one extra row fetched to learn whether another page exists; return the cursor."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(id_of(rows[-1]))
    return rows, None


def invalid_cursor() -> InvalidInput:
    return InvalidInput(
        "cursor is not valid; pass the next_cursor of the previous page unchanged",
        errors=[{"field": "cursor", "in": "query", "message": "invalid cursor"}],
    )


def encode_keyset_cursor(value: Any, last_id: uuid.UUID) -> str:
    """A cursor for lists ordered by (value, id): both, as JSON, base64url."""
    if isinstance(value, datetime):
        value = value.isoformat()
    elif isinstance(value, Decimal):
        value = str(value)
    raw = json.dumps([value, str(last_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_keyset_cursor(cursor: str) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, last_id = json.loads(raw)
        return value, uuid.UUID(last_id)
    except (binascii.Error, ValueError, TypeError):
        raise invalid_cursor() from None
