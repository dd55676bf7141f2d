"""Annual success plans: scaffolding one per contract year, editing it, measuring its outcomes,
and telling from the measurements and the calendar whether the year is on track."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from service.accounts.service import get_account_row
from service.db.types import QUANTITY_SCALE, utcnow
from service.errors import Conflict, InvalidInput, NotFound
from service.kit.dates import local_today
from service.kit.pagination import decode_cursor, trim_page
from service.lifecycle import service as lifecycle_service
from service.plans import health as plan_health
from service.plans.calendar import (
    TouchpointDue,
    add_months,
    default_ends_on,
    quarter_end,
    touchpoint_schedule,
)
from service.plans.models import Measurement, PlanOutcome, SuccessPlan
from service.plans.schemas import OutcomeIn, TimelineItem, Touchpoint
from service.playbooks import hooks as playbook_hooks
from service.workspaces.models import Workspace

MAX_OUTCOMES = 3
OUTCOME_STATUSES = ("not_started", "in_progress", "achieved", "missed")
MAX_QUANTITY = Decimal(10) ** 14
FIRST_YEAR, LAST_YEAR = 1900, 2999

# The seed's annual lifecycle: onboarding first, value and expansion in the middle, renewal last.
DEFAULT_TIMELINE: tuple[dict[str, Any], ...] = (
    {
        "quarter": 1,
        "focus": "onboarding",
        "description": "Run onboarding: get the customer up to speed and to first value quickly.",
    },
    {
        "quarter": 2,
        "focus": "value",
        "description": "Prove the value of the first use case against the key outcomes.",
    },
    {
        "quarter": 3,
        "focus": "expansion",
        "description": "Expand to other teams and use cases now that the first one delivers.",
    },
    {
        "quarter": 4,
        "focus": "renewal",
        "description": "Review the year's outcomes with the customer and prepare the renewal.",
    },
)
DEFAULT_TOUCHPOINTS: tuple[dict[str, Any], ...] = (
    {"name": "Quarterly business review", "every_quarters": 1, "department": "csm"},
)


@dataclass(frozen=True)
class OutcomeView:
    outcome: PlanOutcome
    latest: Measurement | None
    target_date: date
    health: plan_health.OutcomeHealth

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.outcome.model_dump(),
            "target_date": self.target_date,
            "latest_measurement": self.latest.model_dump() if self.latest else None,
            "latest_value": self.latest.value if self.latest else None,
            "progress": self.health.progress,
            "expected_progress": self.health.expected_progress,
            "health": self.health.health,
            "health_reason": self.health.reason,
        }


@dataclass(frozen=True)
class PlanView:
    """A plan with its outcomes, their latest measurements and health as of a date."""

    plan: SuccessPlan
    outcomes: list[OutcomeView]
    health: plan_health.Health
    as_of: date
    schedule: list[TouchpointDue]

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.plan.model_dump(),
            "as_of": self.as_of,
            "health": self.health,
            "schedule": [asdict(due) for due in self.schedule],
            "outcomes": [outcome.as_dict() for outcome in self.outcomes],
        }


def _invalid(field: str, message: str, detail: str | None = None) -> InvalidInput:
    return InvalidInput(
        detail or f"{field}: {message}",
        errors=[{"field": field, "in": "body", "message": message}],
    )


def _validated(model: type[BaseModel], items: Sequence[Any], field: str) -> list[dict[str, Any]]:
    """Check plain dicts (from a playbook, GraphQL or REST) against the request schema."""
    cleaned: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            cleaned.append(model.model_validate(item).model_dump(mode="json"))
        except ValidationError as exc:
            errors.extend(
                {
                    "field": ".".join([field, str(index), *(str(part) for part in error["loc"])]),
                    "in": "body",
                    "message": error["msg"],
                }
                for error in exc.errors()
            )
    if errors:
        first = errors[0]
        raise InvalidInput(f"{first['field']}: {first['message']}", errors=errors)
    return cleaned


def _timeline(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(_validated(TimelineItem, items, "timeline"), key=lambda item: item["quarter"])


async def _touchpoints(
    session: AsyncSession, workspace_id: uuid.UUID, items: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    touchpoints = _validated(Touchpoint, items, "touchpoints")
    known = await lifecycle_service.department_keys(session, workspace_id=workspace_id)
    for index, touchpoint in enumerate(touchpoints):
        if touchpoint["department"] not in known:
            raise _invalid(
                f"touchpoints.{index}.department",
                "unknown department",
                f"unknown department {touchpoint['department']!r}; "
                f"one of {', '.join(sorted(known))}",
            )
    return touchpoints


def _quantity(value: Decimal, field: str) -> Decimal:
    value = Decimal(value)
    if not value.is_finite() or abs(value) >= MAX_QUANTITY:
        raise _invalid(field, f"must be a number below {MAX_QUANTITY:,} in size")
    if value != round(value, QUANTITY_SCALE):
        raise _invalid(field, f"at most {QUANTITY_SCALE} decimal places")
    return value


def _plan_dates(starts_on: date, ends_on: date | None) -> tuple[date, date]:
    for field, day in (("starts_on", starts_on), ("ends_on", ends_on)):
        if day is not None and not FIRST_YEAR <= day.year <= LAST_YEAR:
            raise _invalid(field, f"must fall between {FIRST_YEAR} and {LAST_YEAR}")
    if ends_on is None:
        ends_on = default_ends_on(starts_on)
    if ends_on <= starts_on:
        raise _invalid("ends_on", "must be after starts_on")
    if ends_on >= add_months(starts_on, 24):
        raise _invalid("ends_on", "a plan covers one contract year; at most two years")
    return starts_on, ends_on


async def _today(session: AsyncSession, workspace_id: uuid.UUID) -> date:
    timezone = await session.scalar(
        select(col(Workspace.timezone)).where(col(Workspace.id) == workspace_id)
    )
    return local_today(utcnow(), timezone or "UTC")


async def _plans(
    session: AsyncSession, workspace_id: uuid.UUID, account_id: uuid.UUID
) -> list[SuccessPlan]:
    result = await session.scalars(
        select(SuccessPlan)
        .where(
            col(SuccessPlan.workspace_id) == workspace_id,
            col(SuccessPlan.account_id) == account_id,
        )
        .order_by(col(SuccessPlan.contract_year))
        .with_for_update()
    )
    return list(result.all())


async def _plan(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    contract_year: int | None,
    for_update: bool = False,
) -> SuccessPlan | None:
    statement = select(SuccessPlan).where(
        col(SuccessPlan.workspace_id) == workspace_id, col(SuccessPlan.account_id) == account_id
    )
    if contract_year is not None:
        statement = statement.where(col(SuccessPlan.contract_year) == contract_year)
    statement = statement.order_by(col(SuccessPlan.contract_year).desc()).limit(1)
    if for_update:
        statement = statement.with_for_update()
    return await session.scalar(statement)


def _not_found(account_id: uuid.UUID, contract_year: int | None) -> NotFound:
    if contract_year is not None:
        return NotFound(
            f"account {account_id} has no success plan for contract year {contract_year}"
        )
    return NotFound(
        f"account {account_id} has no success plan yet; "
        f"PUT /v1/accounts/{account_id}/plan with starts_on creates one"
    )


async def scaffold_plan(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    starts_on: date,
    ends_on: date | None = None,
    timeline: list[dict[str, Any]] | None = None,
    touchpoints: list[dict[str, Any]] | None = None,
    actor: str | None = None,
) -> SuccessPlan:
    """The plan of the contract year `starts_on` falls in, created when there is none.

    Idempotent: a year whose plan covers `starts_on` is returned unchanged. Otherwise the next
    contract year is created (year 1 for an account without a plan), with the default timeline
    and touchpoints unless given. `actor` is accepted for the event path; plans keep no audit.
    """
    await get_account_row(session, workspace_id, account_id)
    plans = await _plans(session, workspace_id, account_id)
    for plan in plans:
        if plan.starts_on <= starts_on <= plan.ends_on:
            return plan
    latest = plans[-1] if plans else None
    if latest is not None and starts_on <= latest.ends_on:
        raise Conflict(
            f"{starts_on} falls before the account's latest success plan (year "
            f"{latest.contract_year}, {latest.starts_on} to {latest.ends_on}); "
            "a new contract year must start after it"
        )
    starts_on, ends_on = _plan_dates(starts_on, ends_on)
    now = utcnow()
    plan = SuccessPlan(
        workspace_id=workspace_id,
        account_id=account_id,
        contract_year=latest.contract_year + 1 if latest else 1,
        starts_on=starts_on,
        ends_on=ends_on,
        timeline=_timeline(DEFAULT_TIMELINE if timeline is None else timeline),
        touchpoints=(
            [dict(item) for item in DEFAULT_TOUCHPOINTS]
            if touchpoints is None
            else await _touchpoints(session, workspace_id, touchpoints)
        ),
        created_at=now,
        updated_at=now,
    )
    session.add(plan)
    await session.flush()
    return plan


async def get_plan(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    contract_year: int | None = None,
    as_of: date | None = None,
) -> PlanView:
    """The account's plan (the latest contract year unless one is asked for), with each
    outcome's latest measurement on or before `as_of` (default: today in the workspace's
    time zone), its progress and health, and the plan's health."""
    await get_account_row(session, workspace_id, account_id)
    plan = await _plan(session, workspace_id, account_id, contract_year)
    if plan is None:
        raise _not_found(account_id, contract_year)
    return await _view(session, plan, as_of or await _today(session, workspace_id))


