"""Workspaces and API keys: creation, seeding of the lifecycle model, authentication."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.db.types import utcnow
from service.errors import InvalidInput, NotAuthenticated, NotFound
from service.kit.dates import is_valid_calendar, is_valid_timezone
from service.lifecycle.models import Department, Stage
from service.playbooks import document as playbook_document
from service.playbooks import service as playbooks_service
from service.workspaces.models import ApiKey, Workspace

SCOPES = ("admin", "write", "read", "forecast:read")
# A scope on the left grants everything on the right as well.
IMPLIED_SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "write": frozenset({"write", "read"}),
    "read": frozenset({"read"}),
    "forecast:read": frozenset({"forecast:read"}),
}
KEY_PREFIX = "qb_"
RENEWAL_QUARTERBACKS = ("csm", "sales", "revops")
UNSET = object()  # "not given", where None means "clear"


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def effective_scopes(scopes: Iterable[str]) -> frozenset[str]:
    granted: set[str] = set()
    for scope in scopes:
        granted |= IMPLIED_SCOPES.get(scope, frozenset())
    return frozenset(granted)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a workspace and the scopes of the key they presented."""

    workspace_id: uuid.UUID
    key_id: uuid.UUID
    key_name: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"api_key:{self.key_name}"


async def create_workspace(
    session: AsyncSession,
    *,
    name: str,
    renewal_quarterback: str = "csm",
    timezone: str = "UTC",
) -> Workspace:
    """Create a workspace with the default lifecycle model seeded from DESIGN.md."""
    name = name.strip()
    if not name:
        raise InvalidInput("workspace name must not be empty")
    _check_renewal_quarterback(renewal_quarterback)
    if not is_valid_timezone(timezone):
        raise InvalidInput(f"unknown time zone {timezone!r}; use an IANA name like Europe/Paris")
    workspace = Workspace(name=name, renewal_quarterback=renewal_quarterback, timezone=timezone)
    session.add(workspace)
    await session.flush()
    # A new workspace starts with the default playbook as version 1.
    await playbooks_service.publish(
        session,
        workspace_id=workspace.id,
        document=playbook_document.default_document(),
        actor="system",
        note="default playbook",
    )
    return workspace


def _check_renewal_quarterback(value: str) -> None:
    if value not in RENEWAL_QUARTERBACKS:
        allowed = ", ".join(RENEWAL_QUARTERBACKS)
        raise InvalidInput(f"renewal_quarterback must be one of {allowed}, not {value!r}")


async def get_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> Workspace:
    workspace = await session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound(f"workspace {workspace_id} not found")
    return workspace


async def update_workspace(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    name: str | None = None,
    renewal_quarterback: str | None = None,
    timezone: str | None = None,
    holiday_calendar: str | object | None = UNSET,
    fiscal_year_start_month: int | None = None,
) -> Workspace:
    workspace = await get_workspace(session, workspace_id)
    if fiscal_year_start_month is not None:
        if not 1 <= fiscal_year_start_month <= 12:
            raise InvalidInput(
                "fiscal_year_start_month is a month number, 1 (January) to 12 (December)",
                errors=[{"field": "fiscal_year_start_month", "in": "body", "message": "1 to 12"}],
            )
        workspace.fiscal_year_start_month = fiscal_year_start_month
    if name is not None:
        if not name.strip():
            raise InvalidInput("workspace name must not be empty")
        workspace.name = name.strip()
    if timezone is not None:
        if not is_valid_timezone(timezone):
            raise InvalidInput(f"unknown time zone {timezone!r}; use an IANA name")
        workspace.timezone = timezone
    if holiday_calendar is not UNSET:
        if holiday_calendar is not None and not (
            isinstance(holiday_calendar, str) and is_valid_calendar(holiday_calendar)
        ):
            raise InvalidInput(
                f"unknown holiday calendar {holiday_calendar!r}; use a country code such as "
                "US, GB or DE, optionally with a subdivision (US-CA), or null for none",
                errors=[{"field": "holiday_calendar", "in": "body", "message": "unknown"}],
            )
        workspace.holiday_calendar = holiday_calendar
    if renewal_quarterback is not None:
        _check_renewal_quarterback(renewal_quarterback)
        workspace.renewal_quarterback = renewal_quarterback
        # Stages whose playbook quarterback is `renewal_owner` follow this setting.
        await session.execute(
            update(Stage)
            .where(
                col(Stage.workspace_id) == workspace_id,
                col(Stage.quarterback_role) == playbook_document.RENEWAL_OWNER,
            )
            .values(
                quarterback=renewal_quarterback,
                quarterback_name=select(col(Department.name))
                .where(
                    col(Department.workspace_id) == workspace_id,
                    col(Department.key) == renewal_quarterback,
                )
                .scalar_subquery(),
            )
        )
    await session.flush()
    return workspace


async def create_api_key(
    session: AsyncSession, *, workspace_id: uuid.UUID, name: str, scopes: list[str]
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never shown again."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInput(
            f"scopes must be a non-empty list of {', '.join(SCOPES)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        workspace_id=workspace_id,
        name=name,
        key_hash=hash_key(raw_key),
        prefix=raw_key[:10],
        scopes=sorted(set(scopes)),
    )
    session.add(key)
    await session.flush()
    return key, raw_key


async def list_api_keys(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[ApiKey]:
    result = await session.execute(
        select(ApiKey).where(col(ApiKey.workspace_id) == workspace_id).order_by(col(ApiKey.id))
    )
    return list(result.scalars())


async def revoke_api_key(
    session: AsyncSession, *, workspace_id: uuid.UUID, key_id: uuid.UUID
) -> ApiKey:
    key = await session.scalar(
        select(ApiKey).where(col(ApiKey.workspace_id) == workspace_id, col(ApiKey.id) == key_id)
    )
    if key is None:
        raise NotFound(f"API key {key_id} not found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    return key


# Every request runs this: built once, executed on the session's connection.
_KEY_BY_HASH = select(
    col(ApiKey.id), col(ApiKey.workspace_id), col(ApiKey.name), col(ApiKey.scopes)
).where(col(ApiKey.key_hash) == bindparam("key_hash"), col(ApiKey.revoked_at).is_(None))


async def authenticate(session: AsyncSession, raw_key: str) -> Principal:
    connection = await session.connection()
    row = (await connection.execute(_KEY_BY_HASH, {"key_hash": hash_key(raw_key)})).first()
    if row is None:
        raise NotAuthenticated("the API key is unknown or was revoked")
    return Principal(
        workspace_id=row.workspace_id,
        key_id=row.id,
        key_name=row.name,
        scopes=effective_scopes(row.scopes),
    )
