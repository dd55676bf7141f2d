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
Include = Literal["expansion"]


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
    # The net retention view (include=expansion); null otherwise.
    expansion_count: int | None = Field(
        default=None, description="Expansion opportunities (open or won) closing in the window."
    )
    expansion_pipeline: Decimal | None = Field(
        default=None,
        description="Their amounts, open ones x forecast.expansion_weight %, won ones in full.",
    )
    expected_renewed_arr: Decimal | None = Field(
        default=None, description="sum of ARR x probability: at most the ARR up for renewal."
    )
    grr: Decimal | None = Field(
        default=None,
        description="Gross revenue retention: expected_renewed_arr / arr (6 decimal places); "
        "null without ARR up for renewal.",
    )
    nrr: Decimal | None = Field(
        default=None,
        description="Net revenue retention: (expected_renewed_arr + expansion_pipeline) / arr "
        "(6 decimal places); null without ARR up for renewal.",
    )


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
    include: list[Include] = Field(default_factory=list)
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


class SnapshotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: date | None = Field(
        default=None, alias="from", description="First renewal date of the window; today."
    )
    to: date | None = Field(default=None, description="Last renewal date; from + 365 days.")


class SnapshotRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: uuid.UUID
    kind: Literal["manual", "scheduled"]
    taken_by: str
    as_of: date
    from_: date = Field(alias="from", validation_alias="starts_on")
    to: date = Field(validation_alias="ends_on")
    reporting_currency: str
    renewals: int = Field(description="Renewals in the window when it was taken.")
    created_at: datetime


class SnapshotPage(BaseModel):
    items: list[SnapshotRead]
    next_cursor: str | None


class ForecastPosition(BaseModel):
    category: Category
    probability: Decimal
    arr: Decimal = Field(description="In the reporting currency, at that time's rates.")


class SignalChange(BaseModel):
    signal: str
    change: Literal["added", "removed", "changed"]
    old_value: Any = None
    new_value: Any = None
    old_effect: int | None = None
    new_effect: int | None = None


class RenewalChange(BaseModel):
    contract_id: uuid.UUID
    account_id: uuid.UUID
    account_name: str
    renewal_date: date
    change: Literal["added", "removed", "moved"] = Field(
        description="added: entered the window (or was created) since; removed: left it."
    )
    old: ForecastPosition | None
    new: ForecastPosition | None
    arr_change: Decimal
    signals: list[SignalChange] = Field(description="The signals that moved it.")


class RenewalChangePage(BaseModel):
    since: uuid.UUID
    until: uuid.UUID | None = Field(description="null: the live forecast.")
    since_as_of: date
    until_as_of: date
    items: list[RenewalChange]
    next_cursor: str | None


class SnapshotAccuracy(BaseModel):
    snapshot_id: uuid.UUID
    as_of: date
    reporting_currency: str
    renewals: int
    closed: int = Field(description="Renewals of the snapshot decided since (won or lost).")
    renewed: int
    open: int
    forecast_weighted_arr: Decimal = Field(
        description="Sum of ARR x probability of the closed renewals, as the snapshot had them."
    )
    actual_renewed_arr: Decimal = Field(
        description="ARR they renewed at (the next term's, else the renewed term's); churned: 0."
    )
    error: Decimal = Field(description="actual_renewed_arr - forecast_weighted_arr.")
    error_ratio: Decimal | None = Field(
        description="error / forecast_weighted_arr, 6 decimal places; null when that is 0."
    )
