"""Renewal forecasts: each renewal's probability and category from explicit signals, in SQL.

One statement (`_renewals`) computes, per contract renewing in the window, every signal the
playbook weighs, the probability (percentage points, clamped to 0-100, or a CSM's override)
and the category, from the contract's renewal facts (service.forecasts.facts, brought up to
date by `_context` before anything reads them). The grouped forecast and the per-account
list both select from it, so their numbers agree by construction. Sums are integer cents
(Money columns) added up in SQL and grouped by currency as well; Python only converts each
currency's sums with the configured Decimal rate and adds the converted groups together, so
money never passes through a float.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    Integer,
    Numeric,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    extract,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import Select, Subquery
from sqlmodel import col

from service.accounts.models import AccountOwner
from service.db import tables
from service.db.types import utcnow
from service.deals.models import Contract
from service.errors import InvalidInput, NotFound
from service.forecasts import facts, facts_schedule
from service.forecasts.models import ForecastOverride
from service.forecasts.plan_signals import AT_RISK, HEALTH_NAMES, OFF_TRACK, ON_TRACK
from service.forecasts.retention import expansion_pipeline, retention_fields
from service.forecasts.settings import (
    ALL_CATEGORIES,
    ForecastSettings,
    settings_from,
)
from service.forecasts.sqldates import fenced, plan_for_these_values, unindexed
from service.kit.dates import local_today
from service.playbooks import service as playbooks_service
from service.workspaces.models import Workspace

GROUP_BY = ("quarter", "month", "owner", "segment", "category", "stage", "currency")
SORTS = ("renewal_date", "arr", "probability")
INCLUDE = ("expansion",)
MAX_WINDOW_DAYS = 5 * 366
_RATE_SCALE = 10**6  # rates have at most six decimal places (playbook schema)


@dataclass(frozen=True)
class Window:
    starts_on: date
    ends_on: date
    as_of: date


@dataclass(frozen=True)
class _Context:
    workspace_id: uuid.UUID
    settings: ForecastSettings
    window: Window
    fiscal_year_start_month: int
    renewal_owner: str
    owner: str | None = None  # a drill-down into one owner's renewals


def _invalid(field: str, message: str, place: str = "query") -> InvalidInput:
    return InvalidInput(
        f"{field}: {message}", errors=[{"field": field, "in": place, "message": message}]
    )


_held = tables.renewal_facts_state.c
_WORKSPACE_FOR_FORECAST = (
    select(
        col(Workspace.playbook_version),
        col(Workspace.timezone),
        col(Workspace.fiscal_year_start_month),
        col(Workspace.renewal_quarterback),
        # Whether its renewal facts can be read as they are (facts.is_current), in the same
        # round trip.
        _held.as_of,
        _held.renewal_owner,
        _held.read_on,
        exists()
        .where(tables.renewal_facts_stale.c.workspace_id == col(Workspace.id))
        .label("any_marked"),
    )
    .outerjoin(tables.renewal_facts_state, _held.workspace_id == col(Workspace.id))
    .where(col(Workspace.id) == bindparam("id"))
)


async def _context(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    starts_on: date | None,
    ends_on: date | None,
    owner: str | None = None,
) -> _Context:
    # Core, not session.get: four columns, without the ORM's identity map and row loading.
    connection = await session.connection()
    workspace = (await connection.execute(_WORKSPACE_FOR_FORECAST, {"id": workspace_id})).first()
    if workspace is None:
        raise NotFound(f"workspace {workspace_id} not found")
    if owner is None:
        await plan_for_these_values(session)
    playbook = await playbooks_service.playbook_in_force(
        session, workspace_id=workspace_id, version=workspace.playbook_version
    )
    as_of = local_today(utcnow(), workspace.timezone)
    starts_on = starts_on or as_of
    ends_on = ends_on or starts_on + timedelta(days=365)
    if ends_on < starts_on:
        raise _invalid("to", f"the window ends ({ends_on}) before it starts ({starts_on})")
    if (ends_on - starts_on).days > MAX_WINDOW_DAYS:
        raise _invalid("to", "a forecast window spans at most five years")
    renewal_owner = workspace.renewal_quarterback
    held = (workspace.as_of, workspace.renewal_owner, bool(workspace.any_marked))
    if not facts.is_current(held, as_of, renewal_owner):
        computed_all = await facts.bring_up_to_date(
            session, workspace_id=workspace_id, as_of=as_of, renewal_owner=renewal_owner
        )
        if computed_all:  # from now on, a worker computes each new day's facts
            await facts_schedule.schedule_day(
                session,
                workspace_id=workspace_id,
                day=as_of + timedelta(days=1),
                timezone=workspace.timezone,
            )
    if workspace.read_on != as_of:
        await facts.note_read(session, workspace_id=workspace_id, on=as_of)
    return _Context(
        workspace_id=workspace_id,
        settings=settings_from(playbook.document.get("forecast")),
        window=Window(starts_on, ends_on, as_of),
        fiscal_year_start_month=workspace.fiscal_year_start_month,
        renewal_owner=renewal_owner,
        owner=owner,
    )


# --- the per-renewal statement -------------------------------------------------------------


# What a forecast statement is run with, as bound parameters: the statements are built once
# per shape (the playbook's forecast settings; a drill-down into one owner or not) and shared
# by every workspace, window and owner. Building one, and SQLAlchemy's walk over a statement
# it has not seen, cost more Python than a drill-down costs PostgreSQL.
_WORKSPACE = bindparam("forecast_workspace", type_=tables.contracts.c.workspace_id.type)
_STARTS_ON = bindparam("forecast_starts_on", type_=tables.contracts.c.ends_on.type)
_ENDS_ON = bindparam("forecast_ends_on", type_=tables.contracts.c.ends_on.type)
_AS_OF = bindparam("forecast_as_of", type_=tables.contracts.c.ends_on.type)
_SOON_UNTIL = bindparam("forecast_soon_until", type_=tables.contracts.c.ends_on.type)
_STUCK_BEFORE = bindparam("forecast_stuck_before", type_=tables.accounts.c.stage_entered_at.type)
_OWNER = bindparam("forecast_owner", type_=tables.account_owners.c.user_id.type)


def _values(ctx: _Context) -> dict[str, Any]:
    """The bound values of `_renewals(ctx)`, for every statement built on it."""
    as_of, settings = ctx.window.as_of, ctx.settings
    stuck_since = as_of - timedelta(days=settings.stuck_after_days)
    return {
        _WORKSPACE.key: ctx.workspace_id,
        _STARTS_ON.key: ctx.window.starts_on,
        _ENDS_ON.key: ctx.window.ends_on,
        _AS_OF.key: as_of,
        _SOON_UNTIL.key: as_of + timedelta(days=settings.renewal_soon_days),
        _STUCK_BEFORE.key: datetime.combine(stuck_since, time.min, UTC),
        _OWNER.key: ctx.owner,
    }


_Built = TypeVar("_Built")
_BUILT: OrderedDict[tuple[Any, ...], Subquery] = OrderedDict()
_BUILT_MAX = 64


def _remembered(
    cache: OrderedDict[tuple[Any, ...], _Built], key: tuple[Any, ...], build: Callable[[], _Built]
) -> _Built:
    """`cache[key]`, built the first time it is asked for; beyond `_BUILT_MAX` entries the
    least recently used goes."""
    built = cache.get(key)
    if built is None:
        built = cache[key] = build()
        if len(cache) > _BUILT_MAX:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return built


def _renewals(ctx: _Context) -> Subquery:
    """`_build_renewals`, remembered for its shape; run it with `_values(ctx)`.

    A built statement is immutable, so requests of the same shape share one (and PostgreSQL
    its prepared form)."""
    key = (ctx.owner is None, repr(ctx.settings))
    return _remembered(_BUILT, key, lambda: _build_renewals(ctx))


def _build_renewals(ctx: _Context) -> Subquery:
    """One row per contract renewing in the window: its facts, signals, probability, category.

    The facts come from `renewal_facts` (brought up to date by `_context`); the signals that
    depend on the day and the playbook's settings are computed here."""
    ws, settings = _WORKSPACE, ctx.settings
    weights = settings.weights
    facts_table = tables.renewal_facts.c
    renewal_date = facts_table.renewal_date
    # One owner's renewals are found by the owner's index. Planned without the values (a
    # generic plan), the window's index looks as narrow as the owner's and PostgreSQL picked
    # it: a scan of every renewal in the window (bench/forecast.py: 80 ms instead of 1).
    # Hidden from the planner, the window is a filter.
    renews_on = unindexed(renewal_date) if ctx.owner is not None else renewal_date
    in_window = [
        facts_table.workspace_id == ws,
        renews_on >= _STARTS_ON,
        renews_on <= _ENDS_ON,
    ]
    if ctx.owner is not None:
        in_window.append(facts_table.owner_id == _OWNER)
    # Every stored fact (the tenant key aside), and the signals of the day that the stored
    # dates answer.
    stored = (column for column in facts_table if column.key != "workspace_id")
    facts = (
        select(
            *stored,
            case((facts_table.stage_entered_at < _STUCK_BEFORE, 1), else_=0).label("stuck"),
            case((renewal_date < _AS_OF, 1), else_=0).label("renewal_passed"),
            case((and_(renewal_date >= _AS_OF, renewal_date <= _SOON_UNTIL), 1), else_=0).label(
                "renewal_soon"
            ),
        )
        .where(*in_window)
        .subquery("facts")
    )
    f = facts.c
    capped_overdue = case(
        (f.overdue_tasks > settings.overdue_tasks_counted, settings.overdue_tasks_counted),
        else_=f.overdue_tasks,
    )
    stage_effect: Any = (
        case(
            *((f.stage == stage, weight) for stage, weight in settings.stage_weights.items()),
            else_=0,
        )
        if settings.stage_weights
        else literal(0)
    )
    score = (
        literal(settings.base)
        + f.auto_renew * weights["auto_renew"]
        + f.outcomes_achieved * weights["outcome_achieved"]
        + f.outcomes_missed * weights["outcome_missed"]
        + f.stuck * weights["stuck_in_stage"]
        + capped_overdue * weights["overdue_task"]
        + case((f.escalations > 0, weights["open_escalation"]), else_=0)
        + f.renewal_passed * weights["renewal_date_passed"]
        + f.renewal_soon * weights["renewal_soon"]
        + case(
            (f.plan_health == ON_TRACK, weights["plan_on_track"]),
            (f.plan_health == AT_RISK, weights["plan_at_risk"]),
            (f.plan_health == OFF_TRACK, weights["plan_off_track"]),
            else_=0,
        )
        + case(
            (f.renewal_opportunity == "open", weights["renewal_opportunity_open"]),
            (f.renewal_opportunity == "won", weights["renewal_opportunity_won"]),
            (f.renewal_opportunity == "lost", weights["renewal_opportunity_lost"]),
            else_=0,
        )
        + stage_effect
    )
    scored = fenced(
        select(facts, stage_effect.label("stage_effect"), score.label("score"))
    ).subquery("scored")
    s = scored.c
    probability = case(
        (s.status == "renewed", 100),
        (s.status.in_(("churned", "expired")), 0),
        (s.override.is_not(None), s.override),
        (s.score > 100, 100),
        (s.score < 0, 0),
        else_=s.score,
    )
    with_probability = fenced(
        select(scored, cast(probability, Integer).label("probability"))
    ).subquery("with_probability")
    p = with_probability.c
    thresholds = settings.thresholds
    category = case(
        (p.status == "renewed", "won"),
        (p.status.in_(("churned", "expired")), "lost"),
        (p.probability >= thresholds["commit"], "commit"),
        (p.probability >= thresholds["best_case"], "best_case"),
        (p.probability >= thresholds["at_risk"], "at_risk"),
        else_="churn_risk",
    )
    return fenced(select(with_probability, cast(category, String).label("category"))).subquery(
        "renewals"
    )