async def _view(session: AsyncSession, plan: SuccessPlan, as_of: date) -> PlanView:
    return (await _views(session, [plan], as_of))[0]


async def _views(session: AsyncSession, plans: list[SuccessPlan], as_of: date) -> list[PlanView]:
    """Plans of one workspace with their outcomes and latest measurements: two queries."""
    if not plans:
        return []
    workspace_id = plans[0].workspace_id
    outcomes = (
        await session.scalars(
            select(PlanOutcome)
            .where(
                col(PlanOutcome.workspace_id) == workspace_id,
                col(PlanOutcome.plan_id).in_([plan.id for plan in plans]),
            )
            .order_by(col(PlanOutcome.plan_id), col(PlanOutcome.position))
        )
    ).all()
    latest = await _latest_measurements(
        session, workspace_id, [outcome.id for outcome in outcomes], as_of
    )
    by_plan: dict[uuid.UUID, list[PlanOutcome]] = {plan.id: [] for plan in plans}
    for outcome in outcomes:
        by_plan[outcome.plan_id].append(outcome)
    return [_plan_view(plan, by_plan[plan.id], latest, as_of) for plan in plans]


async def _latest_measurements(
    session: AsyncSession, workspace_id: uuid.UUID, outcome_ids: list[uuid.UUID], as_of: date
) -> dict[uuid.UUID, Measurement]:
    """Each outcome's latest measurement on or before `as_of`, in one query."""
    if not outcome_ids:
        return {}
    rank = (
        func.row_number()
        .over(
            partition_by=col(Measurement.outcome_id),
            order_by=(col(Measurement.measured_on).desc(), col(Measurement.id).desc()),
        )
        .label("rank")
    )
    ranked = (
        select(Measurement, rank)
        .where(
            col(Measurement.workspace_id) == workspace_id,
            col(Measurement.outcome_id).in_(outcome_ids),
            col(Measurement.measured_on) <= as_of,
        )
        .subquery()
    )
    measurement = aliased(Measurement, ranked)
    rows = await session.scalars(select(measurement).where(ranked.c.rank == 1))
    return {row.outcome_id: row for row in rows}


