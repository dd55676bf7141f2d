"""GraphQL types of playbooks (the published rules and their versions) and simulation;
the `playbook` and `playbookVersions` queries, `simulatePlaybook` and `publishPlaybook`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import strawberry
from pydantic import ValidationError
from strawberry.scalars import JSON

from service.errors import InvalidInput
from service.graphql.context import CanRead, IsAdmin, context_of
from service.graphql.errors import invalid_input
from service.graphql.inputs import plain
from service.graphql.pagination import nested_limit
from service.graphql.rows import from_row
from service.lifecycle.graphql import EventInput
from service.playbooks import service as playbooks_service
from service.playbooks import simulation
from service.playbooks.routes import SimulationRequest


@strawberry.type(
    description="A published version of the workspace's playbook: stages, quarterbacks, "
    "rules, time rules (schemas/playbook.schema.json). Versions never change once published."
)
class Playbook:
    version: int
    name: str
    published_at: datetime
    published_by: str | None
    note: str | None
    document: JSON = strawberry.field(description="The document, as published.")


def playbook_of(row: Any) -> Playbook:
    return from_row(Playbook, row)


@strawberry.type(description="A task an event would raise.")
class SimulatedTask:
    kind: str
    title: str
    department: str
    from_department: str | None
    assignee_id: str | None
    assignee_name: str | None
    due_in_business_days: int | None
    priority: str
    checklist: list[str]


@strawberry.type(description="What an event would do under a playbook; nothing was written.")
class SimulationResult:
    playbook_version: int | None = strawberry.field(description="Null for a draft.")
    draft: bool
    outcome: str = strawberry.field(description="applied, pending or ignored.")
    reason: str | None
    rule: str | None
    account_id: str | None
    from_stage: str
    to_stage: str | None
    skipped_stages: list[str]
    handoff: SimulatedTask | None
    tasks: list[SimulatedTask]
    success_plan_scaffold: bool


@strawberry.input(description="An account described for a simulation, instead of a real one.")
class SimulatedAccountInput:
    name: str | None = None
    domain: str | None = None
    stage: str | None = None
    segment: str | None = None
    arr: str | None = None
    owners: JSON | None = strawberry.field(
        default=None, description="{department: {user_id, name}}."
    )


@strawberry.type
class Query:
    @strawberry.field(
        description="The playbook in force, or the given published `version`.",
        permission_classes=[CanRead],
    )
    async def playbook(self, info: strawberry.Info, version: int | None = None) -> Playbook:
        context = context_of(info)
        async with context.reading() as session:
            if version is None:
                row = await playbooks_service.current_version_row(
                    session, workspace_id=context.workspace_id
                )
            else:
                row = await playbooks_service.get_version(
                    session, workspace_id=context.workspace_id, version=version
                )
        return playbook_of(row)

    @strawberry.field(
        description="Published versions, newest first; `before` for older ones (1..100).",
        permission_classes=[CanRead],
    )
    async def playbook_versions(
        self, info: strawberry.Info, last: int = 20, before: int | None = None
    ) -> list[Playbook]:
        context = context_of(info)
        async with context.reading() as session:
            rows = await playbooks_service.list_versions(
                session,
                workspace_id=context.workspace_id,
                limit=nested_limit(last, "last"),
                before=before,
            )
        return [playbook_of(row) for row in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="What the event would do — stage move, handoff, tasks — under the "
        "published playbook or a draft (`playbook`), on a real account (`accountId`) or a "
        "described one (`account`). Writes nothing; needs only the read scope.",
        permission_classes=[CanRead],
    )
    async def simulate_playbook(
        self,
        info: strawberry.Info,
        event: EventInput,
        sender: Annotated[
            str, strawberry.argument(name="source", description="Who sent the event.")
        ] = "api",
        account_id: uuid.UUID | None = None,
        account: SimulatedAccountInput | None = None,
        playbook: JSON | None = None,
    ) -> SimulationResult:
        try:
            body = SimulationRequest.model_validate(
                {
                    "event": plain(event, drop_none=True),
                    "source": sender,
                    "account_id": account_id,
                    "account": plain(account, drop_none=True) if account else None,
                    "playbook": playbook,
                }
            )
        except ValidationError as exc:
            raise invalid_input(exc) from None
        async with context_of(info).writing("read") as (session, principal):
            result = await simulation.simulate(
                session,
                workspace_id=principal.workspace_id,
                event=body.event.model_dump(exclude_none=True),
                source=body.source,
                account_id=body.account_id,
                account=body.account.model_dump(exclude_none=True) if body.account else None,
                draft=body.playbook,
            )
        return SimulationResult(
            **{
                **result,
                "handoff": SimulatedTask(**result["handoff"]) if result["handoff"] else None,
                "tasks": [SimulatedTask(**task) for task in result["tasks"]],
            }
        )

    @strawberry.mutation(
        description="Validate a playbook document and publish it as the next version (needs "
        "the admin scope). An invalid document fails with code `invalid_playbook` and "
        "`errors[].pointer` naming each problem.",
        permission_classes=[IsAdmin],
    )
    async def publish_playbook(
        self, info: strawberry.Info, document: JSON, note: str | None = None
    ) -> Playbook:
        if note is not None and len(note) > 2000:
            raise InvalidInput("note: at most 2000 characters")
        async with context_of(info).writing("admin") as (session, principal):
            row = await playbooks_service.publish(
                session,
                workspace_id=principal.workspace_id,
                document=document,
                actor=principal.actor,
                note=note,
            )
        return playbook_of(row)
