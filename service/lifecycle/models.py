"""The lifecycle model of a workspace: departments and stages with their quarterbacks."""

from __future__ import annotations

import uuid

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db.models import id_field, json_field, workspace_field


class Department(SQLModel, table=True):
    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    key: str = Field(max_length=40)
    name: str = Field(max_length=100)


class Stage(SQLModel, table=True):
    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    key: str = Field(max_length=40)
    name: str = Field(max_length=100)
    position: int
    quarterback: str = Field(max_length=40)
    supporting: list[str] = json_field()
    # Forward moves need nothing; backward moves (re-implementation, nurture) need a reason.
    next_stages: list[str] = json_field()
    backward_stages: list[str] = json_field()
    entered_when: str = Field(default="", max_length=500)
