"""Annual success plans: per account and contract year, up to three key outcomes on a
quarterly timeline, a touchpoint cadence, and the measurements that show progress."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db.models import created_at_field, id_field, json_field, workspace_field
from service.db.types import Quantity


class SuccessPlan(SQLModel, table=True):
    __tablename__ = "success_plans"
    __table_args__ = (UniqueConstraint("account_id", "contract_year"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    account_id: uuid.UUID = Field(foreign_key="accounts.id", ondelete="CASCADE")
    contract_year: int
    starts_on: date
    ends_on: date
    # [{quarter: 1-4, focus, description}]
    timeline: list[dict[str, Any]] = json_field()
    # [{name, every_quarters: 1-4, department}]
    touchpoints: list[dict[str, Any]] = json_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class PlanOutcome(SQLModel, table=True):
    """One key outcome of a plan: a KPI moving from a baseline to a target by a quarter."""

    __tablename__ = "plan_outcomes"
    __table_args__ = (Index("ix_plan_outcomes_plan", "plan_id", "position"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    plan_id: uuid.UUID = Field(foreign_key="success_plans.id", ondelete="CASCADE")
    position: int
    kpi: str = Field(max_length=200)
    baseline: Decimal = Field(sa_type=Quantity)
    target: Decimal = Field(sa_type=Quantity)
    unit: str | None = Field(default=None, max_length=40)
    target_quarter: int
    status: str = Field(default="not_started", max_length=20)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class Measurement(SQLModel, table=True):
    """A KPI value as measured on a day; the latest one is the outcome's actual."""

    __tablename__ = "plan_measurements"
    __table_args__ = (Index("ix_plan_measurements_outcome", "outcome_id", "measured_on", "id"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    outcome_id: uuid.UUID = Field(foreign_key="plan_outcomes.id", ondelete="CASCADE")
    value: Decimal = Field(sa_type=Quantity)
    measured_on: date
    note: str | None = Field(default=None, max_length=2000)
    recorded_by: str | None = Field(default=None, max_length=200)
    created_at: datetime = created_at_field()
