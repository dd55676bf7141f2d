"""Column helpers shared by every table model."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field

import service.db.base  # noqa: F401  (the naming convention must exist before any table)
from service.db.types import UTCDateTime, utcnow, uuid7


def id_field() -> Any:
    return Field(default_factory=uuid7, primary_key=True)


def workspace_field(*, own_index: bool = True) -> Any:
    """The tenant key: of every query, and the distribution column should the schema ever be
    sharded by workspace. It leads an index in every table (tenant filters, and the cascade
    when a workspace is deleted). `own_index=False` where a composite index or unique
    constraint already starts with it: a second index would only cost every insert."""
    return Field(foreign_key="workspaces.id", ondelete="CASCADE", index=own_index, nullable=False)


def created_at_field() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def timestamp_field(nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable)


def json_field(default_factory: Any = list) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JSON, nullable=False))
