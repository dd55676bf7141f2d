"""A CSM's manual forecast overrides, kept as an audit trail: the latest row per contract rules."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from service.db.models import created_at_field, id_field, workspace_field


class ForecastOverride(SQLModel, table=True):
    """One manual call on a renewal's probability; `probability` None clears the override."""

    __tablename__ = "forecast_overrides"
    __table_args__ = (Index("ix_forecast_overrides_contract", "workspace_id", "contract_id", "id"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    contract_id: uuid.UUID = Field(foreign_key="contracts.id", ondelete="CASCADE")
    account_id: uuid.UUID = Field(foreign_key="accounts.id", ondelete="CASCADE")
    probability: int | None = None
    reason: str = Field(max_length=2000)
    author: str = Field(max_length=200)
    created_at: datetime = created_at_field()
