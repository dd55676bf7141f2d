"""Request and response bodies of the success-plan API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.plans.health import Health

OutcomeStatus = Literal["not_started", "in_progress", "achieved", "missed"]
Quarter = Annotated[int, Field(ge=1, le=4, description="Quarter of the plan year, 1-4.")]
# Stored as integers scaled by 10^4 (service.db.types.Quantity): at most 4 decimal places.
Quantity = Annotated[Decimal, Field(max_digits=18, decimal_places=4)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimelineItem(Strict):
    quarter: Quarter
    focus: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: str | None = Field(default=None, max_length=2000)


class Touchpoint(Strict):
    name: Label
    every_quarters: Annotated[int, Field(ge=1, le=4, description="1 = every quarter.")]
    department: Key


class OutcomeIn(Strict):
    id: uuid.UUID | None = Field(
        default=None, description="An existing outcome's id keeps it and its measurements."
    )
    kpi: Label
    baseline: Quantity
    target: Quantity
    unit: Key | None = None
    target_quarter: Quarter
    status: OutcomeStatus | None = Field(
        default=None, description="Omit to keep the current status (not_started when new)."
    )


class PlanPut(Strict):
    starts_on: date | None = Field(
        default=None, description="Required when the account has no plan yet."
    )
    ends_on: date | None = Field(default=None, description="Default: one year after starts_on.")
    timeline: list[TimelineItem] | None = Field(
        default=None, max_length=20, description="Omit to keep the current timeline."
    )
    touchpoints: list[Touchpoint] | None = Field(
        default=None, max_length=20, description="Omit to keep the current touchpoints."
    )
    outcomes: list[OutcomeIn] | None = Field(
        default=None,
        description=(
            "At most three key outcomes, in order. Omit to keep them; outcomes left out of "
            "the list are deleted with their measurements."
        ),
    )


class MeasurementCreate(Strict):
    value: Quantity
    measured_on: date
    note: str | None = Field(default=None, max_length=2000)


class MeasurementRead(BaseModel):
    id: uuid.UUID
    outcome_id: uuid.UUID
    value: Decimal
    measured_on: date
    note: str | None
    recorded_by: str | None
    created_at: datetime


class MeasurementPage(BaseModel):
    items: list[MeasurementRead]
    next_cursor: str | None


class OutcomeRead(BaseModel):
    id: uuid.UUID
    position: int
    kpi: str
    baseline: Decimal
    target: Decimal
    unit: str | None
    target_quarter: int
    target_date: date = Field(description="Last day of the target quarter.")
    status: OutcomeStatus
    latest_measurement: MeasurementRead | None
    latest_value: Decimal | None
    progress: Decimal | None = Field(
        description="0..1: where the latest value stands between baseline and target."
    )
    expected_progress: Decimal = Field(description="0..1: where it should stand by as_of.")
    health: Health
    health_reason: str
    created_at: datetime
    updated_at: datetime


class TouchpointDueRead(BaseModel):
    name: str
    department: str
    quarter: int
    due_on: date


class PlanRead(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    contract_year: int
    starts_on: date
    ends_on: date
    as_of: date = Field(description="The date health and latest values are computed for.")
    health: Health
    timeline: list[TimelineItem]
    touchpoints: list[Touchpoint]
    schedule: list[TouchpointDueRead] = Field(description="When each touchpoint falls due.")
    outcomes: list[OutcomeRead]
    created_at: datetime
    updated_at: datetime
