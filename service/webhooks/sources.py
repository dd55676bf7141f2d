"""Webhook sources: create, read, change (mapping versions), rotate secrets, delete."""

from __future__ import annotations

import base64
import secrets as secrets_module
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.db.types import utcnow
from service.errors import InvalidInput, NotFound
from service.webhooks import adapters
from service.webhooks.adapters.base import SourceConfig
from service.webhooks.models import WebhookMappingVersion, WebhookSource

MAX_GRACE = timedelta(days=30)
DEFAULT_GRACE = timedelta(hours=24)


def new_secret(kind: str) -> str:
    if kind == "standard":
        # Standard Webhooks secrets: whsec_ + base64 of 24 to 64 random bytes.
        return "whsec_" + base64.b64encode(secrets_module.token_bytes(32)).decode()
    return secrets_module.token_urlsafe(32)


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field, "in": "body", "message": message}])


def check_mapping(kind: str, mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse options the adapter does not know (a typo would silently do nothing) and
    values of the wrong type."""
    defaults = adapters.get_adapter(kind).default_mapping
    checked: dict[str, Any] = {}
    for key, value in mapping.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise _invalid(
                f"mapping.{key}", f"{kind} sources have no mapping option {key!r}; known: {known}"
            )
        default = defaults[key]
        if default is not None and value is not None and not isinstance(value, type(default)):
            raise _invalid(
                f"mapping.{key}",
                f"mapping.{key} must be a {type(default).__name__}, like its default {default!r}",
            )
        checked[key] = value
    validate = getattr(adapters.get_adapter(kind), "validate_mapping", None)
    if validate is not None:
        try:
            validate({**defaults, **checked})
        except ValueError as exc:
            raise _invalid("mapping", f"invalid {kind} mapping: {exc}") from None
    return checked


async def create_source(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    kind: str,
    name: str,
    secret: str | None,
    mapping: Mapping[str, Any] | None,
    api_base_url: str | None,
    api_token: str | None,
    namespace: str | None,
    actor: str | None,
) -> tuple[WebhookSource, str]:
    """Create a source; return it with its secret, which is shown this once."""
    if kind not in adapters.kinds():
        raise _invalid("kind", f"kind must be one of {', '.join(adapters.kinds())}")
    checked = check_mapping(kind, mapping or {})
    if kind == "hubspot" and not secret:
        raise _invalid(
            "secret",
            "HubSpot signs with your app's client secret: pass it as `secret` "
            "(HubSpot developer account → your app → Auth → Client secret)",
        )
    if kind == "salesforce" and not checked.get("organization_id"):
        raise _invalid(
            "mapping.organization_id",
            "Salesforce outbound messages are not signed: set mapping.organization_id to "
            "your org's id (Setup → Company Information) so other orgs are refused",
        )
    raw_secret = secret or new_secret(kind)
    source = WebhookSource(
        workspace_id=workspace_id,
        kind=kind,
        name=name,
        namespace=namespace or kind,
        mapping=checked,
        api_base_url=api_base_url,
        secret=raw_secret,
        api_token=api_token,
    )
    session.add(source)
    await session.flush()
    session.add(
        WebhookMappingVersion(
            workspace_id=workspace_id,
            source_id=source.id,
            version=1,
            mapping=checked,
            changed_by=actor,
        )
    )
    await session.flush()
    return source, raw_secret


async def get_source(
    session: AsyncSession, *, workspace_id: uuid.UUID, source_id: uuid.UUID
) -> WebhookSource:
    source = await session.scalar(
        select(WebhookSource).where(
            col(WebhookSource.workspace_id) == workspace_id, col(WebhookSource.id) == source_id
        )
    )
    if source is None:
        raise NotFound(f"webhook source {source_id} not found")
    return source


async def list_sources(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[WebhookSource]:
    result = await session.scalars(
        select(WebhookSource)
        .where(col(WebhookSource.workspace_id) == workspace_id)
        .order_by(col(WebhookSource.created_at))
    )
    return list(result)


async def update_source(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    source_id: uuid.UUID,
    changes: dict[str, Any],
    actor: str | None,
) -> WebhookSource:
    source = await get_source(session, workspace_id=workspace_id, source_id=source_id)
    if "mapping" in changes:
        mapping = check_mapping(source.kind, changes.pop("mapping") or {})
        if mapping != source.mapping:
            source.mapping = mapping
            source.mapping_version += 1
            session.add(
                WebhookMappingVersion(
                    workspace_id=workspace_id,
                    source_id=source.id,
                    version=source.mapping_version,
                    mapping=mapping,
                    changed_by=actor,
                )
            )
    for field in ("name", "api_base_url", "api_token", "enabled"):
        if field in changes:
            setattr(source, field, changes[field])
    source.updated_at = utcnow()
    await session.flush()
    _forget(source.id)
    return source


async def rotate_secret(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    source_id: uuid.UUID,
    secret: str | None,
    grace: timedelta,
) -> tuple[WebhookSource, str]:
    """A new secret; the old one keeps verifying for `grace` so senders can switch over."""
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise _invalid("grace_seconds", "grace_seconds must be between 0 and 30 days")
    source = await get_source(session, workspace_id=workspace_id, source_id=source_id)
    raw_secret = secret or new_secret(source.kind)
    source.previous_secret = source.secret
    source.previous_secret_expires_at = utcnow() + grace
    source.secret = raw_secret
    source.updated_at = utcnow()
    await session.flush()
    _forget(source.id)
    return source, raw_secret


async def delete_source(
    session: AsyncSession, *, workspace_id: uuid.UUID, source_id: uuid.UUID
) -> None:
    source = await get_source(session, workspace_id=workspace_id, source_id=source_id)
    await session.delete(source)
    await session.flush()
    _forget(source.id)


def _forget(source_id: uuid.UUID) -> None:
    from service.webhooks.ingest import forget_source  # ingest imports this module

    forget_source(source_id)


async def list_mapping_versions(
    session: AsyncSession, *, workspace_id: uuid.UUID, source_id: uuid.UUID
) -> list[WebhookMappingVersion]:
    await get_source(session, workspace_id=workspace_id, source_id=source_id)
    result = await session.scalars(
        select(WebhookMappingVersion)
        .where(
            col(WebhookMappingVersion.workspace_id) == workspace_id,
            col(WebhookMappingVersion.source_id) == source_id,
        )
        .order_by(col(WebhookMappingVersion.version).desc())
    )
    return list(result)


def config_of(source: WebhookSource, now: datetime) -> SourceConfig:
    """What the adapter sees: live secrets only, mapping merged over the defaults."""
    live = [source.secret]
    if (
        source.previous_secret
        and source.previous_secret_expires_at is not None
        and source.previous_secret_expires_at > now
    ):
        live.append(source.previous_secret)
    defaults = adapters.get_adapter(source.kind).default_mapping
    return SourceConfig(
        id=source.id,
        workspace_id=source.workspace_id,
        kind=source.kind,
        secrets=tuple(live),
        mapping={**defaults, **source.mapping},
        api_base_url=source.api_base_url,
        api_token=source.api_token,
    )


def ingestion_path(source: WebhookSource) -> str:
    return f"/webhooks/{source.id}"


__all__ = ["DEFAULT_GRACE", "config_of", "create_source"]
