"""GraphQL types of department operational plans and the alignment check: queries
`operationalPlans`, `operationalPlan`, `alignment(quarter)`, and the plan editor's mutations.
Resolvers only translate; the rules are service/alignment/service.py's and checks.py's."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal

import strawberry

from service.alignment import checks, dependencies, schemas, updates
from service.alignment import service as alignment_service
from service.alignment.loaders import loaders_of
from service.alignment.views import DependencyView, GoalView, PlanView
from service.graphql.context import CanRead, CanWrite, context_of
from service.graphql.inputs import parsed
from service.graphql.pagination import Connection, connection, id_cursor, nested_limit, page_size
from service.graphql.rows import from_row


@strawberry.enum(name="OperationalGoalStatus")
class GoalStatus(enum.Enum):
    ACTIVE = "active"
    CANCELLED = "cancelled"


@strawberry.enum(name="OperationalDeliverableStatus")
class DeliverableStatus(enum.Enum):
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


@strawberry.enum(name="GoalProgressStatus", description="A goal's status in a weekly update.")
class ProgressStatus(enum.Enum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"
    DONE = "done"


@strawberry.enum(name="MisalignmentSeverity")
class Severity(enum.Enum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@strawberry.type(description="A goal's progress in one week (its Monday).")
class GoalProgress:
    id: uuid.UUID
    goal_id: uuid.UUID
    week: date
    value: Decimal
    status: ProgressStatus
    comment: str | None
    author: str | None
    recorded_at: datetime


@strawberry.type(description="The last weekly values, oldest first, and where they head.")
class GoalTrend:
    values: list[GoalProgress]
    direction: str | None = strawberry.field(description="up, down, flat; null with < 2.")


@strawberry.type(description="A quarterly goal serving one lifecycle stage.")
class OperationalGoal:
    id: uuid.UUID
    plan_id: uuid.UUID
    name: str
    stage: str
    metric: str
    target: Decimal
    owner: str
    source: str | None = strawberry.field(description="Lifecycle data the actual is read from.")
    status: GoalStatus
    actual: Decimal | None
    progress: Decimal | None = strawberry.field(description="actual / target; 1 = reached.")
    expected_progress: Decimal = strawberry.field(description="Share of the quarter passed.")
    behind_pace: bool
    latest_update: GoalProgress | None
    trend: GoalTrend
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="Weekly updates, the latest week first (1..100).")
    async def updates(self, info: strawberry.Info, last: int = 13) -> list[GoalProgress]:
        rows = await loaders_of(context_of(info)).goal_updates.load(
            (self.id, nested_limit(last, "last"))
        )
        return [from_row(GoalProgress, row) for row in rows]


def goal_of(view: GoalView) -> OperationalGoal:
    latest = view.latest
    return from_row(
        OperationalGoal,
        view.goal,
        actual=view.actual,
        progress=view.progress,
        expected_progress=view.expected_progress,
        behind_pace=view.behind_pace,
        latest_update=from_row(GoalProgress, latest) if latest else None,
        trend=GoalTrend(
            values=[from_row(GoalProgress, row) for row in view.recent],
            direction=view.direction,
        ),
    )


@strawberry.type(name="OperationalDeliverable")
class Deliverable:
    id: uuid.UUID
    plan_id: uuid.UUID
    name: str
    due_quarter: str
    owner: str | None
    status: DeliverableStatus
    created_at: datetime
    updated_at: datetime


@strawberry.type(description="An item of this plan needs another department's goal or deliverable.")
class PlanDependency:
    id: uuid.UUID
    from_kind: str
    from_id: uuid.UUID
    from_name: str
    needs_kind: str
    needs_id: uuid.UUID
    needs_name: str
    needs_department: str
    needs_plan_id: uuid.UUID
    needs_due_quarter: str
    needs_status: str
    note: str | None
    created_at: datetime
    as_of: strawberry.Private[date]

    @strawberry.field(description="The other department's plan.")
    async def needs_plan(self, info: strawberry.Info) -> OperationalPlan | None:
        view = await loaders_of(context_of(info)).plan.load((self.needs_plan_id, self.as_of))
        return plan_of(view) if view else None


def dependency_of(view: DependencyView, as_of: date) -> PlanDependency:
    return from_row(PlanDependency, view.as_dict(), as_of=as_of)


@strawberry.type(description="A department's operational plan for one fiscal quarter.")
class OperationalPlan:
    id: uuid.UUID
    department: str
    quarter: str = strawberry.field(description="`2027-Q1`: fiscal quarter 1 of FY2027.")
    starts_on: date
    ends_on: date
    as_of: date
    summary: str | None
    goals: list[OperationalGoal]
    deliverables: list[Deliverable]
    dependencies: list[PlanDependency]
    created_at: datetime
    updated_at: datetime


def plan_of(view: PlanView) -> OperationalPlan:
    return from_row(
        OperationalPlan,
        view.plan,
        starts_on=view.starts_on,
        ends_on=view.ends_on,
        as_of=view.as_of,
        goals=[goal_of(goal) for goal in view.goals],
        deliverables=[from_row(Deliverable, row) for row in view.deliverables],
        dependencies=[dependency_of(dep, view.as_of) for dep in view.dependencies],
    )


@strawberry.type(description="Something leadership should resolve between departments.")
class Misalignment:
    kind: str = strawberry.field(
        description="Stable code: dependency_due_late, dependency_cancelled, stage_without_goal, "
        "quarterback_without_plan, goal_off_track, goal_behind_pace."
    )
    severity: Severity
    departments: list[str]
    stage: str | None
    message: str
    plan_id: uuid.UUID | None
    goal_id: uuid.UUID | None
    deliverable_id: uuid.UUID | None
    dependency_id: uuid.UUID | None


@strawberry.type(description="The alignment check of one fiscal quarter.")
class Alignment:
    quarter: str
    starts_on: date
    ends_on: date
    as_of: date
    past_mid_quarter: bool
    plans: int
    misalignments: list[Misalignment]


@strawberry.type
class Query:
    @strawberry.field(
        description="Operational plans in the order they were created, of a quarter and a "
        "department if given.",
        permission_classes=[CanRead],
    )
    async def operational_plans(
        self,
        info: strawberry.Info,
        quarter: str | None = None,
        department: str | None = None,
        first: int | None = None,
        after: str | None = None,
        as_of: date | None = None,
    ) -> Connection[OperationalPlan]:
        context = context_of(info)
        async with context.reading() as session:
            views, next_cursor = await alignment_service.list_plans(
                session,
                workspace_id=context.workspace_id,
                quarter=quarter,
                department=department,
                limit=page_size(first),
                cursor=after,
                as_of=as_of,
            )
        return connection([plan_of(view) for view in views], next_cursor, lambda p: id_cursor(p.id))

    @strawberry.field(
        description="One operational plan; null when this workspace has none with this id.",
        permission_classes=[CanRead],
    )
    async def operational_plan(
        self, info: strawberry.Info, id: uuid.UUID, as_of: date | None = None
    ) -> OperationalPlan | None:
        view = await loaders_of(context_of(info)).plan.load((id, as_of))
        return plan_of(view) if view else None

    @strawberry.field(
        description="Every misalignment across the departments' plans for a fiscal quarter "
        "(`2027-Q1`), most severe first.",
        permission_classes=[CanRead],
    )
    async def alignment(
        self, info: strawberry.Info, quarter: str, as_of: date | None = None
    ) -> Alignment:
        context = context_of(info)
        async with context.reading() as session:
            result = await checks.check_alignment(
                session, workspace_id=context.workspace_id, quarter=quarter, as_of=as_of
            )
        return Alignment(
            **{
                **vars(result),
                "misalignments": [Misalignment(**vars(m)) for m in result.misalignments],
            }
        )


# --- inputs and mutations --------------------------------------------------------------------


@strawberry.input
class OperationalGoalInput:
    name: str
    stage: str
    metric: str
    target: Decimal
    owner: str
    source: str | None = None


@strawberry.input(description="Fields left out stay as they are.")
class OperationalGoalChanges:
    name: str | None = strawberry.UNSET
    stage: str | None = strawberry.UNSET
    metric: str | None = strawberry.UNSET
    target: Decimal | None = strawberry.UNSET
    owner: str | None = strawberry.UNSET
    source: str | None = strawberry.UNSET
    status: GoalStatus | None = strawberry.UNSET


@strawberry.input(name="OperationalDeliverableInput")
class DeliverableInput:
    name: str
    due_quarter: str | None = None
    owner: str | None = None
    status: DeliverableStatus = DeliverableStatus.PLANNED


@strawberry.input(
    name="OperationalDeliverableChanges", description="Fields left out stay as they are."
)
class DeliverableChanges:
    name: str | None = strawberry.UNSET
    due_quarter: str | None = strawberry.UNSET
    owner: str | None = strawberry.UNSET
    status: DeliverableStatus | None = strawberry.UNSET


@strawberry.input
class OperationalPlanInput:
    department: str
    quarter: str
    summary: str | None = None
    goals: list[OperationalGoalInput] = strawberry.field(default_factory=list)
    deliverables: list[DeliverableInput] = strawberry.field(default_factory=list)


@strawberry.input(
    name="OperationalDependencyInput",
    description="One of fromGoalId/fromDeliverableId, and one of needsGoalId/needsDeliverableId.",
)
class DependencyInput:
    from_goal_id: uuid.UUID | None = None
    from_deliverable_id: uuid.UUID | None = None
    needs_goal_id: uuid.UUID | None = None
    needs_deliverable_id: uuid.UUID | None = None
    note: str | None = None


@strawberry.input
class GoalProgressInput:
    goal_id: uuid.UUID
    value: Decimal | None = None
    status: ProgressStatus
    comment: str | None = None


@strawberry.input(name="OperationalUpdateInput")
class WeeklyUpdateInput:
    week: date
    author: str | None = None
    goals: list[GoalProgressInput]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="A department's plan for a fiscal quarter, with its first goals and "
        "deliverables; one per department and quarter.",
        permission_classes=[CanWrite],
    )
    async def create_operational_plan(
        self, info: strawberry.Info, input: OperationalPlanInput
    ) -> OperationalPlan:
        body: schemas.OperationalPlanCreate = parsed(schemas.OperationalPlanCreate, input)
        async with context_of(info).writing() as (session, principal):
            view = await alignment_service.create_plan(
                session,
                workspace_id=principal.workspace_id,
                department=body.department,
                quarter=body.quarter,
                summary=body.summary,
                goals=[goal.model_dump() for goal in body.goals],
                deliverables=[item.model_dump() for item in body.deliverables],
            )
        return plan_of(view)

    @strawberry.mutation(
        description="Change a plan's summary (null clears it; left out, it stays).",
        permission_classes=[CanWrite],
    )
    async def update_operational_plan(
        self, info: strawberry.Info, id: uuid.UUID, summary: str | None = strawberry.UNSET
    ) -> OperationalPlan:
        given = {} if summary is strawberry.UNSET else {"summary": summary}
        body: schemas.OperationalPlanChanges = parsed(schemas.OperationalPlanChanges, given)
        async with context_of(info).writing() as (session, principal):
            view = await alignment_service.update_plan(
                session,
                workspace_id=principal.workspace_id,
                plan_id=id,
                changes=body.model_dump(exclude_unset=True),
            )
        return plan_of(view)

    @strawberry.mutation(permission_classes=[CanWrite])
    async def add_operational_goal(
        self, info: strawberry.Info, plan_id: uuid.UUID, input: OperationalGoalInput
    ) -> OperationalPlan:
        body: schemas.OperationalGoalCreate = parsed(schemas.OperationalGoalCreate, input)
        async with context_of(info).writing() as (session, principal):
            view = await alignment_service.add_goal(
                session,
                workspace_id=principal.workspace_id,
                plan_id=plan_id,
                fields=body.model_dump(),
            )
        return plan_of(view)

    @strawberry.mutation(
        description="Edit a goal; `status: CANCELLED` cancels it.", permission_classes=[CanWrite]
    )
    async def update_operational_goal(
        self,
        info: strawberry.Info,
        plan_id: uuid.UUID,
        goal_id: uuid.UUID,
        input: OperationalGoalChanges,
    ) -> OperationalPlan:
        body: schemas.OperationalGoalChanges = parsed(schemas.OperationalGoalChanges, input)
        async with context_of(info).writing() as (session, principal):
            view = await alignment_service.update_goal(
                session,
                workspace_id=principal.workspace_id,
                plan_id=plan_id,
                goal_id=goal_id,
                changes=body.model_dump(exclude_unset=True),
            )
        return plan_of(view)

    @strawberry.mutation(permission_classes=[CanWrite])
    async def add_operational_deliverable(
        self, info: strawberry.Info, plan_id: uuid.UUID, input: DeliverableInput
    ) -> OperationalPlan:
        body: schemas.OperationalDeliverableCreate = parsed(
            schemas.OperationalDeliverableCreate, input
        )
        async with context_of(info).writing() as (session, principal):
            view = await alignment_service.add_deliverable(
                session,
                workspace_id=principal.workspace_id,
                plan_id=plan_id,
                fields=body.model_dump(),
            )
        return plan_of(view)

    @strawberry.mutation(
        description="Edit a deliverable: move its due quarter, set its status (CANCELLED too).",
        permission_classes=[CanWrite],
    )
    async def update_operational_deliverable(
        self,
        info: strawberry.Info,
        plan_id: uuid.UUID,
        deliverable_id: uuid.UUID,
        input: DeliverableChanges,
    ) -> OperationalPlan:
        body: schemas.OperationalDeliverableChanges = parsed(
            schemas.OperationalDeliverableChanges, input
        )
        async with context_of(info).writing() as (session, principal):
            view = await alignment_service.update_deliverable(
                session,
                workspace_id=principal.workspace_id,
                plan_id=plan_id,
                deliverable_id=deliverable_id,
                changes=body.model_dump(exclude_unset=True),
            )
        return plan_of(view)

    @strawberry.mutation(
        description="An item of this plan needs another department's goal or deliverable.",
        permission_classes=[CanWrite],
    )
    async def add_operational_dependency(
        self, info: strawberry.Info, plan_id: uuid.UUID, input: DependencyInput
    ) -> OperationalPlan:
        body: schemas.OperationalDependencyCreate = parsed(
            schemas.OperationalDependencyCreate, input
        )
        async with context_of(info).writing() as (session, principal):
            view = await dependencies.add_dependency(
                session, workspace_id=principal.workspace_id, plan_id=plan_id, **body.model_dump()
            )
        return plan_of(view)

    @strawberry.mutation(permission_classes=[CanWrite])
    async def remove_operational_dependency(
        self, info: strawberry.Info, plan_id: uuid.UUID, dependency_id: uuid.UUID
    ) -> OperationalPlan:
        async with context_of(info).writing() as (session, principal):
            view = await dependencies.remove_dependency(
                session,
                workspace_id=principal.workspace_id,
                plan_id=plan_id,
                dependency_id=dependency_id,
            )
        return plan_of(view)

    @strawberry.mutation(
        description="The weekly update: each goal's value, status and comment for a week; the "
        "same goal and week again replaces it.",
        permission_classes=[CanWrite],
    )
    async def record_operational_update(
        self, info: strawberry.Info, plan_id: uuid.UUID, input: WeeklyUpdateInput
    ) -> OperationalPlan:
        body: schemas.WeeklyUpdateCreate = parsed(schemas.WeeklyUpdateCreate, input)
        async with context_of(info).writing() as (session, principal):
            view = await updates.record_update(
                session,
                workspace_id=principal.workspace_id,
                plan_id=plan_id,
                week=body.week,
                goals=[item.model_dump() for item in body.goals],
                author=body.author or principal.actor,
            )
        return plan_of(view)
