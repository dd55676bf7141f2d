"""GraphQL types of the lifecycle: departments, stages, lifecycle events; the `lifecycle` and
`events` queries and the `submitEvent` mutation."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from pydantic import TypeAdapter, ValidationError
from strawberry.scalars import JSON

from service.graphql.context import CanRead, CanWrite, context_of
from service.graphql.errors import invalid_input
from service.graphql.inputs import parsed
from service.graphql.pagination import Connection, connection, id_cursor, page_size
from service.graphql.rows import from_row
from service.kit.pagination import decode_cursor, trim_page
from service.lifecycle import events as events_service
from service.lifecycle import service as lifecycle_service
from service.lifecycle.event_routes import EventIn, Source
from service.lifecycle.models import Department as DepartmentRow
from service.lifecycle.models import Stage as StageRow

if TYPE_CHECKING:
    from service.accounts.graphql import Account, StageTransition


@strawberry.type(
    description="A department of the company (marketing, sales, csm …) as the workspace's "
    "playbook names it. Departments are quarterbacks of stages and own tasks."
)
class Department:
    key: str = strawberry.field(description="Stable key, e.g. `professional_services`.")
    name: str = strawberry.field(description="Display name, e.g. `Professional Services`.")


def department_of(row: DepartmentRow | None, key: str) -> Department:
    return Department(key=key, name=row.name if row else key)


@strawberry.type(
    description="A stage of the lifecycle (QUALIFY, ACQUIRE …): who leads the customer in it "
    "(the quarterback), who supports, and where an account may move from it."
)
class Stage:
    key: str = strawberry.field(description="Stable key, e.g. `IMPLEMENT`.")
    name: str
    position: int = strawberry.field(description="Order in the lifecycle, from 1.")
    quarterback_key: str = strawberry.field(
        description="Key of the department that leads customers in this stage."
    )
    supporting: list[str] = strawberry.field(description="Keys of the supporting departments.")
    next_stages: list[str] = strawberry.field(description="Forward moves allowed from here.")
    backward_stages: list[str] = strawberry.field(
        description="Moves back allowed from here; they need a reason."
    )
    entered_when: str = strawberry.field(description="What brings an account into this stage.")
    handoff_checklist: list[str] = strawberry.field(
        description="Checklist of the handoff raised when an account enters this stage and "
        "the quarterback changes."
    )

    @strawberry.field(description="The quarterback department.")
    async def quarterback(self, info: strawberry.Info) -> Department:
        row = await context_of(info).loaders.department.load(self.quarterback_key)
        return department_of(row, self.quarterback_key)


def stage_of(row: StageRow) -> Stage:
    return from_row(Stage, row, quarterback_key=row.quarterback)


@strawberry.type(description="The workspace's lifecycle model, from its published playbook.")
class Lifecycle:
    departments: list[Department]
    stages: list[Stage] = strawberry.field(description="In lifecycle order.")


@strawberry.enum(description="What a lifecycle event did.")
class EventOutcome(enum.Enum):
    RECEIVED = "received"
    APPLIED = "applied"
    IGNORED = "ignored"
    PENDING = "pending"
    FAILED = "failed"


@strawberry.type(
    description="A lifecycle event as received (from a CRM, a time rule or a person) and what "
    "it did. The same (source, externalId) is applied once; repeats are only counted."
)
class LifecycleEvent:
    id: uuid.UUID
    source: str = strawberry.field(description="Who sent it, e.g. `hubspot` or `api`.")
    external_id: str = strawberry.field(description="The sender's event id.")
    type: str = strawberry.field(description="Canonical type, e.g. `closed_won`.")
    occurred_at: datetime
    account_id: uuid.UUID | None
    outcome: EventOutcome
    reason: str | None = strawberry.field(
        description="Why it was ignored, is pending or failed; notes when applied."
    )
    transition_id: uuid.UUID | None
    playbook_version: int | None = strawberry.field(
        description="The playbook version that decided."
    )
    rule: str | None = strawberry.field(description="The playbook rule that decided, if any.")
    duplicates: int = strawberry.field(description="Repeat deliveries, none applied again.")
    last_duplicate_at: datetime | None
    received_at: datetime
    decided_at: datetime | None
    payload: JSON = strawberry.field(description="The event as received (canonical form).")

    @strawberry.field(description="The account it concerns, once known.")
    async def account(
        self, info: strawberry.Info
    ) -> Annotated[Account, strawberry.lazy("service.accounts.graphql")] | None:
        from service.accounts.graphql import account_of

        if self.account_id is None:
            return None
        row = await context_of(info).loaders.account.load(self.account_id)
        return account_of(row) if row else None

    @strawberry.field(description="The stage move it made, if it made one.")
    async def transition(
        self, info: strawberry.Info
    ) -> Annotated[StageTransition, strawberry.lazy("service.accounts.graphql")] | None:
        from service.accounts.graphql import transition_of

        if self.transition_id is None:
            return None
        row = await context_of(info).loaders.transition.load(self.transition_id)
        return transition_of(row) if row else None


def event_of(row: Any) -> LifecycleEvent:
    return from_row(LifecycleEvent, row)


@strawberry.enum(description="Filter events by what they did.")
class EventOutcomeFilter(enum.Enum):
    APPLIED = "applied"
    IGNORED = "ignored"
    PENDING = "pending"
    FAILED = "failed"
    DUPLICATE = "duplicate"


@strawberry.input(description="Which events to list.")
class EventFilter:
    outcome: EventOutcomeFilter | None = strawberry.field(
        default=None, description="`DUPLICATE`: events delivered more than once."
    )
    account_id: uuid.UUID | None = None


@strawberry.input(description="An account named by an event.")
class EventAccountInput:
    id: uuid.UUID | None = None
    external_id: str | None = strawberry.field(
        default=None, description="The account's id in the event's source (the CRM)."
    )
    name: str | None = strawberry.field(
        default=None, description="Needed to create the account on `opportunity_created`."
    )
    domain: str | None = None


@strawberry.input(description="The opportunity an event is about.")
class EventOpportunityInput:
    external_id: str
    name: str | None = None
    amount: str | None = strawberry.field(default=None, description="Decimal, e.g. `12000.00`.")
    currency: str | None = None
    close_date: date | None = None
    kind: str | None = strawberry.field(default=None, description="new, renewal or expansion.")


@strawberry.input(description="The contract term an event carries.")
class EventContractInput:
    start: date
    end: date
    arr: str | None = strawberry.field(default=None, description="Decimal, e.g. `12000.00`.")
    currency: str | None = None


@strawberry.input(description="A canonical lifecycle event (schemas/lifecycle-event.schema.json).")
class EventInput:
    id: str = strawberry.field(description="Your id for it: (source, id) is applied once.")
    type: str = strawberry.field(
        description="opportunity_created, closed_won, closed_lost, go_live, "
        "renewal_window_opened, renewal_won, renewal_lost, expansion_opportunity_created, "
        "churned or stage_changed."
    )
    occurred_at: datetime = strawberry.field(description="With a time zone.")
    account: EventAccountInput | None = None
    opportunity: EventOpportunityInput | None = None
    contract: EventContractInput | None = None
    to_stage: str | None = strawberry.field(default=None, description="For `stage_changed`.")
    data: JSON | None = strawberry.field(
        default=None, description="Facts the playbook's conditions can test."
    )


@strawberry.type(description="What submitting an event did.")
class EventSubmission:
    event: LifecycleEvent
    duplicate: bool = strawberry.field(
        description="True when (source, id) was received before: nothing changed, and `event` "
        "is the first delivery's outcome."
    )


@strawberry.type
class Query:
    @strawberry.field(
        description="The workspace's departments and stages.", permission_classes=[CanRead]
    )
    async def lifecycle(self, info: strawberry.Info) -> Lifecycle:
        context = context_of(info)
        async with context.reading() as session:
            departments = await lifecycle_service.list_departments(
                session, workspace_id=context.workspace_id
            )
            stages = await lifecycle_service.list_stages(session, workspace_id=context.workspace_id)
        return Lifecycle(
            departments=[department_of(row, row.key) for row in departments],
            stages=[stage_of(row) for row in stages],
        )

    @strawberry.field(
        description="Lifecycle events, oldest first, e.g. the pending ones to see what waits.",
        permission_classes=[CanRead],
    )
    async def events(
        self,
        info: strawberry.Info,
        filter: EventFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[LifecycleEvent]:
        context = context_of(info)
        limit = page_size(first)
        filter = filter or EventFilter()
        async with context.reading() as session:
            rows = await events_service.list_events(
                session,
                workspace_id=context.workspace_id,
                outcome=filter.outcome.value if filter.outcome else None,
                account_id=filter.account_id,
                limit=limit + 1,
                after=decode_cursor(after),
            )
        rows, next_cursor = trim_page(rows, limit, lambda row: row.id)
        return connection([event_of(row) for row in rows], next_cursor, lambda e: id_cursor(e.id))


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Submit a lifecycle event, as `POST /v1/events` does: the playbook decides "
        "what it does. A repeat of (source, id) changes nothing and returns the first outcome.",
        permission_classes=[CanWrite],
    )
    async def submit_event(
        self,
        info: strawberry.Info,
        event: EventInput,
        # `source` is taken by Strawberry's resolver internals; the GraphQL name stays.
        sender: Annotated[
            str,
            strawberry.argument(name="source", description="Who sent it; (source, id) is once."),
        ] = "api",
    ) -> EventSubmission:
        checked = parsed(EventIn, event, prefix="event", drop_none=True)
        try:
            source = TypeAdapter(Source).validate_python(sender)
        except ValidationError as exc:
            raise invalid_input(exc, "event") from None
        async with context_of(info).writing() as (session, principal):
            outcome = await events_service.apply_event(
                session,
                workspace_id=principal.workspace_id,
                source=source,
                event=lifecycle_service.event_to_apply(checked.model_dump(exclude_none=True), None),
                actor=principal.actor,
            )
        return EventSubmission(event=event_of(outcome.event), duplicate=outcome.duplicate)
