"""Published playbook versions: every version is kept, the workspace points at the current."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db.models import created_at_field, id_field, json_field, workspace_field


class PlaybookVersion(SQLModel, table=True):
    __tablename__ = "playbook_versions"
    __table_args__ = (UniqueConstraint("workspace_id", "version"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    version: int
    name: str = Field(max_length=200)
    document: dict[str, Any] = json_field(dict)
    published_by: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=2000)
    published_at: datetime = created_at_field()
