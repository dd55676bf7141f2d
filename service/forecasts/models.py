"""A CSM's manual forecast overrides (an audit trail: the latest row per contract rules) and
forecast snapshots (the forecast as it stood, per renewal, for history and accuracy)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel

from service.db.models import created_at_field, id_field, json_field, workspace_field


class ForecastOverride(SQLModel, table=True):
    """One manual call on a renewal's probability; `probability` None clears the override."""

    __tablename__ = "forecast_overrides"
    __table_args__ = (Index("ix_forecast_overrides_contract", "workspace_id", "contract_id", "id"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    contract_id: uuid.UUID = Field(foreign_key="contracts.id", ondelete="CASCADE")
    account_id: uuid.UUID = Field(foreign_key="accounts.id", ondelete="CASCADE")
    probability: int | None = None
    reason: str = Field(max_length=2000)
    author: str = Field(max_length=200)
    created_at: datetime = created_at_field()


class ForecastSnapshot(SQLModel, table=True):
    """The forecast as it stood at one moment: taken on demand or by the weekly time rule.

    `settings` keeps the playbook's forecast section of the moment (weights, rates), so the
    snapshot's signals and reporting-currency amounts read the same forever after."""

    __tablename__ = "forecast_snapshots"
    __table_args__ = (Index("ix_forecast_snapshots_workspace", "workspace_id", "id"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    kind: str = Field(max_length=20)  # manual | scheduled
    taken_by: str = Field(max_length=200)
    as_of: date
    starts_on: date
    ends_on: date
    reporting_currency: str = Field(max_length=3)
    settings: dict[str, Any] = json_field(dict)
    renewals: int = 0
    created_at: datetime = created_at_field()


class ForecastSnapshotRow(SQLModel, table=True):
    """One renewal in a snapshot: the facts its signals read, its probability and category.

    ARR is kept in the contract's currency, in cents; the snapshot's rates turn it into the
    reporting currency exactly (a converted amount need not be a whole number of cents)."""

    __tablename__ = "forecast_snapshot_rows"
    __table_args__ = (Index("ix_forecast_snapshot_rows_contract", "workspace_id", "contract_id"),)

    snapshot_id: uuid.UUID = Field(
        foreign_key="forecast_snapshots.id", ondelete="CASCADE", primary_key=True
    )
    contract_id: uuid.UUID = Field(primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", ondelete="CASCADE")
    account_id: uuid.UUID
    account_name: str = Field(max_length=300)
    renewal_date: date
    currency: str = Field(max_length=3)
    arr_cents: int = Field(sa_type=BigInteger)
    status: str = Field(max_length=20)
    segment: str = Field(max_length=20)
    stage: str = Field(max_length=40)
    owner_id: str | None = Field(default=None, max_length=200)
    owner_name: str | None = Field(default=None, max_length=200)
    probability: int
    category: str = Field(max_length=20)
    # The signal facts (service.forecasts.service._renewals), to explain what moved later.
    auto_renew: int
    outcomes_achieved: int
    outcomes_missed: int
    plan_health: int | None = None
    stuck: int
    overdue_tasks: int
    escalations: int
    renewal_passed: int
    renewal_soon: int
    renewal_opportunity: str | None = Field(default=None, max_length=20)
    override: int | None = None
    stage_effect: int