def _plan_view(
    plan: SuccessPlan,
    outcomes: Sequence[PlanOutcome],
    latest: dict[uuid.UUID, Measurement],
    as_of: date,
) -> PlanView:
    views = []
    for outcome in outcomes:
        measurement = latest.get(outcome.id)
        health = plan_health.outcome_health(
            starts_on=plan.starts_on,
            ends_on=plan.ends_on,
            baseline=outcome.baseline,
            target=outcome.target,
            target_quarter=outcome.target_quarter,
            latest_value=measurement.value if measurement else None,
            as_of=as_of,
            status=outcome.status,
        )
        target_date = quarter_end(plan.starts_on, plan.ends_on, outcome.target_quarter)
        views.append(OutcomeView(outcome, measurement, target_date, health))
    return PlanView(
        plan=plan,
        outcomes=views,
        health=plan_health.plan_health(view.health.health for view in views),
        as_of=as_of,
        schedule=touchpoint_schedule(plan.starts_on, plan.ends_on, plan.touchpoints),
    )


async def plan_views(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_ids: Sequence[uuid.UUID],
    as_of: date | None = None,
) -> dict[uuid.UUID, PlanView]:
    """The latest contract year's plan of each account that has one, by account id, with
    outcomes, latest measurements and health: four queries whatever the number of accounts."""
    if not account_ids:
        return {}
    as_of = as_of or await _today(session, workspace_id)
    rank = (
        func.row_number()
        .over(
            partition_by=col(SuccessPlan.account_id),
            order_by=col(SuccessPlan.contract_year).desc(),
        )
        .label("rank")
    )
    ranked = (
        select(SuccessPlan, rank)
        .where(
            col(SuccessPlan.workspace_id) == workspace_id,
            col(SuccessPlan.account_id).in_(list(account_ids)),
        )
        .subquery()
    )
    plan = aliased(SuccessPlan, ranked)
    plans = list(await session.scalars(select(plan).where(ranked.c.rank == 1)))
    return {view.plan.account_id: view for view in await _views(session, plans, as_of)}


