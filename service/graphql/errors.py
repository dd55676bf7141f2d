"""GraphQL errors as clients see them: the domain error's message and a stable
`extensions.code` (the same code REST puts in its problem body), never a stack trace."""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from graphql import GraphQLError
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, OperationalError
from strawberry.types import ExecutionContext

from service.errors import InvalidInput, QuarterbackError

logger = logging.getLogger("quarterback.graphql")

# Validation failures of the query itself, by the start of graphql-core's/Strawberry's message.
_QUERY_LIMITS = (
    ("exceeds maximum operation depth", "query_too_deep"),
    ("aliases found. allowed", "too_many_aliases"),
    ("document contains more than", "query_too_large"),
    ("introspection", "introspection_disabled"),
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def invalid_input(exc: ValidationError, prefix: str = "input") -> InvalidInput:
    """A pydantic validation error of a GraphQL input, as REST words a 422."""
    errors = [
        {
            "field": ".".join([prefix, *(str(part) for part in error["loc"])]),
            "in": "arguments",
            "message": error["msg"],
        }
        for error in exc.errors()
    ]
    first = errors[0]
    detail = f"{first['field']}: {first['message']}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return InvalidInput(detail, errors=errors)


def _query_code(message: str) -> str:
    lowered = message.lower()
    for fragment, code in _QUERY_LIMITS:
        if fragment in lowered:
            return code
    return "invalid_query"


def rewrite(error: GraphQLError) -> None:
    """Give the error a client-facing message and `extensions.code`, in place."""
    original = error.original_error
    if isinstance(original, ValidationError):
        original = invalid_input(original)
    if isinstance(original, QuarterbackError):
        error.message = original.detail
        error.extensions = {
            "code": original.code,
            "status": original.status,
            **_jsonable(original.extra),
        }
    elif isinstance(original, IntegrityError):
        logger.info("integrity conflict: %s", original.orig)
        error.message = "the change clashes with a concurrent change; retry"
        error.extensions = {"code": "conflict", "status": 409}
    elif isinstance(original, OperationalError):
        logger.warning("database unavailable: %s", original.orig)
        error.message = "the database is busy; retry"
        error.extensions = {"code": "service_unavailable", "status": 503}
    elif original is not None and error.path is not None:
        logger.error("unhandled error in %s", error.path, exc_info=original)
        error.message = "an unexpected error occurred"
        error.extensions = {"code": "internal_error", "status": 500}
    elif not (error.extensions or {}).get("code"):
        # The query itself: syntax, unknown fields, wrong argument types, limits.
        error.extensions = {**(error.extensions or {}), "code": _query_code(error.message)}


def process_errors(errors: list[GraphQLError], _: ExecutionContext | None = None) -> None:
    for error in errors:
        rewrite(error)
