"""GraphQL types of success plans (outcomes, measurements, health) and the plan editor's
mutations `putPlan` and `recordMeasurement`."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import strawberry
from pydantic import ValidationError

from service.graphql.context import CanWrite, context_of
from service.graphql.errors import invalid_input
from service.graphql.pagination import nested_limit
from service.graphql.rows import from_row
from service.plans import service as plans_service
from service.plans.schemas import MeasurementCreate, PlanPut
from service.plans.service import OutcomeView, PlanView


@strawberry.enum(description="Whether the plan or outcome is where it should be by now.")
class Health(enum.Enum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"


@strawberry.enum
class OutcomeStatus(enum.Enum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    ACHIEVED = "achieved"
    MISSED = "missed"


@strawberry.type(description="A KPI value as measured on a day.")
class Measurement:
    id: uuid.UUID
    outcome_id: uuid.UUID
    value: Decimal
    measured_on: date
    note: str | None
    recorded_by: str | None
    created_at: datetime


def measurement_of(row: Any) -> Measurement:
    return from_row(Measurement, row)


@strawberry.type(
    description="A key outcome of the year: a KPI moving from a baseline to a target by a "
    "quarter, with its latest measurement, progress and health."
)
class Outcome:
    id: uuid.UUID
    position: int = strawberry.field(description="1..3, the order on the plan.")
    kpi: str
    baseline: Decimal
    target: Decimal
    unit: str | None
    target_quarter: int = strawberry.field(description="Quarter of the plan year, 1..4.")
    target_date: date = strawberry.field(description="Last day of the target quarter.")
    status: OutcomeStatus
    latest_measurement: Measurement | None = strawberry.field(
        description="The latest measurement on or before the plan's `asOf`."
    )
    progress: Decimal | None = strawberry.field(
        description="0..1: where the latest value stands between baseline and target."
    )
    expected_progress: Decimal = strawberry.field(description="0..1: where it should stand.")
    health: Health
    health_reason: str = strawberry.field(description="Why, in words for the account page.")
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="Measurements, latest first (1..100).")
    async def measurements(self, info: strawberry.Info, last: int = 20) -> list[Measurement]:
        rows = await context_of(info).loaders.outcome_measurements.load(
            (self.id, nested_limit(last, "last"))
        )
        return [measurement_of(row) for row in rows]


def outcome_of(view: OutcomeView) -> Outcome:
    return from_row(
        Outcome,
        view.outcome,
        target_date=view.target_date,
        latest_measurement=measurement_of(view.latest) if view.latest else None,
        progress=view.health.progress,
        expected_progress=view.health.expected_progress,
        health=view.health.health,
        health_reason=view.health.reason,
    )


@strawberry.type(description="The focus of one quarter of the plan year.")
class TimelineItem:
    quarter: int
    focus: str
    description: str | None


@strawberry.type(description="A recurring meeting with the customer, e.g. the QBR.")
class Touchpoint:
    name: str
    every_quarters: int = strawberry.field(description="1 = every quarter.")
    department: str


@strawberry.type(description="When a touchpoint falls due.")
class TouchpointDue:
    name: str
    department: str
    quarter: int
    due_on: date


@strawberry.type(
    description="An account's success plan for one contract year: up to three key outcomes "
    "on a quarterly timeline (onboarding, value, expansion, renewal) and its health."
)
class SuccessPlan:
    id: uuid.UUID
    account_id: uuid.UUID
    contract_year: int = strawberry.field(description="1 for the first year.")
    starts_on: date
    ends_on: date
    as_of: date = strawberry.field(description="The day health is computed for.")
    health: Health = strawberry.field(description="The worst of the outcomes' health.")
    timeline: list[TimelineItem]
    touchpoints: list[Touchpoint]
    schedule: list[TouchpointDue]
    outcomes: list[Outcome]
    created_at: datetime
    updated_at: datetime


def plan_of(view: PlanView) -> SuccessPlan:
    return from_row(
        SuccessPlan,
        view.plan,
        as_of=view.as_of,
        health=view.health,
        timeline=[TimelineItem(**item) for item in view.plan.timeline],
        touchpoints=[Touchpoint(**item) for item in view.plan.touchpoints],
        schedule=[
            TouchpointDue(
                name=due.name, department=due.department, quarter=due.quarter, due_on=due.due_on
            )
            for due in view.schedule
        ],
        outcomes=[outcome_of(outcome) for outcome in view.outcomes],
    )


@strawberry.input
class TimelineItemInput:
    quarter: int
    focus: str
    description: str | None = None


@strawberry.input
class TouchpointInput:
    name: str
    every_quarters: int
    department: str


@strawberry.input(description="A key outcome; keep `id` to keep it and its measurements.")
class OutcomeInput:
    id: uuid.UUID | None = None
    kpi: str
    baseline: Decimal
    target: Decimal
    unit: str | None = None
    target_quarter: int
    status: OutcomeStatus | None = strawberry.field(
        default=None, description="Omit to keep the current status."
    )


@strawberry.input(
    description="The plan as the editor shows it; lists left out stay as they are. Outcomes "
    "not listed are deleted with their measurements."
)
class PlanInput:
    starts_on: date | None = strawberry.field(
        default=None, description="Required when the account has no plan yet."
    )
    ends_on: date | None = None
    timeline: list[TimelineItemInput] | None = None
    touchpoints: list[TouchpointInput] | None = None
    outcomes: list[OutcomeInput] | None = None


def _items(items: list[Any] | None) -> list[dict[str, Any]] | None:
    if items is None:
        return None
    return [
        {
            key: value.value if isinstance(value, enum.Enum) else value
            for key, value in vars(item).items()
        }
        for item in items
    ]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Replace the plan's timeline, touchpoints and outcomes (at most three); "
        "creates the first year's plan when the account has none (startsOn required then).",
        permission_classes=[CanWrite],
    )
    async def put_plan(
        self,
        info: strawberry.Info,
        account_id: uuid.UUID,
        input: PlanInput,
        year: int | None = None,
    ) -> SuccessPlan:
        try:
            body = PlanPut.model_validate(
                {
                    "starts_on": input.starts_on,
                    "ends_on": input.ends_on,
                    "timeline": _items(input.timeline),
                    "touchpoints": _items(input.touchpoints),
                    "outcomes": _items(input.outcomes),
                }
            )
        except ValidationError as exc:
            raise invalid_input(exc) from None
        async with context_of(info).writing() as (session, principal):
            view = await plans_service.put_plan(
                session,
                workspace_id=principal.workspace_id,
                account_id=account_id,
                contract_year=year,
                starts_on=body.starts_on,
                ends_on=body.ends_on,
                timeline=_dumped(body.timeline),
                touchpoints=_dumped(body.touchpoints),
                outcomes=_dumped(body.outcomes),
                actor=principal.actor,
            )
        return plan_of(view)

    @strawberry.mutation(
        description="Record a KPI value of an outcome; the first one starts the outcome.",
        permission_classes=[CanWrite],
    )
    async def record_measurement(
        self,
        info: strawberry.Info,
        account_id: uuid.UUID,
        outcome_id: uuid.UUID,
        value: Decimal,
        measured_on: date,
        note: str | None = None,
    ) -> Measurement:
        try:
            body = MeasurementCreate(value=value, measured_on=measured_on, note=note)
        except ValidationError as exc:
            raise invalid_input(exc) from None
        async with context_of(info).writing() as (session, principal):
            row = await plans_service.record_measurement(
                session,
                workspace_id=principal.workspace_id,
                account_id=account_id,
                outcome_id=outcome_id,
                value=body.value,
                measured_on=body.measured_on,
                note=body.note,
                actor=principal.actor,
            )
        return measurement_of(row)


def _dumped(items: list[Any] | None) -> list[dict[str, Any]] | None:
    return None if items is None else [item.model_dump() for item in items]
