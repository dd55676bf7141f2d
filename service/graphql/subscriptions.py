"""GraphQL subscriptions over `graphql-transport-ws` at `/graphql`.

A subscription waits for live notices of its caller's workspace (service/kit/live.py), then
loads what its client asked for in a short session of its own and sends it. A change that
rolls back is never announced; a client connected to any replica hears changes made
through every replica (PostgreSQL LISTEN/NOTIFY), or in-process on SQLite.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Annotated

import strawberry

from service.accounts.graphql import StageTransition, account_of, transition_of
from service.graphql.context import CanRead, Context, context_of
from service.kit import live
from service.tasks.graphql import Task, task_of

if TYPE_CHECKING:
    from service.accounts.graphql import Account


@strawberry.type(description="An account moved between stages.")
class AccountStageChange:
    transition: StageTransition = strawberry.field(
        description="The move: from and to which stage, why, by whom, and the handoff raised."
    )

    @strawberry.field(description="The account as it is after the move.")
    async def account(
        self, info: strawberry.Info
    ) -> Annotated[Account, strawberry.lazy("service.accounts.graphql")]:
        row = await context_of(info).loaders.account.load(self.transition.account_id)
        assert row is not None  # the notice's account, read in the caller's workspace
        return account_of(row)


async def _notices(
    context: Context, kind: str, *, department: str | None = None, account_id: str | None = None
) -> AsyncGenerator[live.Notice, None]:
    """The caller's workspace's notices of `kind`, narrowed by department or account."""
    principal = await context.principal("read")
    workspace_id = str(principal.workspace_id)
    assert context.broadcaster is not None

    def wanted(notice: live.Notice) -> bool:
        # The workspace check is what keeps tenants apart; it comes before any filter.
        return (
            notice.workspace_id == workspace_id
            and notice.kind == kind
            and department in (None, notice.department)
            and account_id in (None, notice.account_id)
        )

    async with context.broadcaster.subscribe(wanted) as notices:
        async for notice in notices:
            yield notice


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Tasks and handoffs as they are raised in your workspace, e.g. to keep a "
        "department's handoff queue current. `department` (a key such as `csm`) limits it "
        "to the tasks of one department. Connect over `graphql-transport-ws` with the API "
        'key in `connection_init`: `{"Authorization": "Bearer <key>"}`.',
        permission_classes=[CanRead],
    )
    async def task_raised(
        self, info: strawberry.Info, department: str | None = None
    ) -> AsyncGenerator[Task, None]:
        context = context_of(info)
        async for notice in _notices(context, live.TASK_RAISED, department=department):
            async with context.notice_reads():
                row = await context.loaders.task.load(uuid.UUID(notice.id))
                if row is not None:  # deleted with its account in the meantime
                    yield task_of(row)

    @strawberry.subscription(
        description="Accounts moving between stages in your workspace, e.g. to refresh an "
        "account page; `accountId` limits it to one account.",
        permission_classes=[CanRead],
    )
    async def account_stage_changed(
        self, info: strawberry.Info, account_id: uuid.UUID | None = None
    ) -> AsyncGenerator[AccountStageChange, None]:
        context = context_of(info)
        account = str(account_id) if account_id else None
        async for notice in _notices(context, live.STAGE_CHANGED, account_id=account):
            async with context.notice_reads():
                row = await context.loaders.transition.load(uuid.UUID(notice.id))
                if row is not None:
                    yield AccountStageChange(transition=transition_of(row))
