"""`/v1/events` and `/v1/accounts/{id}/events`: submit canonical lifecycle events."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from service.kit.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, decode_cursor, trim_page
from service.kit.routing import PrefixedRouter
from service.lifecycle import events as events_service
from service.lifecycle import service as lifecycle_service
from service.workspaces.auth import Reader, SessionDep, Writer
from service.workspaces.service import Principal

router = PrefixedRouter(prefix="/v1", tags=["events"])

EventType = Literal[
    "opportunity_created",
    "closed_won",
    "closed_lost",
    "go_live",
    "renewal_window_opened",
    "renewal_won",
    "renewal_lost",
    "expansion_opportunity_created",
    "churned",
    "stage_changed",
]
Source = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,100}$")]
Amount = Annotated[str, StringConstraints(pattern=r"^-?[0-9]{1,14}(\.[0-9]{1,2})?$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountRef(Strict):
    id: uuid.UUID | None = None
    external_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    domain: str | None = Field(default=None, max_length=253)


class OpportunityRef(Strict):
    external_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    name: str | None = Field(default=None, max_length=300)
    amount: Amount | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    close_date: date | None = None
    kind: Literal["new", "renewal", "expansion"] | None = None


class ContractRef(Strict):
    start: date
    end: date
    arr: Amount | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None


class EventIn(Strict):
    """A lifecycle event as in schemas/lifecycle-event.schema.json."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    type: EventType
    occurred_at: AwareDatetime
    account: AccountRef = Field(default_factory=AccountRef)
    opportunity: OpportunityRef | None = None
    contract: ContractRef | None = None
    to_stage: str | None = None
    data: dict[str, Any] | None = None


class EventRead(BaseModel):
    id: uuid.UUID
    source: str
    external_id: str = Field(description="The sender's event id.")
    type: str
    occurred_at: datetime
    account_id: uuid.UUID | None
    outcome: Literal["received", "applied", "ignored", "pending", "failed"]
    reason: str | None
    transition_id: uuid.UUID | None
    playbook_version: int | None = Field(description="The playbook version that decided.")
    rule: str | None = Field(description="The playbook rule that decided, if one matched.")
    duplicates: int = Field(description="Repeat deliveries received, none of them applied.")
    last_duplicate_at: datetime | None
    received_at: datetime
    decided_at: datetime | None
    duplicate: bool = Field(default=False, description="True when this delivery was a repeat.")


class EventPage(BaseModel):
    items: list[EventRead]
    next_cursor: str | None


async def _submit(
    session: SessionDep,
    principal: Principal,
    event: EventIn,
    source: str,
    response: Response,
    account_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    outcome = await events_service.apply_event(
        session,
        workspace_id=principal.workspace_id,
        source=source,
        event=lifecycle_service.event_to_apply(event.model_dump(exclude_none=True), account_id),
        account_id=account_id,
        actor=principal.actor,
    )
    response.status_code = status.HTTP_200_OK if outcome.duplicate else status.HTTP_201_CREATED
    return {**outcome.event.model_dump(), "duplicate": outcome.duplicate}


SourceQuery = Annotated[
    Source, Query(description="Who sent the event; (source, id) is applied once.")
]


# A repeat of an event already received answers 200 with the first outcome.
_REPEAT: dict[int | str, dict[str, Any]] = {
    200: {"model": EventRead, "description": "A repeat: the first outcome, unchanged."}
}


@router.post(
    "/events", response_model=EventRead, status_code=status.HTTP_201_CREATED, responses=_REPEAT
)
async def submit_event(
    session: SessionDep,
    principal: Writer,
    body: EventIn,
    response: Response,
    source: SourceQuery = "api",
) -> object:
    """Submit an event; 201 with its outcome, or 200 with the first outcome for a repeat."""
    return await _submit(session, principal, body, source, response)


@router.post(
    "/accounts/{account_id}/events",
    response_model=EventRead,
    status_code=status.HTTP_201_CREATED,
    responses=_REPEAT,
)
async def submit_account_event(
    session: SessionDep,
    principal: Writer,
    account_id: uuid.UUID,
    body: EventIn,
    response: Response,
    source: SourceQuery = "api",
) -> object:
    return await _submit(session, principal, body, source, response, account_id)


@router.get("/events", response_model=EventPage)
async def list_events(
    session: SessionDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
    outcome: Annotated[
        Literal["applied", "ignored", "pending", "failed", "duplicate"] | None,
        Query(description="`duplicate`: events delivered more than once."),
    ] = None,
    account_id: uuid.UUID | None = None,
) -> object:
    rows = await events_service.list_events(
        session,
        workspace_id=principal.workspace_id,
        outcome=outcome,
        account_id=account_id,
        limit=limit + 1,
        after=decode_cursor(cursor),
    )
    items, next_cursor = trim_page(rows, limit, lambda row: row.id)
    return {"items": items, "next_cursor": next_cursor}


@router.post("/events/{event_id}/replay", response_model=EventRead)
async def replay_event(session: SessionDep, principal: Writer, event_id: uuid.UUID) -> object:
    """Evaluate a pending or failed event again."""
    return await events_service.replay_event(
        session, workspace_id=principal.workspace_id, event_id=event_id, actor=principal.actor
    )