# --- money -------------------------------------------------------------------------------


_NO_CENTS = Decimal("0.00")


def _cents(value: Any) -> Decimal:
    """An integer number of cents (SQL sums come back as int or integral Decimal) in units.

    Through int(): asyncpg may hand 30000 back as Decimal('3E+4'), which would print as 3E+2."""
    return Decimal(int(value)).scaleb(-2) if value else _NO_CENTS


def _convert(amount: Decimal, rate: Decimal) -> Decimal:
    # x 1 changes nothing, not even the exponent: skip it for the reporting currency's rows.
    # Nor zero, which would keep the rate's places too and print as 0E-8.
    return amount if rate == 1 or not amount else amount * rate


def _check_rates(settings: ForecastSettings, currencies: Sequence[str]) -> None:
    missing = sorted({code for code in currencies if settings.rate(code) is None})
    if missing:
        names = ", ".join(f"{code}→{settings.reporting_currency}" for code in missing)
        raise InvalidInput(
            f"no exchange rate for {names}: add forecast.rates."
            f"{missing[0]} (the value of one {missing[0]} in {settings.reporting_currency}) "
            "to the playbook, or set forecast.reporting_currency",
            errors=[
                {"field": f"forecast.rates.{code}", "in": "playbook", "message": "missing rate"}
                for code in missing
            ],
            missing_rates=missing,
            reporting_currency=settings.reporting_currency,
        )


