"""Request and response bodies of the operational-plan and alignment API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

GoalStatus = Literal["active", "cancelled"]
DeliverableStatus = Literal["planned", "in_progress", "done", "cancelled"]
UpdateStatus = Literal["on_track", "at_risk", "off_track", "done"]
Severity = Literal["high", "medium", "low"]
ItemKind = Literal["goal", "deliverable"]

QuarterLabel = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=20),
    Field(
        description="Fiscal quarter: `2027-Q1` (or `FY2027-Q1`), per the workspace's fiscal year."
    ),
]
# Stored as integers scaled by 10^4 (service.db.types.Quantity): at most 4 decimal places.
Quantity = Annotated[Decimal, Field(max_digits=18, decimal_places=4, allow_inf_nan=False)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
Note = Annotated[str, StringConstraints(max_length=2000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OperationalGoalCreate(Strict):
    name: Label
    stage: Key = Field(description="The lifecycle stage the goal serves, e.g. ACQUIRE.")
    metric: Label = Field(description="What is counted, e.g. `opportunities created`.")
    target: Quantity
    owner: Label = Field(description="Who answers for it.")
    source: Key | None = Field(
        default=None,
        description="Read the actual from lifecycle data instead of weekly values: "
        "opportunities_created, closed_won, closed_lost, go_lives, renewal_windows_opened, "
        "renewals_won, renewals_lost, expansion_opportunities_created, churned, or "
        "stage_entries:<STAGE>.",
    )


class OperationalGoalChanges(Strict):
    """Fields left out stay; `status: cancelled` cancels the goal (dependents are flagged)."""

    name: Label | None = None
    stage: Key | None = None
    metric: Label | None = None
    target: Quantity | None = None
    owner: Label | None = None
    source: Key | None = Field(default=None, description="null: back to weekly values.")
    status: GoalStatus | None = None


class OperationalDeliverableCreate(Strict):
    name: Label
    due_quarter: QuarterLabel | None = Field(
        default=None, description="Default: the plan's quarter. Never before it."
    )
    owner: Label | None = None
    status: DeliverableStatus = "planned"


class OperationalDeliverableChanges(Strict):
    """Fields left out stay. Moving `due_quarter` later or `status: cancelled` is what the
    alignment check flags for the departments that depend on the deliverable."""

    name: Label | None = None
    due_quarter: QuarterLabel | None = None
    owner: Label | None = None
    status: DeliverableStatus | None = None


class OperationalDependencyCreate(Strict):
    """One of `from_goal_id`/`from_deliverable_id` (this plan's) needs one of
    `needs_goal_id`/`needs_deliverable_id` (another department's)."""

    from_goal_id: uuid.UUID | None = None
    from_deliverable_id: uuid.UUID | None = None
    needs_goal_id: uuid.UUID | None = None
    needs_deliverable_id: uuid.UUID | None = None
    note: Note | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> OperationalDependencyCreate:
        if (self.from_goal_id is None) == (self.from_deliverable_id is None):
            raise ValueError("give exactly one of from_goal_id and from_deliverable_id")
        if (self.needs_goal_id is None) == (self.needs_deliverable_id is None):
            raise ValueError("give exactly one of needs_goal_id and needs_deliverable_id")
        return self


class OperationalPlanCreate(Strict):
    department: Key
    quarter: QuarterLabel
    summary: Note | None = None
    goals: list[OperationalGoalCreate] = Field(default_factory=list, max_length=50)
    deliverables: list[OperationalDeliverableCreate] = Field(default_factory=list, max_length=50)


class OperationalPlanChanges(Strict):
    summary: Note | None = None


class GoalProgressIn(Strict):
    goal_id: uuid.UUID
    value: Quantity | None = Field(
        default=None,
        description="Required, except for goals with a source: their value is read from "
        "lifecycle data up to the end of the week.",
    )
    status: UpdateStatus
    comment: Note | None = None


class WeeklyUpdateCreate(Strict):
    week: date = Field(description="Any day of the week; stored as its Monday, in the quarter.")
    author: Label | None = Field(default=None, description="Default: the API key's name.")
    goals: list[GoalProgressIn] = Field(min_length=1, max_length=50)


class WeeklyUpdateRead(BaseModel):
    id: uuid.UUID
    goal_id: uuid.UUID
    week: date
    value: Decimal
    status: UpdateStatus
    comment: str | None
    author: str | None
    recorded_at: datetime


class GoalTrendRead(BaseModel):
    values: list[WeeklyUpdateRead] = Field(description="The last weekly updates, oldest first.")
    direction: Literal["up", "down", "flat"] | None = Field(
        description="Last value against the one before; null with fewer than two."
    )


class OperationalGoalRead(BaseModel):
    id: uuid.UUID
    name: str
    stage: str
    metric: str
    target: Decimal
    owner: str
    source: str | None
    status: GoalStatus
    actual: Decimal | None = Field(
        description="From lifecycle data (goals with a source), else the latest update's value."
    )
    progress: Decimal | None = Field(description="actual / target; 1 = reached.")
    expected_progress: Decimal = Field(description="Share of the quarter passed by as_of.")
    behind_pace: bool
    latest_update: WeeklyUpdateRead | None
    trend: GoalTrendRead
    created_at: datetime
    updated_at: datetime


class OperationalDeliverableRead(BaseModel):
    id: uuid.UUID
    name: str
    due_quarter: str
    owner: str | None
    status: DeliverableStatus
    created_at: datetime
    updated_at: datetime


class OperationalDependencyRead(BaseModel):
    id: uuid.UUID
    from_kind: ItemKind
    from_id: uuid.UUID
    from_name: str
    needs_kind: ItemKind
    needs_id: uuid.UUID
    needs_name: str
    needs_department: str
    needs_plan_id: uuid.UUID
    needs_due_quarter: str = Field(description="A deliverable's due quarter, a goal's quarter.")
    needs_status: str
    note: str | None
    created_at: datetime


class OperationalPlanRead(BaseModel):
    id: uuid.UUID
    department: str
    quarter: str
    starts_on: date = Field(description="First day of the fiscal quarter.")
    ends_on: date = Field(description="Last day of the fiscal quarter.")
    as_of: date = Field(description="The day progress and pace are computed for.")
    summary: str | None
    goals: list[OperationalGoalRead]
    deliverables: list[OperationalDeliverableRead]
    dependencies: list[OperationalDependencyRead] = Field(
        description="What this plan's items need."
    )
    created_at: datetime
    updated_at: datetime


class OperationalPlanPage(BaseModel):
    items: list[OperationalPlanRead]
    next_cursor: str | None


class MisalignmentRead(BaseModel):
    kind: str = Field(
        description="Stable code: dependency_due_late, dependency_cancelled, "
        "stage_without_goal, quarterback_without_plan, goal_off_track, goal_behind_pace."
    )
    severity: Severity
    departments: list[str]
    stage: str | None
    message: str = Field(description="What is wrong and what to do about it.")
    plan_id: uuid.UUID | None
    goal_id: uuid.UUID | None
    deliverable_id: uuid.UUID | None
    dependency_id: uuid.UUID | None


class AlignmentRead(BaseModel):
    quarter: str
    starts_on: date
    ends_on: date
    as_of: date
    past_mid_quarter: bool
    plans: int = Field(description="How many departments have a plan for the quarter.")
    misalignments: list[MisalignmentRead] = Field(description="Most severe first.")