async def put_plan(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    contract_year: int | None = None,
    starts_on: date | None = None,
    ends_on: date | None = None,
    timeline: list[dict[str, Any]] | None = None,
    touchpoints: list[dict[str, Any]] | None = None,
    outcomes: list[dict[str, Any]] | None = None,
    actor: str | None = None,
) -> PlanView:
    """Replace the timeline, touchpoints and outcomes of the account's current plan (or of
    `contract_year`); None keeps what is there. With no plan yet, year 1 is created from
    `starts_on`. Outcomes given with their id are kept, with their measurements; outcomes left
    out are deleted; a plan has at most three."""
    if outcomes is not None and len(outcomes) > MAX_OUTCOMES:
        raise _invalid(
            "outcomes",
            f"at most {MAX_OUTCOMES} key outcomes",
            f"a success plan has at most three key outcomes, {len(outcomes)} were given: "
            "keep the three that matter most for the renewal",
        )
    cleaned = _validated(OutcomeIn, outcomes, "outcomes") if outcomes is not None else None
    await get_account_row(session, workspace_id, account_id)
    plan = await _plan(session, workspace_id, account_id, contract_year, for_update=True)
    now = utcnow()
    if plan is None:
        if contract_year not in (None, 1):
            raise _not_found(account_id, contract_year)
        if starts_on is None:
            raise _invalid(
                "starts_on",
                "required for the account's first plan",
                "this account has no success plan yet; give starts_on (the first day of the "
                "contract year) to create one",
            )
        plan = await scaffold_plan(
            session,
            workspace_id=workspace_id,
            account_id=account_id,
            starts_on=starts_on,
            ends_on=ends_on,
            timeline=timeline,
            touchpoints=touchpoints,
            actor=actor,
        )
    else:
        if starts_on is not None or ends_on is not None:
            await _move_plan(session, plan, starts_on or plan.starts_on, ends_on)
        if timeline is not None:
            plan.timeline = _timeline(timeline)
        if touchpoints is not None:
            plan.touchpoints = await _touchpoints(session, workspace_id, touchpoints)
        plan.updated_at = now
    if cleaned is not None:
        await _replace_outcomes(session, plan, cleaned, now)
    await session.flush()
    if touchpoints is not None or starts_on is not None or ends_on is not None:
        # New cadence or dates: timers for the touchpoints now due (dropped ones do nothing).
        await playbook_hooks.plan_scaffolded(session, plan=plan)
    return await _view(session, plan, await _today(session, workspace_id))


async def _move_plan(
    session: AsyncSession, plan: SuccessPlan, starts_on: date, ends_on: date | None
) -> None:
    if ends_on is None:
        # Keep the plan's length unless it was the default one year.
        ends_on = None if plan.ends_on == default_ends_on(plan.starts_on) else plan.ends_on
    starts_on, ends_on = _plan_dates(starts_on, ends_on)
    for other in await _plans(session, plan.workspace_id, plan.account_id):
        before = other.contract_year < plan.contract_year and other.ends_on >= starts_on
        after = other.contract_year > plan.contract_year and other.starts_on <= ends_on
        if before or after:
            raise Conflict(
                f"contract year {plan.contract_year} from {starts_on} to {ends_on} would overlap "
                f"year {other.contract_year} ({other.starts_on} to {other.ends_on})"
            )
    plan.starts_on, plan.ends_on = starts_on, ends_on