async def _currencies(session: AsyncSession, ctx: _Context) -> list[str]:
    """The currencies of the window's renewals, from the contracts alone (no signals)."""
    statement = select(col(Contract.currency)).where(
        col(Contract.workspace_id) == ctx.workspace_id,
        col(Contract.ends_on) >= ctx.window.starts_on,
        col(Contract.ends_on) <= ctx.window.ends_on,
    )
    if ctx.owner is not None:
        statement = statement.join(
            AccountOwner,
            and_(
                col(AccountOwner.workspace_id) == ctx.workspace_id,
                col(AccountOwner.account_id) == col(Contract.account_id),
                col(AccountOwner.department) == ctx.renewal_owner,
                col(AccountOwner.user_id) == ctx.owner,
            ),
        )
    return list(await session.scalars(statement.distinct()))


# --- the grouped forecast ----------------------------------------------------------------


def _group_columns(ctx: _Context, renewals: Subquery, group_by: Sequence[str]) -> list[Any]:
    r = renewals.c
    month = cast(extract("month", r.renewal_date), Integer)
    year = cast(extract("year", r.renewal_date), Integer)
    start = ctx.fiscal_year_start_month
    columns: list[Any] = []
    for dimension in group_by:
        if dimension == "quarter":
            shifted = (month - start + 12) % 12
            # A fiscal year is named by the calendar year it ends in.
            fiscal_year = year if start == 1 else year + case((month >= start, 1), else_=0)
            columns += [
                fiscal_year.label("fiscal_year"),
                (shifted // 3 + 1).label("fiscal_quarter"),
            ]
        elif dimension == "month":
            columns += [year.label("year"), month.label("month")]
    return columns  # the other dimensions are columns of the renewals already


def _key_names(dimensions: Sequence[str]) -> list[str]:
    names: list[str] = []
    for dimension in dimensions:
        names += {
            "quarter": ["fiscal_year", "fiscal_quarter"],
            "month": ["year", "month"],
            "owner": ["owner_id", "owner_name"],
        }.get(dimension, [dimension])
    return names


def _check_group_by(group_by: Sequence[str]) -> list[str]:
    dimensions: list[str] = []
    for raw in group_by:
        for part in raw.split(","):
            dimension = part.strip()
            if not dimension:
                continue
            if dimension not in GROUP_BY:
                raise _invalid("group_by", f"unknown dimension {dimension!r}; any of {GROUP_BY}")
            if dimension not in dimensions:
                dimensions.append(dimension)
    return dimensions


def _check_include(include: Sequence[str]) -> list[str]:
    views: list[str] = []
    for raw in include:
        for part in raw.split(","):
            view = part.strip()
            if not view:
                continue
            if view not in INCLUDE:
                raise _invalid("include", f"unknown view {view!r}; any of {INCLUDE}")
            if view not in views:
                views.append(view)
    return views


async def _expansion_rows(
    session: AsyncSession, ctx: _Context, dimensions: Sequence[str]
) -> Sequence[Any]:
    """Expansion pipeline per group and currency: opportunities and weighted amount (cents x %)."""
    pipeline = expansion_pipeline(
        workspace_id=ctx.workspace_id,
        starts_on=ctx.window.starts_on,
        ends_on=ctx.window.ends_on,
        renewal_owner=ctx.renewal_owner,
        owner=ctx.owner,
        weight=ctx.settings.expansion_weight,
    )
    keyed = select(pipeline, *_group_columns(ctx, pipeline, dimensions)).subquery("keyed")
    e = keyed.c
    group_columns = [e[name] for name in _key_names(dimensions)]
    statement = select(
        *group_columns,
        e.currency.label("_currency"),
        func.count().label("opportunities"),
        func.sum(e.amount_cents * e.weight).label("weighted"),
    ).group_by(*group_columns, e.currency)
    return (await session.execute(statement)).all()


_KeyPart = tuple[tuple[str, Any], ...]


def _quarter_key(row: Sequence[Any], at: int) -> _KeyPart:
    return (("quarter", f"FY{int(row[at])}-Q{int(row[at + 1])}"),)


def _month_key(row: Sequence[Any], at: int) -> _KeyPart:
    return (("month", f"{int(row[at]):04d}-{int(row[at + 1]):02d}"),)


def _owner_key(row: Sequence[Any], at: int) -> _KeyPart:
    return (("owner", row[at]), ("owner_name", row[at + 1]))


def _key_reader(dimensions: Sequence[str]) -> Callable[[Sequence[Any]], _KeyPart]:
    """Reads a row's group key from its leading columns (in `_key_names` order).

    Rows come back as plain tuples and this runs once per group row, so it indexes by
    position instead of reading named attributes (thousands of rows per request)."""
    special = {"quarter": _quarter_key, "month": _month_key, "owner": _owner_key}
    parts: list[tuple[Callable[[Sequence[Any], int], _KeyPart] | str, int]] = []
    at = 0
    for dimension in dimensions:
        parts.append((special.get(dimension, dimension), at))
        at += len(_key_names([dimension]))

    def read(row: Sequence[Any]) -> _KeyPart:
        key: _KeyPart = ()
        for part, position in parts:
            key += ((part, row[position]),) if isinstance(part, str) else part(row, position)
        return key

    return read


_NO_WEIGHTED = Decimal("0.0000")  # ARR x probability has four places


def _empty_sums(expansion: bool) -> dict[str, Any]:
    """Zero sums, keyed in the order of the response's fields (ForecastSums).

    Made for every group row of a forecast (thousands): the zeros are shared constants,
    Decimals being immutable, rather than parsed again each time."""
    return {
        "count": 0,
        "arr": _NO_CENTS,
        "weighted_arr": _NO_WEIGHTED,
        "arr_by_category": dict.fromkeys(ALL_CATEGORIES, _NO_CENTS),
        "expected_churn": _NO_WEIGHTED,
        "expansion_count": 0 if expansion else None,
        "expansion_pipeline": _NO_WEIGHTED if expansion else None,
        "expected_renewed_arr": None,
        "grr": None,
        "nrr": None,
    }


def _renewal_sums(
    values: Sequence[Any], rate: Decimal, expansion: bool, category: str | None = None
) -> dict[str, Any]:
    """A (group, currency) row's sums in the reporting currency; `values` are the row's
    count, ARR and weighted columns, then its per-category ones unless the group has one
    `category` (grouped by category), whose ARR is then the group's.

    Expected churn is ARR x (100 - probability) = 100 x ARR - weighted, in whole cents times
    percentage points: exact, so SQL need not sum it."""
    count, arr, weighted, *by_category = values
    amount = _convert(_cents(arr), rate)
    if category is not None:
        arr_by_category = dict.fromkeys(ALL_CATEGORIES, _NO_CENTS)
        arr_by_category[category] = amount
    else:
        arr_by_category = {
            name: _convert(_cents(cents), rate)
            for name, cents in zip(ALL_CATEGORIES, by_category, strict=True)
        }
    churn = 100 * int(arr) - int(weighted)
    # The keys of `_empty_sums`, in the response's order, built at once: this runs per row.
    return {
        "count": int(count),
        "arr": amount,
        "weighted_arr": _convert(Decimal(int(weighted)).scaleb(-4), rate),
        "arr_by_category": arr_by_category,
        "expected_churn": _convert(Decimal(churn).scaleb(-4), rate),
        "expansion_count": 0 if expansion else None,
        "expansion_pipeline": _NO_WEIGHTED if expansion else None,
        "expected_renewed_arr": None,
        "grr": None,
        "nrr": None,
    }


_CATEGORY_AT = {category: at for at, category in enumerate(ALL_CATEGORIES)}


class _CurrencySums:
    """The integer sums of all renewals per currency, as `_renewal_sums` reads a row's:
    count, ARR cents, weighted (cents x percentage points), ARR cents per category.

    Converted once per currency they give the totals: the same exact amounts as adding up the
    converted groups, without a dozen Decimal additions per group row."""

    def __init__(self) -> None:
        self.sums: dict[str, list[int]] = {}

    def add(self, currency: str, values: Sequence[Any], category: str | None) -> None:
        sums = self.sums.get(currency)
        if sums is None:
            sums = self.sums[currency] = [0] * (3 + len(ALL_CATEGORIES))
        count, arr, weighted, *by_category = values
        sums[0] += int(count)
        sums[1] += int(arr)
        sums[2] += int(weighted)
        if category is not None:
            sums[3 + _CATEGORY_AT[category]] += int(arr)
        else:
            for at, cents in enumerate(by_category, start=3):
                sums[at] += int(cents)

    def totals(self, rates: dict[str, Decimal | None], expansion: bool) -> dict[str, Any]:
        totals = _empty_sums(expansion)
        for currency, sums in self.sums.items():
            rate = rates[currency]
            assert rate is not None
            _add(totals, _renewal_sums(sums, rate, expansion))
        return totals


def _add(target: dict[str, Any], source: dict[str, Any]) -> None:
    target["count"] += source["count"]
    for name in ("arr", "weighted_arr", "expected_churn"):
        target[name] += source[name]
    if target["expansion_count"] is not None:
        target["expansion_count"] += source["expansion_count"]
        target["expansion_pipeline"] += source["expansion_pipeline"]
    by_category = target["arr_by_category"]
    for category, amount in source["arr_by_category"].items():
        by_category[category] += amount


def _merge(groups: dict[Any, dict[str, Any]], key: Any, sums: dict[str, Any]) -> None:
    """Add a (group, currency) row's sums to its group; most groups have one currency."""
    existing = groups.get(key)
    if existing is None:
        groups[key] = sums
    else:
        _add(existing, sums)


def _sort_value(value: Any) -> tuple[int, str]:
    return (1, "") if value is None else (0, str(value))


def _in_row_order(dialect: str, columns: Sequence[Any]) -> list[Any]:
    """ORDER BY for the documented row order, `_sort_value`'s, in SQL: values ascending as
    text compares in Python (by code point), nulls last.

    Fiscal years, quarters and months are numbers here but their labels (FY2027-Q1, 2027-03)
    have fixed widths, so numeric order is their text order. PostgreSQL compares text by the
    database's collation unless told "C" (code points); SQLite compares bytes already."""
    order = []
    for column in columns:
        if dialect == "postgresql" and isinstance(column.type, String):
            column = column.collate("C")
        order.append(column.asc().nulls_last())
    return order


async def renewal_forecast(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    starts_on: date | None = None,
    ends_on: date | None = None,
    group_by: Sequence[str] = (),
    owner: str | None = None,
    include: Sequence[str] = (),
) -> dict[str, Any]:
    """Renewals in the window grouped by the dimensions: count, ARR, weighted ARR (ARR x
    probability), ARR by category and expected churn (ARR x (1 - probability)), in the
    reporting currency, with totals. Amounts are exact Decimals."""
    dimensions = _check_group_by(group_by)
    views = _check_include(include)
    ctx = await _context(session, workspace_id, starts_on, ends_on, owner)
    settings = ctx.settings
    renewals = _renewals(ctx)
    # Group keys are columns of a subquery, so GROUP BY names them instead of repeating
    # expressions whose bound parameters PostgreSQL would not recognise as the same.
    keyed = select(renewals, *_group_columns(ctx, renewals, dimensions)).subquery("keyed")
    r = keyed.c
    key_names = _key_names(dimensions)
    group_columns = [r[name] for name in key_names]
    # Grouped by category, a group's ARR is its category's: SQL sums only what it must.
    category_at = key_names.index("category") if "category" in key_names else None
    by_category = (
        func.sum(case((r.category == category, r.arr_cents), else_=0)).label(category)
        for category in ALL_CATEGORIES
    )
    statement = select(
        *group_columns,
        r.currency.label("_currency"),
        func.count().label("renewals"),
        func.sum(r.arr_cents).label("arr"),
        func.sum(r.arr_cents * r.probability).label("weighted"),
        *(by_category if category_at is None else ()),
    ).group_by(*group_columns, r.currency)
    connection = await session.connection()
    ordered_by = _in_row_order(connection.dialect.name, [*group_columns, r.currency])
    # A Core result: the ORM's row loading costs more than these plain tuples need.
    rows = (await connection.execute(statement.order_by(*ordered_by), _values(ctx))).all()
    expansion_rows: list[Any] = []
    if "expansion" in views:
        expansion_rows = list(await _expansion_rows(session, ctx, dimensions))
    width = len(group_columns)
    rates = {currency: settings.rate(currency) for currency in {row[width] for row in rows}}
    _check_rates(settings, [*rates, *(row[width] for row in expansion_rows)])
    expansion = "expansion" in views
    key_of = _key_reader(dimensions)
    groups: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
    all_renewals = _CurrencySums()
    for row in rows:
        currency = row[width]
        rate = rates[currency]
        assert rate is not None
        category = None if category_at is None else row[category_at]
        values = row[width + 1 :]
        _merge(groups, key_of(row), _renewal_sums(values, rate, expansion, category))
        all_renewals.add(currency, values, category)
    totals = all_renewals.totals(rates, expansion)
    for row in expansion_rows:
        rate = settings.rate(row[width])
        assert rate is not None
        sums = _empty_sums(expansion)
        sums["expansion_count"] = int(row[width + 1])
        sums["expansion_pipeline"] = Decimal(int(row[width + 2])).scaleb(-4) * rate
        _merge(groups, key_of(row), sums)
        _add(totals, sums)
    if expansion:
        for sums in (*groups.values(), totals):
            sums.update(retention_fields(sums))
    # Groups came in the documented order; expansion may have added groups at the end.
    ordered = list(groups.items())
    if expansion_rows:
        ordered.sort(key=lambda item: [_sort_value(v) for _, v in item[0]])
    # Keys in the order of the response model's fields (ForecastRow: the sums, then the
    # group), so that the route can serialise this dict as it is.
    for key, sums in ordered:
        sums["group"] = dict(key)
    return {
        "from": ctx.window.starts_on,
        "to": ctx.window.ends_on,
        "as_of": ctx.window.as_of,
        "reporting_currency": settings.reporting_currency,
        "fiscal_year_start_month": ctx.fiscal_year_start_month,
        "group_by": dimensions,
        "include": views,
        "rows": [sums for _, sums in ordered],
        "totals": totals,
    }


# --- the per-account list ----------------------------------------------------------------


def _encode_cursor(value: date | int, contract_id: uuid.UUID) -> str:
    # The JSON array `json.dumps` writes for these two types, without its encoder's cost (every
    # row of a page carries a cursor); `_decode_cursor` reads it with `json.loads`.
    if isinstance(value, date):
        raw = f'["{value.isoformat()}", "{contract_id}"]'
    else:
        raw = f'[{int(value)}, "{contract_id}"]'
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, contract_id = json.loads(raw)
        if sort == "renewal_date":
            value = date.fromisoformat(value)
        elif not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(value)
        return value, uuid.UUID(contract_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise _invalid(
            "cursor",
            "not valid for this sort; pass the next_cursor of the previous page unchanged",
        ) from None


def _arr_sort_key(settings: ForecastSettings, renewals: Subquery, currencies: list[str]) -> Any:
    """ARR in the reporting currency, scaled to integers (cents x 10^6), for ordering."""
    r = renewals.c
    whens = []
    for code in currencies:
        rate = settings.rate(code)
        assert rate is not None
        whens.append((r.currency == code, int(rate * _RATE_SCALE)))
    factor = case(*whens, else_=_RATE_SCALE) if whens else literal(_RATE_SCALE)
    return cast(r.arr_cents, Numeric(38, 0)) * factor


def _signals(settings: ForecastSettings, row: Any) -> list[dict[str, Any]]:
    """The signals that set the row's probability, each with its effect in percentage points."""
    if row.status != "active":
        return [{"signal": "contract_status", "value": row.status, "effect": None}]
    weights = settings.weights
    found: list[dict[str, Any]] = [{"signal": "base", "value": None, "effect": settings.base}]

    def add(signal: str, value: Any, effect: int) -> None:
        if effect:
            found.append({"signal": signal, "value": value, "effect": effect})

    add("auto_renew", True, weights["auto_renew"] if row.auto_renew else 0)
    add(
        "outcomes_achieved",
        row.outcomes_achieved,
        row.outcomes_achieved * weights["outcome_achieved"],
    )
    add("outcomes_missed", row.outcomes_missed, row.outcomes_missed * weights["outcome_missed"])
    if row.plan_health is not None:
        health = HEALTH_NAMES[int(row.plan_health)]
        add("plan_health", health, weights[f"plan_{health}"])
    add("stage", row.stage, int(row.stage_effect))
    add(
        "stuck_in_stage",
        f"more than {settings.stuck_after_days} days",
        weights["stuck_in_stage"] if row.stuck else 0,
    )
    overdue = min(row.overdue_tasks, settings.overdue_tasks_counted)
    add("overdue_tasks", row.overdue_tasks, overdue * weights["overdue_task"])
    add("open_escalations", row.escalations, weights["open_escalation"] if row.escalations else 0)
    add("renewal_date_passed", True, weights["renewal_date_passed"] if row.renewal_passed else 0)
    add(
        "renewal_soon",
        f"within {settings.renewal_soon_days} days",
        weights["renewal_soon"] if row.renewal_soon else 0,
    )
    if row.renewal_opportunity in ("open", "won", "lost"):
        add(
            "renewal_opportunity",
            row.renewal_opportunity,
            weights[f"renewal_opportunity_{row.renewal_opportunity}"],
        )
    return found


async def _latest_overrides(
    session: AsyncSession, workspace_id: uuid.UUID, contract_ids: list[uuid.UUID]
) -> dict[uuid.UUID, ForecastOverride]:
    if not contract_ids:
        return {}
    rows = await session.scalars(
        select(ForecastOverride)
        .where(
            col(ForecastOverride.workspace_id) == workspace_id,
            col(ForecastOverride.contract_id).in_(contract_ids),
        )
        .order_by(col(ForecastOverride.id))
    )
    return {row.contract_id: row for row in rows}  # the last one per contract wins


_PAGE_SIZE = bindparam("page_size", type_=Integer())
_AFTER_CONTRACT = bindparam("after_contract", type_=tables.contracts.c.id.type)
_AFTER_VALUE = "after_value"  # typed as the sort key, per statement
_PAGES: OrderedDict[tuple[Any, ...], Select[Any]] = OrderedDict()


def _page_statement(
    ctx: _Context, sort: str, descending: bool, *, after_cursor: bool
) -> Select[Any]:
    """A page of `_renewals(ctx)` in the sort's order, remembered for its shape like the
    renewals themselves; run it with `_values(ctx)`, the page size and the cursor's values."""
    key = (ctx.owner is None, repr(ctx.settings), sort, descending, after_cursor)
    return _remembered(_PAGES, key, lambda: _build_page(ctx, sort, descending, after_cursor))


def _build_page(ctx: _Context, sort: str, descending: bool, after_cursor: bool) -> Select[Any]:
    settings = ctx.settings
    renewals = _renewals(ctx)
    r = renewals.c
    known = [settings.reporting_currency, *settings.rates]
    sort_key: Any = {
        "renewal_date": r.renewal_date,
        "probability": r.probability,
        "arr": _arr_sort_key(settings, renewals, known),
    }[sort]
    # Renewals (from this page on) in a currency without a rate, counted with the page instead
    # of by a query of its own: the names for the 422 are looked up only when there are some.
    unknown = func.sum(case((r.currency.in_(known), 0), else_=1)).over()
    statement = select(renewals, sort_key.label("sort_key"), unknown.label("unknown_currencies"))
    if after_cursor:
        value = bindparam(_AFTER_VALUE, type_=sort_key.type)
        beyond = sort_key < value if descending else sort_key > value
        tie = r.contract_id < _AFTER_CONTRACT if descending else r.contract_id > _AFTER_CONTRACT
        statement = statement.where(or_(beyond, and_(sort_key == value, tie)))
    order = (sort_key.desc(), r.contract_id.desc()) if descending else (sort_key, r.contract_id)
    return statement.order_by(*order).limit(_PAGE_SIZE)


async def renewal_accounts(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    starts_on: date | None = None,
    ends_on: date | None = None,
    sort: str = "renewal_date",
    descending: bool = False,
    limit: int,
    cursor: str | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """Each renewal in the window with its probability, category and the signals behind it."""
    if sort not in SORTS:
        raise _invalid("sort", f"one of {', '.join(SORTS)}")
    ctx = await _context(session, workspace_id, starts_on, ends_on, owner)
    settings = ctx.settings
    values = _values(ctx) | {_PAGE_SIZE.key: limit + 1}
    if cursor:
        value, after = _decode_cursor(cursor, sort)
        values |= {_AFTER_VALUE: value, _AFTER_CONTRACT.key: after}
    statement = _page_statement(ctx, sort, descending, after_cursor=bool(cursor))
    # A Core result, as for the grouped forecast: plain rows, no ORM loading.
    connection = await session.connection()
    rows = (await connection.execute(statement, values)).all()
    if rows and rows[0].unknown_currencies:
        _check_rates(settings, await _currencies(session, ctx))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        key = last.sort_key
        next_cursor = _encode_cursor(key if isinstance(key, date) else int(key), last.contract_id)
    # Who set an override and why, for the rows that have one (most have none).
    overridden = [row.contract_id for row in rows if row.override is not None]
    overrides = await _latest_overrides(session, workspace_id, overridden)
    items = []
    for row in rows:
        rate = settings.rate(row.currency)
        assert rate is not None
        arr = _cents(row.arr_cents)
        probability = Decimal(int(row.probability)).scaleb(-2)
        override = overrides.get(row.contract_id)
        signals = _signals(settings, row)
        if row.status == "active" and override is not None and override.probability is not None:
            signals.append(
                {
                    "signal": "manual_override",
                    "value": override.probability,
                    "effect": None,
                    "reason": override.reason,
                    "author": override.author,
                    "at": override.created_at,
                }
            )
        key = row.sort_key
        cursor_value = key if isinstance(key, date) else int(key)
        items.append(
            {
                # Where a page starting after this row begins (GraphQL edges carry it).
                "cursor": _encode_cursor(cursor_value, row.contract_id),
                "contract_id": row.contract_id,
                "account_id": row.account_id,
                "account_name": row.account_name,
                "renewal_date": row.renewal_date,
                "status": row.status,
                "segment": row.segment,
                "stage": row.stage,
                "owner": row.owner_id,
                "owner_name": row.owner_name,
                "currency": row.currency,
                "arr": arr,
                "arr_reporting": arr * rate,
                "probability": probability,
                "weighted_arr": arr * rate * probability,
                "category": row.category,
                "signals": signals,
            }
        )
    return {
        "from": ctx.window.starts_on,
        "to": ctx.window.ends_on,
        "as_of": ctx.window.as_of,
        "reporting_currency": settings.reporting_currency,
        "items": items,
        "next_cursor": next_cursor,
    }


# --- manual overrides --------------------------------------------------------------------


async def override_probability(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    contract_id: uuid.UUID,
    probability: int | None,
    reason: str,
    author: str,
) -> ForecastOverride:
    """Record a CSM's call on a renewal's probability (None hands it back to the signals)."""
    if probability is not None and not 0 <= probability <= 100:
        raise _invalid("probability", "whole percentage points, 0 to 100", place="body")
    if not reason.strip():
        raise _invalid("reason", "say why the forecast is overridden", place="body")
    contract = await session.scalar(
        select(Contract).where(
            col(Contract.workspace_id) == workspace_id, col(Contract.id) == contract_id
        )
    )
    if contract is None:
        raise NotFound(f"contract {contract_id} not found")
    row = ForecastOverride(
        workspace_id=workspace_id,
        contract_id=contract.id,
        account_id=contract.account_id,
        probability=probability,
        reason=reason.strip(),
        author=author,
    )
    session.add(row)
    await session.flush()
    return row


async def list_overrides(
    session: AsyncSession, *, workspace_id: uuid.UUID, contract_id: uuid.UUID
) -> list[ForecastOverride]:
    """Every override of the contract's forecast, oldest first (the audit trail)."""
    exists = await session.scalar(
        select(col(Contract.id)).where(
            col(Contract.workspace_id) == workspace_id, col(Contract.id) == contract_id
        )
    )
    if exists is None:
        raise NotFound(f"contract {contract_id} not found")
    rows = await session.scalars(
        select(ForecastOverride)
        .where(
            col(ForecastOverride.workspace_id) == workspace_id,
            col(ForecastOverride.contract_id) == contract_id,
        )
        .order_by(col(ForecastOverride.id))
    )
    return list(rows)


__all__ = [
    "GROUP_BY",
    "SORTS",
    "list_overrides",
    "override_probability",
    "renewal_accounts",
    "renewal_forecast",
]
