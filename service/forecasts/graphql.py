"""GraphQL of the renewal forecast: `renewalForecast` (grouped, with the net retention view)
and `renewalAccounts` (each renewal with the signals behind it). Both call the service
functions REST calls and need the `forecast:read` scope."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry.permission import BasePermission
from strawberry.types import Info

from service.forecasts import service as forecasts_service
from service.graphql.context import context_of
from service.graphql.pagination import Connection, connection, page_size
from service.graphql.rows import from_row


class CanReadForecast(BasePermission):
    """The key has the forecast:read scope (as REST's /v1/forecasts asks)."""

    message = "not allowed"

    async def has_permission(self, source: Any, info: Info[Any, Any], **kwargs: Any) -> bool:
        # Raises the typed 401/403 errors; their codes reach the client.
        await context_of(info).principal("forecast:read")
        return True


@strawberry.enum(description="A dimension the forecast groups renewals by.")
class ForecastDimension(enum.Enum):
    QUARTER = "quarter"
    MONTH = "month"
    OWNER = "owner"
    SEGMENT = "segment"
    CATEGORY = "category"
    STAGE = "stage"
    CURRENCY = "currency"


@strawberry.enum(description="An optional view added to the forecast.")
class ForecastView(enum.Enum):
    EXPANSION = "expansion"


@strawberry.enum(description="How the per-account list is ordered.")
class RenewalSort(enum.Enum):
    RENEWAL_DATE = "renewal_date"
    ARR = "arr"
    PROBABILITY = "probability"


@strawberry.type(description="ARR of the renewals in each category, reporting currency.")
class ArrByCategory:
    commit: Decimal
    best_case: Decimal
    at_risk: Decimal
    churn_risk: Decimal
    won: Decimal
    lost: Decimal


@strawberry.type(description="The values of the dimensions a forecast row groups.")
class ForecastGroup:
    quarter: str | None = strawberry.field(default=None, description="Fiscal: FY2027-Q1.")
    month: str | None = strawberry.field(default=None, description="2027-03.")
    owner: str | None = None
    owner_name: str | None = None
    segment: str | None = None
    category: str | None = None
    stage: str | None = None
    currency: str | None = None


@strawberry.type(description="Sums of a group of renewals (or of all), exact, reporting currency.")
class ForecastSums:
    count: int
    arr: Decimal
    weighted_arr: Decimal = strawberry.field(description="Sum of ARR x probability.")
    arr_by_category: ArrByCategory
    expected_churn: Decimal = strawberry.field(description="Sum of ARR x (1 - probability).")
    expansion_count: int | None = strawberry.field(
        default=None, description="With include EXPANSION: expansion opportunities closing."
    )
    expansion_pipeline: Decimal | None = strawberry.field(
        default=None, description="Open ones x forecast.expansion_weight %, won ones in full."
    )
    expected_renewed_arr: Decimal | None = None
    grr: Decimal | None = strawberry.field(
        default=None, description="expectedRenewedArr / arr, 6 decimal places."
    )
    nrr: Decimal | None = strawberry.field(
        default=None, description="(expectedRenewedArr + expansionPipeline) / arr."
    )


@strawberry.type
class ForecastRow(ForecastSums):
    group: ForecastGroup


@strawberry.type(description="Renewals in a window, grouped, in the reporting currency.")
class RenewalForecast:
    starts_on: date = strawberry.field(name="from")
    to: date
    as_of: date
    reporting_currency: str
    fiscal_year_start_month: int
    group_by: list[ForecastDimension]
    rows: list[ForecastRow]
    totals: ForecastSums


@strawberry.type(description="A fact that set a renewal's probability.")
class ForecastSignal:
    signal: str
    value: str | None = strawberry.field(description="The fact, as text (a count, a status).")
    effect: int | None = strawberry.field(
        description="Percentage points it adds; null where it sets the probability outright."
    )
    reason: str | None = None
    author: str | None = None
    at: datetime | None = None


@strawberry.type(description="One renewal: probability, category and the signals behind them.")
class RenewalAccount:
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
    arr: Decimal
    arr_reporting: Decimal
    probability: Decimal
    weighted_arr: Decimal
    category: str
    signals: list[ForecastSignal]


def _sums(cls: Any, sums: dict[str, Any], **extra: Any) -> Any:
    return from_row(cls, sums, arr_by_category=ArrByCategory(**sums["arr_by_category"]), **extra)


def _forecast_of(result: dict[str, Any]) -> RenewalForecast:
    return RenewalForecast(
        starts_on=result["from"],
        to=result["to"],
        as_of=result["as_of"],
        reporting_currency=result["reporting_currency"],
        fiscal_year_start_month=result["fiscal_year_start_month"],
        group_by=[ForecastDimension(name) for name in result["group_by"]],
        rows=[
            _sums(ForecastRow, row, group=from_row(ForecastGroup, row["group"]))
            for row in result["rows"]
        ],
        totals=_sums(ForecastSums, result["totals"]),
    )


def _signal_of(signal: dict[str, Any]) -> ForecastSignal:
    value = signal.get("value")
    return from_row(
        ForecastSignal,
        signal,
        value=None
        if value is None
        else str(value).lower()
        if isinstance(value, bool)
        else str(value),
    )


def _account_of(item: dict[str, Any]) -> RenewalAccount:
    return from_row(RenewalAccount, item, signals=[_signal_of(s) for s in item["signals"]])


@strawberry.type
class Query:
    @strawberry.field(
        description="Renewals whose contracts end in the window (default: a year from today), "
        "grouped by the dimensions: count, ARR, weighted ARR, ARR by category, expected churn; "
        "include EXPANSION for expansion pipeline, GRR and NRR. Needs forecast:read.",
        permission_classes=[CanReadForecast],
    )
    async def renewal_forecast(
        self,
        info: strawberry.Info,
        from_: Annotated[date | None, strawberry.argument(name="from")] = None,
        to: date | None = None,
        group_by: list[ForecastDimension] | None = None,
        include: list[ForecastView] | None = None,
        owner: Annotated[
            str | None,
            strawberry.argument(description="Only this renewal owner's (user id) renewals."),
        ] = None,
    ) -> RenewalForecast:
        context = context_of(info)
        async with context.reading() as session:
            result = await forecasts_service.renewal_forecast(
                session,
                workspace_id=context.workspace_id,
                starts_on=from_,
                ends_on=to,
                group_by=[dimension.value for dimension in group_by or ()],
                include=[view.value for view in include or ()],
                owner=owner,
            )
        return _forecast_of(result)

    @strawberry.field(
        description="Each renewal in the window with its probability, category and the "
        "signals that set them (first ≤ 100). Needs forecast:read.",
        permission_classes=[CanReadForecast],
    )
    async def renewal_accounts(
        self,
        info: strawberry.Info,
        from_: Annotated[date | None, strawberry.argument(name="from")] = None,
        to: date | None = None,
        sort: RenewalSort = RenewalSort.RENEWAL_DATE,
        descending: bool = False,
        owner: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[RenewalAccount]:
        context = context_of(info)
        limit = page_size(first)
        async with context.reading() as session:
            page = await forecasts_service.renewal_accounts(
                session,
                workspace_id=context.workspace_id,
                starts_on=from_,
                ends_on=to,
                sort=sort.value,
                descending=descending,
                limit=limit,
                cursor=after,
                owner=owner,
            )
        cursors = {item["contract_id"]: item["cursor"] for item in page["items"]}
        return connection(
            [_account_of(item) for item in page["items"]],
            page["next_cursor"],
            lambda node: cursors[node.contract_id],
        )