async def _replace_outcomes(
    session: AsyncSession, plan: SuccessPlan, items: list[dict[str, Any]], now: datetime
) -> None:
    current = {
        outcome.id: outcome
        for outcome in (
            await session.scalars(
                select(PlanOutcome).where(
                    col(PlanOutcome.workspace_id) == plan.workspace_id,
                    col(PlanOutcome.plan_id) == plan.id,
                )
            )
        ).all()
    }
    kept: set[uuid.UUID] = set()
    for index, item in enumerate(items):
        field = f"outcomes.{index}"
        baseline = _quantity(Decimal(item["baseline"]), f"{field}.baseline")
        target = _quantity(Decimal(item["target"]), f"{field}.target")
        if baseline == target:
            raise _invalid(f"{field}.target", "must differ from the baseline")
        fields = {
            "position": index + 1,
            "kpi": item["kpi"],
            "baseline": baseline,
            "target": target,
            "unit": item["unit"],
            "target_quarter": item["target_quarter"],
        }
        outcome_id = uuid.UUID(item["id"]) if item["id"] else None
        if outcome_id is None:
            session.add(
                PlanOutcome(
                    workspace_id=plan.workspace_id,
                    plan_id=plan.id,
                    status=item["status"] or "not_started",
                    created_at=now,
                    updated_at=now,
                    **fields,
                )
            )
            continue
        if outcome_id in kept:
            raise _invalid(f"{field}.id", "the same outcome is listed twice")
        outcome = current.get(outcome_id)
        if outcome is None:
            raise _invalid(
                f"{field}.id",
                "not an outcome of this plan",
                f"outcome {outcome_id} is not on this plan; omit its id to add a new outcome",
            )
        kept.add(outcome_id)
        if item["status"] is not None:
            fields["status"] = item["status"]
        changed = {name: value for name, value in fields.items() if getattr(outcome, name) != value}
        for name, value in changed.items():
            setattr(outcome, name, value)
        if changed:
            outcome.updated_at = now
    removed = [outcome_id for outcome_id in current if outcome_id not in kept]
    if removed:
        await session.execute(
            delete(Measurement).where(
                col(Measurement.workspace_id) == plan.workspace_id,
                col(Measurement.outcome_id).in_(removed),
            )
        )
        await session.execute(
            delete(PlanOutcome).where(
                col(PlanOutcome.workspace_id) == plan.workspace_id,
                col(PlanOutcome.id).in_(removed),
            )
        )
        for outcome_id in removed:
            session.expunge(current[outcome_id])


async def _outcome(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    outcome_id: uuid.UUID,
    for_update: bool = False,
) -> PlanOutcome:
    await get_account_row(session, workspace_id, account_id)
    statement = (
        select(PlanOutcome)
        .join(SuccessPlan, col(SuccessPlan.id) == col(PlanOutcome.plan_id))
        .where(
            col(PlanOutcome.workspace_id) == workspace_id,
            col(PlanOutcome.id) == outcome_id,
            col(SuccessPlan.account_id) == account_id,
        )
    )
    if for_update:
        statement = statement.with_for_update(of=PlanOutcome)
    outcome = await session.scalar(statement)
    if outcome is None:
        raise NotFound(f"outcome {outcome_id} not found on account {account_id}'s success plans")
    return outcome


async def record_measurement(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    outcome_id: uuid.UUID,
    value: Decimal,
    measured_on: date,
    note: str | None = None,
    actor: str | None = None,
) -> Measurement:
    """Record a KPI value; the first one moves a not-started outcome to in progress."""
    value = _quantity(value, "value")
    outcome = await _outcome(session, workspace_id, account_id, outcome_id, for_update=True)
    now = utcnow()
    if outcome.status == "not_started":
        outcome.status, outcome.updated_at = "in_progress", now
    measurement = Measurement(
        workspace_id=workspace_id,
        outcome_id=outcome.id,
        value=value,
        measured_on=measured_on,
        note=note,
        recorded_by=actor,
        created_at=now,
    )
    session.add(measurement)
    await session.flush()
    return measurement


async def list_measurements(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    outcome_id: uuid.UUID,
    limit: int,
    cursor: str | None,
) -> tuple[list[Measurement], str | None]:
    """The outcome's measurements in the order they were recorded."""
    await _outcome(session, workspace_id, account_id, outcome_id)
    statement = select(Measurement).where(
        col(Measurement.workspace_id) == workspace_id, col(Measurement.outcome_id) == outcome_id
    )
    after = decode_cursor(cursor)
    if after is not None:
        statement = statement.where(col(Measurement.id) > after)
    rows = list(
        (await session.scalars(statement.order_by(col(Measurement.id)).limit(limit + 1))).all()
    )
    return trim_page(rows, limit, lambda measurement: measurement.id)
