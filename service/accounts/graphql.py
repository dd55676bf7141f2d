"""GraphQL types of accounts: the account page (stage, quarterback, owners, history, tasks,
plan, deals, events); the `accounts` and `account` queries; create, update and transition."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from pydantic import ValidationError

from service.accounts import service as accounts_service
from service.accounts.models import Account as AccountRow
from service.accounts.schemas import AccountCreate, AccountUpdate, TransitionCreate, dump_owners
from service.errors import StageChanged as StageChangedError
from service.errors import TransitionNotAllowed as TransitionNotAllowedError
from service.graphql.context import CanRead, CanWrite, context_of
from service.graphql.errors import invalid_input
from service.graphql.pagination import (
    Connection,
    connection,
    id_cursor,
    nested_limit,
    page_size,
)
from service.graphql.rows import from_row
from service.kit.pagination import encode_keyset_cursor
from service.lifecycle import transitions
from service.lifecycle.graphql import Department, LifecycleEvent, Stage, department_of, event_of
from service.lifecycle.graphql import stage_of as stage_type

# Imported, not lazy: Strawberry resolves a lazy argument type again on every call (an
# import and two stat() calls per value), 500 times on a page of 100 accounts' open tasks.
from service.tasks.graphql import TaskStatus

if TYPE_CHECKING:
    from service.deals.graphql import Contract, Opportunity
    from service.plans.graphql import SuccessPlan
    from service.tasks.graphql import Task


@strawberry.enum(description="How much attention the account gets.")
class Segment(enum.Enum):
    HIGH_TOUCH = "high_touch"
    MID_TOUCH = "mid_touch"
    LOW_TOUCH = "low_touch"


@strawberry.type(description="The person who owns the account in one department.")
class Owner:
    department_key: str
    user_id: str = strawberry.field(description="The user's id in your systems.")
    name: str | None

    @strawberry.field
    async def department(self, info: strawberry.Info) -> Department:
        row = await context_of(info).loaders.department.load(self.department_key)
        return department_of(row, self.department_key)


@strawberry.type(description="The account's id in another system, e.g. `hubspot` → `123`.")
class ExternalId:
    source: str
    external_id: str


@strawberry.type(description="Who leads the customer now: a department and its owner.")
class Quarterback:
    department: Department
    owner: Owner | None = strawberry.field(
        description="The account's owner in that department, if one is set."
    )


async def quarterback_of(
    info: strawberry.Info, account_id: uuid.UUID, department_key: str
) -> Quarterback:
    loaders = context_of(info).loaders
    department = await loaders.department.load(department_key)
    owners = await loaders.owners.load(account_id)
    owner = next((row for row in owners if row.department == department_key), None)
    return Quarterback(
        department=department_of(department, department_key),
        owner=Owner(department_key=department_key, user_id=owner.user_id, name=owner.user_name)
        if owner
        else None,
    )


@strawberry.type(
    description="One move of an account between stages: from where, to where, why, by whom."
)
class StageTransition:
    id: uuid.UUID
    account_id: uuid.UUID
    from_stage: str | None = strawberry.field(description="Null for the account's first row.")
    to_stage: str
    reason: str | None
    cause: str = strawberry.field(description="created, manual, event or time_rule.")
    actor: str | None = strawberry.field(description="Who moved it, e.g. `api_key:crm-sync`.")
    backward: bool
    skipped_stages: list[str] = strawberry.field(
        description="Stages jumped over under the playbook's apply_skipping policy."
    )
    playbook_version: int | None
    occurred_at: datetime
    handoff_task_id: uuid.UUID | None

    @strawberry.field(description="The handoff raised because the quarterback changed.")
    async def handoff_task(
        self, info: strawberry.Info
    ) -> Annotated[Task, strawberry.lazy("service.tasks.graphql")] | None:
        from service.tasks.graphql import task_of

        if self.handoff_task_id is None:
            return None
        row = await context_of(info).loaders.task.load(self.handoff_task_id)
        return task_of(row) if row else None


def transition_of(row: Any) -> StageTransition:
    return from_row(StageTransition, row)


@strawberry.type(
    description="A customer account: where it is on the lifecycle, who leads it, and what "
    "belongs to it. Nested lists are capped at 100 and batched, so a page of accounts with "
    "their owners, tasks and plans costs a few queries, not one per account."
)
class Account:
    id: uuid.UUID
    name: str
    domain: str | None
    segment: Segment
    arr: Decimal = strawberry.field(description="Annual recurring revenue, exact decimal.")
    currency: str
    stage_key: str = strawberry.field(description="Key of the current stage, e.g. `VALUE`.")
    stage_entered_at: datetime
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="The current stage.")
    async def stage(self, info: strawberry.Info) -> Stage | None:
        row = await context_of(info).loaders.stage.load(self.stage_key)
        return stage_type(row) if row else None

    @strawberry.field(description="The current stage's quarterback department and its owner.")
    async def quarterback(self, info: strawberry.Info) -> Quarterback | None:
        stage = await context_of(info).loaders.stage.load(self.stage_key)
        if stage is None:
            return None
        return await quarterback_of(info, self.id, stage.quarterback)

    @strawberry.field(description="Owners per department.")
    async def owners(self, info: strawberry.Info) -> list[Owner]:
        rows = await context_of(info).loaders.owners.load(self.id)
        return [
            Owner(department_key=row.department, user_id=row.user_id, name=row.user_name)
            for row in rows
        ]

    @strawberry.field(description="The account's ids in other systems (CRMs).")
    async def external_ids(self, info: strawberry.Info) -> list[ExternalId]:
        rows = await context_of(info).loaders.external_ids.load(self.id)
        return [ExternalId(source=row.source, external_id=row.external_id) for row in rows]

    @strawberry.field(description="The last `last` stage moves, newest first (1..100).")
    async def transitions(self, info: strawberry.Info, last: int = 5) -> list[StageTransition]:
        rows = await context_of(info).loaders.account_transitions.load(
            (self.id, nested_limit(last, "last"))
        )
        return [transition_of(row) for row in rows]

    @strawberry.field(
        description="The account's tasks, oldest first, at most `first` (1..100); "
        "`status: [OPEN, IN_PROGRESS]` for the open ones."
    )
    async def tasks(
        self,
        info: strawberry.Info,
        status: list[TaskStatus] | None = None,
        first: int = 50,
    ) -> list[Annotated[Task, strawberry.lazy("service.tasks.graphql")]]:
        from service.tasks.graphql import task_of

        statuses = tuple(sorted(item.value for item in status or ()))
        rows = await context_of(info).loaders.account_tasks.load(
            (self.id, statuses, nested_limit(first, "first"))
        )
        return [task_of(row) for row in rows]

    @strawberry.field(
        description="The success plan of the latest contract year, with health as of `asOf` "
        "(default: today in the workspace's time zone); null when there is none."
    )
    async def success_plan(
        self, info: strawberry.Info, as_of: date | None = None
    ) -> Annotated[SuccessPlan, strawberry.lazy("service.plans.graphql")] | None:
        from service.plans.graphql import plan_of

        view = await context_of(info).loaders.plan.load((self.id, as_of))
        return plan_of(view) if view else None

    @strawberry.field(description="Opportunities (CRM deals), newest first (1..100).")
    async def opportunities(
        self, info: strawberry.Info, last: int = 20
    ) -> list[Annotated[Opportunity, strawberry.lazy("service.deals.graphql")]]:
        from service.deals.graphql import opportunity_of

        rows = await context_of(info).loaders.account_opportunities.load(
            (self.id, nested_limit(last, "last"))
        )
        return [opportunity_of(row) for row in rows]

    @strawberry.field(description="Contract terms, newest first (1..100).")
    async def contracts(
        self, info: strawberry.Info, last: int = 20
    ) -> list[Annotated[Contract, strawberry.lazy("service.deals.graphql")]]:
        from service.deals.graphql import contract_of

        rows = await context_of(info).loaders.account_contracts.load(
            (self.id, nested_limit(last, "last"))
        )
        return [contract_of(row) for row in rows]

    @strawberry.field(description="Lifecycle events about the account, newest first (1..100).")
    async def events(self, info: strawberry.Info, last: int = 20) -> list[LifecycleEvent]:
        rows = await context_of(info).loaders.account_events.load(
            (self.id, nested_limit(last, "last"))
        )
        return [event_of(row) for row in rows]


def account_of(row: AccountRow) -> Account:
    return from_row(Account, row, stage_key=row.stage)


@strawberry.input(description="Which accounts to list; all given conditions apply.")
class AccountFilter:
    stage: str | None = strawberry.field(default=None, description="Stage key.")
    segment: Segment | None = None
    owner_id: str | None = strawberry.field(
        default=None, description="User id owning the account in any department."
    )
    search: str | None = strawberry.field(default=None, description="Name contains.")
    external_id: str | None = strawberry.field(
        default=None, description="SOURCE:ID, e.g. `hubspot:123`."
    )


@strawberry.enum
class AccountOrderField(enum.Enum):
    CREATED = "id"
    NAME = "name"
    ARR = "arr"
    STAGE_ENTERED_AT = "stage_entered_at"


@strawberry.enum
class OrderDirection(enum.Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.input(description="List order; ties are broken by creation order.")
class AccountOrder:
    field: AccountOrderField = AccountOrderField.CREATED
    direction: OrderDirection = OrderDirection.ASC


@strawberry.input(description="An owner to set; `userId: null` removes the department's owner.")
class OwnerInput:
    department: str
    user_id: str | None
    name: str | None = None


@strawberry.input(description="An id in another system to set; `externalId: null` removes it.")
class ExternalIdInput:
    source: str
    external_id: str | None


@strawberry.input(description="A new account.")
class CreateAccountInput:
    name: str
    domain: str | None = None
    segment: Segment = Segment.MID_TOUCH
    arr: Decimal = Decimal("0")
    currency: str = "USD"
    stage: str | None = strawberry.field(
        default=None, description="The stage it enters in; the lifecycle's first if omitted."
    )
    owners: list[OwnerInput] = strawberry.field(default_factory=list)
    external_ids: list[ExternalIdInput] = strawberry.field(default_factory=list)


@strawberry.input(description="Changes to an account; fields left out stay as they are.")
class UpdateAccountInput:
    name: str | None = strawberry.UNSET
    domain: str | None = strawberry.UNSET
    segment: Segment | None = strawberry.UNSET
    arr: Decimal | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET
    owners: list[OwnerInput] | None = strawberry.field(
        default=strawberry.UNSET, description="Departments to set or (userId: null) clear."
    )
    external_ids: list[ExternalIdInput] | None = strawberry.UNSET


@strawberry.input(description="What the current quarterback leaves for the next one.")
class HandoffContextInput:
    notes: str | None = None
    links: list[str] = strawberry.field(default_factory=list)
    risks: list[str] = strawberry.field(default_factory=list)


@strawberry.input(description="A move of the account to another stage.")
class TransitionInput:
    to_stage: str
    reason: str | None = strawberry.field(default=None, description="Required for a move back.")
    from_stage: str | None = strawberry.field(
        default=None,
        description="If given, the move happens only while the account is still in this stage.",
    )
    handoff: HandoffContextInput | None = None


@strawberry.type(description="The account moved.")
class TransitionSucceeded:
    transition: StageTransition
    account: Account

    @strawberry.field(description="The handoff raised when the quarterback changed.")
    async def handoff_task(
        self, info: strawberry.Info
    ) -> Annotated[Task, strawberry.lazy("service.tasks.graphql")] | None:
        return await self.transition.handoff_task(info)


@strawberry.type(description="The playbook does not allow this move from the current stage.")
class TransitionNotAllowed:
    message: str
    current_stage: str
    allowed_stages: list[str] = strawberry.field(
        description="Where the account can move from its current stage."
    )


@strawberry.type(description="The account left `fromStage` since you looked: reload it.")
class StageChanged:
    message: str
    current_stage: str


TransitionResult = Annotated[
    TransitionSucceeded | TransitionNotAllowed | StageChanged,
    strawberry.union("TransitionResult", description="What a transition request did."),
]


def _owners(items: list[OwnerInput]) -> dict[str, Any]:
    return {
        item.department: None
        if item.user_id is None
        else {"user_id": item.user_id, "name": item.name}
        for item in items
    }


def _external_ids(items: list[ExternalIdInput]) -> dict[str, str | None]:
    return {item.source: item.external_id for item in items}


async def _view(info: strawberry.Info, account_id: uuid.UUID) -> Account:
    row = await context_of(info).loaders.account.load(account_id)
    assert row is not None
    return account_of(row)


@strawberry.type
class Query:
    @strawberry.field(
        description="Accounts, a page at a time (first ≤ 100).", permission_classes=[CanRead]
    )
    async def accounts(
        self,
        info: strawberry.Info,
        filter: AccountFilter | None = None,
        order_by: AccountOrder | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Account]:
        context = context_of(info)
        limit = page_size(first)
        filter, order_by = filter or AccountFilter(), order_by or AccountOrder()
        filters = accounts_service.AccountFilter(
            stage=filter.stage,
            segment=filter.segment.value if filter.segment else None,
            owner_id=filter.owner_id,
            search=filter.search,
            external_id=filter.external_id,
        )
        field = order_by.field.value
        async with context.reading() as session:
            rows, next_cursor = await accounts_service.list_account_rows(
                session,
                workspace_id=context.workspace_id,
                filters=filters,
                limit=limit,
                cursor=after,
                order_by=field,
                descending=order_by.direction is OrderDirection.DESC,
            )

        async def count() -> int:
            async with context.reading() as session:
                return await accounts_service.count_accounts(
                    session, workspace_id=context.workspace_id, filters=filters
                )

        def cursor_of(account: Account) -> str:
            if field == "id":
                return id_cursor(account.id)
            return encode_keyset_cursor(getattr(account, field), account.id)

        return connection([account_of(row) for row in rows], next_cursor, cursor_of, count)

    @strawberry.field(
        description="One account by `id`, or by `externalId` (SOURCE:ID, e.g. `hubspot:123`); "
        "null when this workspace has no such account.",
        permission_classes=[CanRead],
    )
    async def account(
        self, info: strawberry.Info, id: uuid.UUID | None = None, external_id: str | None = None
    ) -> Account | None:
        context = context_of(info)
        if (id is None) == (external_id is None):
            from service.errors import InvalidInput

            raise InvalidInput("give exactly one of id and externalId")
        if id is not None:
            row = await context.loaders.account.load(id)
            return account_of(row) if row else None
        async with context.reading() as session:
            rows, _ = await accounts_service.list_account_rows(
                session,
                workspace_id=context.workspace_id,
                filters=accounts_service.AccountFilter(external_id=external_id),
                limit=1,
                cursor=None,
            )
        return account_of(rows[0]) if rows else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create an account.", permission_classes=[CanWrite])
    async def create_account(self, info: strawberry.Info, input: CreateAccountInput) -> Account:
        try:
            body = AccountCreate.model_validate(
                {
                    "name": input.name,
                    "domain": input.domain,
                    "segment": input.segment.value,
                    "arr": input.arr,
                    "currency": input.currency,
                    "stage": input.stage,
                    "owners": _owners(input.owners),
                    "external_ids": _external_ids(input.external_ids),
                }
            )
        except ValidationError as exc:
            raise invalid_input(exc) from None
        async with context_of(info).writing() as (session, principal):
            view = await accounts_service.create_account(
                session,
                workspace_id=principal.workspace_id,
                name=body.name,
                domain=body.domain,
                segment=body.segment,
                arr=body.arr,
                currency=body.currency,
                stage=body.stage,
                owners=dump_owners(dict(body.owners)),
                external_ids=body.external_ids,
                actor=principal.actor,
            )
        return await _view(info, view.account.id)

    @strawberry.mutation(
        description="Change an account's fields, owners or external ids.",
        permission_classes=[CanWrite],
    )
    async def update_account(
        self, info: strawberry.Info, id: uuid.UUID, input: UpdateAccountInput
    ) -> Account:
        given: dict[str, Any] = {}
        for name in ("name", "domain", "segment", "arr", "currency"):
            value = getattr(input, name)
            if value is not strawberry.UNSET:
                given[name] = value.value if isinstance(value, enum.Enum) else value
        if input.owners is not strawberry.UNSET:
            given["owners"] = _owners(input.owners or [])
        if input.external_ids is not strawberry.UNSET:
            given["external_ids"] = _external_ids(input.external_ids or [])
        try:
            body = AccountUpdate.model_validate(given)
        except ValidationError as exc:
            raise invalid_input(exc) from None
        changes = body.model_dump(exclude_unset=True, exclude={"owners"})
        if body.owners is not None:
            changes["owners"] = dump_owners(body.owners)
        async with context_of(info).writing() as (session, principal):
            view = await accounts_service.update_account(
                session, workspace_id=principal.workspace_id, account_id=id, changes=changes
            )
        return await _view(info, view.account.id)

    @strawberry.mutation(
        description="Move an account to another stage. A move the playbook does not allow "
        "comes back as `TransitionNotAllowed { allowedStages }`; a stale `fromStage` as "
        "`StageChanged`.",
        permission_classes=[CanWrite],
    )
    async def transition_account(
        self, info: strawberry.Info, account_id: uuid.UUID, input: TransitionInput
    ) -> TransitionResult:
        try:
            body = TransitionCreate.model_validate(
                {
                    "to_stage": input.to_stage,
                    "reason": input.reason,
                    "from_stage": input.from_stage,
                    "handoff": None
                    if input.handoff is None
                    else {
                        "notes": input.handoff.notes,
                        "links": input.handoff.links,
                        "risks": input.handoff.risks,
                    },
                }
            )
        except ValidationError as exc:
            raise invalid_input(exc) from None
        try:
            async with context_of(info).writing() as (session, principal):
                result = await transitions.transition_account(
                    session,
                    workspace_id=principal.workspace_id,
                    account_id=account_id,
                    to_stage=body.to_stage,
                    reason=body.reason,
                    expected_stage=body.from_stage,
                    actor=principal.actor,
                    handoff_context=body.handoff.model_dump() if body.handoff else None,
                )
        except TransitionNotAllowedError as exc:
            return TransitionNotAllowed(
                message=exc.detail,
                current_stage=exc.extra["current_stage"],
                allowed_stages=list(exc.extra["allowed_stages"]),
            )
        except StageChangedError as exc:
            return StageChanged(message=exc.detail, current_stage=exc.extra["current_stage"])
        return TransitionSucceeded(
            transition=transition_of(result.transition), account=await _view(info, account_id)
        )
