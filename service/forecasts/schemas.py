"""Request and response bodies of the renewal forecast API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Category = Literal["commit", "best_case", "at_risk", "churn_risk", "won", "lost"]
GroupBy = Literal["quarter", "month", "owner", "segment", "category", "stage", "currency"]
Sort = Literal["renewal_date", "arr", "probability"]


class ArrByCategory(BaseModel):
    commit: Decimal
    best_case: Decimal
    at_risk: Decimal
    churn_risk: Decimal
    won: Decimal
    lost: Decimal


class ForecastSums(BaseModel):
    count: int
    arr: Decimal = Field(description="ARR in the reporting currency, exact.")
    weighted_arr: Decimal = Field(description="sum of ARR x probability, exact.")
    arr_by_category: ArrByCategory
    expected_churn: Decimal = Field(description="sum of ARR x (1 - probability), exact.")


class ForecastRow(ForecastSums):
    group: dict[str, str | None] = Field(
        description="The row's value of each group_by dimension (quarter as FY2027-Q1, month "
        "as 2027-03; owner adds owner_name)."
    )


class RenewalForecast(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    as_of: date = Field(description="The day signals are read on, in the workspace time zone.")
    reporting_currency: str
    fiscal_year_start_month: int
    group_by: list[GroupBy]
    rows: list[ForecastRow]
    totals: ForecastSums


class Signal(BaseModel):
    signal: str
    value: Any = None
    effect: int | None = Field(
        description="Percentage points it adds to the probability; null where it sets the "
        "probability outright (a decided contract, a manual override)."
    )
    reason: str | None = None
    author: str | None = None
    at: datetime | None = None


class RenewalAccount(BaseModel):
    contract_id: uuid.UUID
    account_id: uuid.UUID
    account_name: str
    renewal_date: date
    status: str
    segment: str
    stage: str
    owner: str | None
    owner_name: str | None
    currency: str
    arr: Decimal = Field(description="ARR in the contract's currency.")
    arr_reporting: Decimal = Field(description="ARR in the reporting currency.")
    probability: Decimal = Field(description="0 to 1, in whole percentage points.")
    weighted_arr: Decimal = Field(description="arr_reporting x probability.")
    category: Category
    signals: list[Signal]


class RenewalAccountPage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    as_of: date
    reporting_currency: str
    items: list[RenewalAccount]
    next_cursor: str | None


class OverrideCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    probability: int | None = Field(
        ge=0, le=100, description="Whole percentage points; null hands it back to the signals."
    )
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    author: str | None = Field(
        default=None, max_length=200, description="Who decided; the API key's name if omitted."
    )


class OverrideRead(BaseModel):
    id: uuid.UUID
    contract_id: uuid.UUID
    account_id: uuid.UUID
    probability: int | None
    reason: str
    author: str
    created_at: datetime


class OverrideList(BaseModel):
    items: list[OverrideRead]
