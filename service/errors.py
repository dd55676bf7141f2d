"""Typed domain errors and their one rendering: `application/problem+json` (RFC 9457).

A domain error names the condition (`TransitionNotAllowed`), carries the fields a client
needs to recover (`allowed_stages`), and maps to exactly one HTTP status and one stable code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("quarterback.errors")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://quarterback.dev/problems/"


class QuarterbackError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return problem(self.status, self.code, self.title, self.detail, **self.extra)


class NotAuthenticated(QuarterbackError):
    """No API key, or one that does not exist or was revoked."""

    status, code, title = 401, "not_authenticated", "Not authenticated"


class PermissionDenied(QuarterbackError):
    """The key is valid but lacks the scope the operation needs."""

    status, code, title = 403, "permission_denied", "Permission denied"


class NotFound(QuarterbackError):
    """The resource does not exist in the caller's workspace."""

    status, code, title = 404, "not_found", "Not found"


class Conflict(QuarterbackError):
    """The request is valid but clashes with the current state."""

    status, code, title = 409, "conflict", "Conflict"


class TransitionNotAllowed(Conflict):
    """The account's current stage does not allow a move to the requested stage."""

    code, title = "transition_not_allowed", "Transition not allowed"


class StageChanged(Conflict):
    """The account moved on since the caller looked (optimistic `from_stage` check)."""

    code, title = "stage_changed", "Stage changed"


class TaskStatusNotAllowed(Conflict):
    """The task's status does not allow the requested change."""

    code, title = "task_status_not_allowed", "Task status change not allowed"


class InvalidInput(QuarterbackError):
    """The request is well-formed JSON but its values break a domain rule."""

    status, code, title = 422, "invalid_input", "Invalid input"


class ServiceUnavailable(QuarterbackError):
    """The database is unreachable or busy; the request can be retried."""

    status, code, title = 503, "service_unavailable", "Service unavailable"


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem_response(
    body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        errors.append(
            {
                "field": ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc),
                "in": loc[0] if loc else "body",
                "message": error.get("msg", "invalid"),
                "type": error.get("type", "value_error"),
            }
        )
    return errors


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("not_authenticated", "Not authenticated"),
    403: ("permission_denied", "Permission denied"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("invalid_input", "Invalid input"),
    429: ("too_many_requests", "Too many requests"),
}


def install_error_handlers(app: FastAPI) -> None:
    _document_problems(app)

    @app.exception_handler(QuarterbackError)
    async def _domain(_: Request, exc: QuarterbackError) -> JSONResponse:
        headers = None
        if isinstance(exc, NotAuthenticated):
            headers = {"WWW-Authenticate": "Bearer"}
        elif exc.status == 503:
            headers = {"Retry-After": "60"}
        return problem_response(exc.body(), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        detail = f"{first['field'] or 'request'}: {first['message']}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        body = problem(422, "validation_failed", "Request validation failed", detail, errors=errors)
        return problem_response(body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(problem(exc.status_code, code, title, detail), exc.headers)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        # Services check uniqueness first; this is the race they cannot see (two inserts at once).
        logger.info("integrity conflict: %s", exc.orig)
        body = problem(
            409, "conflict", "Conflict", "the change clashes with a concurrent change; retry"
        )
        return problem_response(body)

    @app.exception_handler(OperationalError)
    async def _operational(_: Request, exc: DBAPIError) -> JSONResponse:
        logger.warning("database unavailable: %s", exc.orig)
        body = problem(
            503, "service_unavailable", "Service unavailable", "the database is busy; retry"
        )
        return problem_response(body, {"Retry-After": "1"})

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(_: Request, exc: PoolTimeout) -> JSONResponse:
        # Every connection of this worker's pool stayed busy for QB_DB_POOL_TIMEOUT_SECONDS:
        # overload, not a fault of the request.
        logger.warning("no database connection free in time: %s", exc)
        body = problem(
            503, "service_unavailable", "Service unavailable", "the server is busy; retry"
        )
        return problem_response(body, {"Retry-After": "1"})

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if not (isinstance(sqlstate, str) and sqlstate.startswith("22")):
            return await _unexpected(request, exc)
        # SQLSTATE class 22, "data exception": PostgreSQL cannot hold a value the request
        # brought (a NUL character in text, NaN in JSON, a number out of range).
        logger.warning("value refused by the database: %s", exc.orig)
        reason = str(exc.orig).splitlines()[0][:200]
        body = problem(
            422,
            "unstorable_value",
            "Unstorable value",
            f"a value in the request cannot be stored ({reason}); text may not contain "
            "NUL characters, and numbers must be finite and in range",
        )
        return problem_response(body)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        body = problem(500, "internal_error", "Internal error", "an unexpected error occurred")
        return problem_response(body)


# --- the OpenAPI document says what the handlers above answer ------------------------------

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error (RFC 9457). `code` is stable; some codes add fields of their own.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Each problem with the request: where (`field` and `in`, or a "
            "JSON `pointer`) and what.",
            "items": {"type": "object"},
        },
    },
}
_ERROR_RESPONSES = {
    400: "The body cannot be read as JSON.",
    401: "No API key, or one that does not exist or was revoked.",
    403: "The API key lacks the scope this operation needs.",
    404: "Not found in the API key's workspace.",
    409: "The request clashes with the current state, or with a concurrent change (retry).",
    413: "The body is over the size limit.",
    422: "The request breaks a rule: `errors` says where and what.",
    503: "The database is busy or unreachable; retry after `Retry-After` seconds.",
}
_WRITES = {"post", "put", "patch", "delete"}


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Add the errors every `/v1` operation can answer, as problem+json, to an OpenAPI
    document: 401/403 (every `/v1` route needs a key with a scope), 404 (a path or a body
    naming a resource), 409 (writes: a state clash or a concurrent change), 400/413 (a body), 422
    (parameters or a body; FastAPI's own 422 is replaced, this app never answers it) and
    503 (the database). What an operation already documents keeps its description."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in document.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            statuses = {401, 403, 422, 503}
            if "{" in path or "requestBody" in operation:  # bodies name resources too
                statuses.add(404)
            if method in _WRITES:
                statuses.add(409)
            if "requestBody" in operation:
                statuses |= {400, 413}
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                response = responses.setdefault(str(status), {})
                if response.get("description") in (None, "Validation Error"):
                    response["description"] = _ERROR_RESPONSES[status]
                response["content"] = content
    # FastAPI's validation error shapes, now referenced by nothing.
    for name in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{name}"' not in json.dumps(document):
            schemas.pop(name, None)
    return document


def _document_problems(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
