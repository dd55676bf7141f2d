"""Success-plan signals of the forecast, in SQL: outcomes achieved or missed and plan health.

Plan health is the rule of `service.plans.health` (the plan page shows the same), spelled as
SQL so that the forecast stays one statement: each outcome of the account's latest plan
is on track, at risk or off track, and the plan is the worst of them. To stay exact on both
databases the shares are never divided: "progress ≥ 0.9 x expected" becomes
`10 * achieved * span ≥ 9 * elapsed * road`, all integers (quantities are stored x 10^4).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, and_, case, func, select, type_coerce
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery
from sqlmodel import col

from service.forecasts.sqldates import add_months, days_between, fenced
from service.plans.health import HEALTH_ORDER
from service.plans.models import Measurement, PlanOutcome, SuccessPlan

ON_TRACK, AT_RISK, OFF_TRACK = range(3)  # ranks: the plan takes the worst (highest)
HEALTH_NAMES = dict(enumerate(HEALTH_ORDER))


def _least(a: Any, b: Any) -> Any:
    return case((a < b, a), else_=b)


def _clamp(value: Any, high: Any) -> Any:
    return case((value < 0, 0), (value > high, high), else_=value)


def plan_facts(
    workspace_id: ColumnElement[Any], as_of: ColumnElement[Any], *accounts: ColumnElement[bool]
) -> Subquery:
    """Per account with a plan: outcomes achieved, outcomes missed and the plan's health rank
    (0 on track, 1 at risk, 2 off track) of its latest contract year, as of `as_of`.

    `workspace_id` and `as_of` are SQL expressions (the forecast's bound parameters);
    `accounts` narrow the accounts read (conditions on SuccessPlan.account_id)."""
    scope = [col(SuccessPlan.workspace_id) == workspace_id, *accounts]
    latest_year = (
        select(
            col(SuccessPlan.account_id).label("account_id"),
            func.max(col(SuccessPlan.contract_year)).label("year"),
        )
        .where(*scope)
        .group_by(col(SuccessPlan.account_id))
        .subquery("latest_year")
    )
    plan = aliased(SuccessPlan, name="plan")
    outcome = aliased(PlanOutcome, name="outcome")
    latest_value = (
        select(type_coerce(col(Measurement.value), BigInteger))
        .where(
            col(Measurement.workspace_id) == workspace_id,
            col(Measurement.outcome_id) == col(outcome.id),
            col(Measurement.measured_on) <= as_of,
        )
        .order_by(col(Measurement.measured_on).desc(), col(Measurement.id).desc())
        .limit(1)
        .correlate(outcome)
        .scalar_subquery()
    )
    starts_on, ends_on = col(plan.starts_on), col(plan.ends_on)
    span = days_between(ends_on, starts_on)

    def quarter_days(months: int) -> Any:
        """Days from the plan's start to the last day of the quarter ending `months` in."""
        return _least(days_between(add_months(starts_on, months), starts_on) - 1, span)

    quarter = col(outcome.target_quarter)
    outcomes = fenced(
        select(
            col(plan.account_id).label("account_id"),
            col(outcome.id).label("outcome_id"),
            col(outcome.status).label("status"),
            type_coerce(outcome.baseline, BigInteger).label("baseline"),
            type_coerce(outcome.target, BigInteger).label("target"),
            latest_value.label("value"),
            days_between(as_of, starts_on).label("elapsed"),
            quarter_days(3).label("first_quarter"),
            case(
                (quarter == 1, quarter_days(3)),
                (quarter == 2, quarter_days(6)),
                (quarter == 3, quarter_days(9)),
                else_=span,
            ).label("road"),
        )
        .select_from(plan)
        .join(
            latest_year,
            and_(
                latest_year.c.account_id == col(plan.account_id),
                latest_year.c.year == col(plan.contract_year),
            ),
        )
        .outerjoin(
            outcome,
            and_(col(outcome.plan_id) == col(plan.id), col(outcome.workspace_id) == workspace_id),
        )
        .where(col(plan.workspace_id) == workspace_id)
    ).subquery("plan_outcome_facts")
    o = outcomes.c
    direction = o.target - o.baseline
    # Progress as a fraction achieved / distance, both integers.
    distance = case((direction == 0, 1), (direction > 0, direction), else_=-direction)
    moved = case((direction > 0, o.value - o.baseline), else_=o.baseline - o.value)
    achieved = case(
        (direction == 0, case((o.value == o.target, 1), else_=0)),
        else_=_clamp(moved, distance),
    )
    # Expected progress as a fraction elapsed_share / road_share.
    road_share = case((o.road > 0, o.road), else_=1)
    elapsed_share = case(
        (o.road > 0, _clamp(o.elapsed, o.road)),
        else_=case((o.elapsed >= o.road, 1), else_=0),
    )
    health = case(
        (o.outcome_id.is_(None), ON_TRACK),  # a plan without outcomes is on track
        (o.status == "achieved", ON_TRACK),
        (o.status == "missed", OFF_TRACK),
        (o.value.is_(None), case((o.elapsed <= o.first_quarter, ON_TRACK), else_=AT_RISK)),
        (achieved >= distance, ON_TRACK),
        (10 * achieved * road_share >= 9 * elapsed_share * distance, ON_TRACK),
        (10 * achieved * road_share >= 6 * elapsed_share * distance, AT_RISK),
        else_=OFF_TRACK,
    )
    return (
        select(
            o.account_id.label("account_id"),
            func.sum(case((o.status == "achieved", 1), else_=0)).label("outcomes_achieved"),
            func.sum(case((o.status == "missed", 1), else_=0)).label("outcomes_missed"),
            func.max(health).label("plan_health"),
        )
        .group_by(o.account_id)
        .subquery("plan_facts")
    )
