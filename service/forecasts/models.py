"""A CSM's manual forecast overrides (an audit trail: the latest row per contract rules),
forecast snapshots (the forecast as it stood, per renewal, for history and accuracy) and the
renewal facts the forecast reads (kept by service.forecasts.facts)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Identity, Index, Integer
from sqlmodel import Field, SQLModel

from service.db.models import created_at_field, id_field, json_field, workspace_field
from service.db.types import UTCDateTime


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


class RenewalFact(SQLModel, table=True):
    """One contract with everything its forecast signals read, as of `RenewalFactsState.as_of`.

    Written only by service.forecasts.facts from the live tables; the forecast reads this one
    table instead of joining seven. Date-dependent signals that the stored dates answer
    (stuck in stage, renewal soon or passed) are computed when the forecast is read; those
    that need other rows as of a day (overdue tasks, plan health) are stored for that day."""

    __tablename__ = "renewal_facts"
    __table_args__ = (
        Index("ix_renewal_facts_workspace_renewal", "workspace_id", "renewal_date"),
        Index("ix_renewal_facts_workspace_owner", "workspace_id", "owner_id"),
    )

    contract_id: uuid.UUID = Field(foreign_key="contracts.id", ondelete="CASCADE", primary_key=True)
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    account_id: uuid.UUID
    account_name: str = Field(max_length=200)
    renewal_date: date
    currency: str = Field(max_length=3)
    arr_cents: int = Field(sa_type=BigInteger)
    status: str = Field(max_length=20)
    auto_renew: int
    segment: str = Field(max_length=20)
    stage: str = Field(max_length=40)
    stage_entered_at: datetime = Field(sa_type=UTCDateTime)
    owner_id: str | None = Field(default=None, max_length=200)
    owner_name: str | None = Field(default=None, max_length=200)
    outcomes_achieved: int
    outcomes_missed: int
    plan_health: int | None = None
    overdue_tasks: int
    escalations: int
    renewal_opportunity: str | None = Field(default=None, max_length=20)
    override: int | None = None


class RenewalFactsState(SQLModel, table=True):
    """Which day, and which renewal department's owners, a workspace's renewal facts hold,
    and when they were last read."""

    __tablename__ = "renewal_facts_state"

    workspace_id: uuid.UUID = Field(
        foreign_key="workspaces.id", ondelete="CASCADE", primary_key=True
    )
    as_of: date
    renewal_owner: str = Field(max_length=40)
    refreshed_at: datetime = created_at_field()
    # The last day a forecast read them: the daily timer stops a week after it
    # (service.forecasts.facts_schedule).
    read_on: date | None = None


class RenewalFactsStale(SQLModel, table=True):
    """An account whose renewal facts changed since they were last read: database triggers on
    the tables the facts come from add it, in the transaction of the change.

    No unique key on the account, on purpose: two transactions that change the same account
    would otherwise queue behind each other's uncommitted mark. A trigger adds a mark only
    where none is committed, so duplicates are rare and harmless."""

    __tablename__ = "renewal_facts_stale"
    __table_args__ = (Index("ix_renewal_facts_stale_account", "workspace_id", "account_id"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), Identity(), primary_key=True
        ),
    )
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    account_id: uuid.UUID
