"""`/v1/accounts`: accounts, their transitions and their history."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, status

from service.accounts import service as accounts_service
from service.accounts.schemas import (
    AccountCreate,
    AccountPage,
    AccountRead,
    AccountUpdate,
    Segment,
    TransitionCreate,
    TransitionCreated,
    TransitionPage,
    dump_owners,
)
from service.kit.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from service.kit.routing import PrefixedRouter
from service.lifecycle import transitions
from service.workspaces.auth import Reader, SessionDep, Writer

router = PrefixedRouter(prefix="/v1/accounts", tags=["accounts"])

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size, at most 200.")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page.")]


@router.post("", response_model=AccountRead, status_code=status.HTTP_201_CREATED)
async def create_account(session: SessionDep, principal: Writer, body: AccountCreate) -> object:
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
    return view.as_dict()


@router.get("", response_model=AccountPage)
async def list_accounts(
    session: SessionDep,
    principal: Reader,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
    stage: str | None = None,
    segment: Segment | None = None,
    owner: Annotated[str | None, Query(description="User id owning the account.")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Name contains.")] = None,
    external_id: Annotated[str | None, Query(description="SOURCE:ID, e.g. hubspot:123")] = None,
) -> object:
    views, next_cursor = await accounts_service.list_accounts(
        session,
        workspace_id=principal.workspace_id,
        filters=accounts_service.AccountFilter(
            stage=stage, segment=segment, owner_id=owner, search=q, external_id=external_id
        ),
        limit=limit,
        cursor=cursor,
    )
    return {"items": [view.as_dict() for view in views], "next_cursor": next_cursor}


@router.get("/{account_id}", response_model=AccountRead)
async def read_account(session: SessionDep, principal: Reader, account_id: uuid.UUID) -> object:
    view = await accounts_service.get_account(
        session, workspace_id=principal.workspace_id, account_id=account_id
    )
    return view.as_dict()


@router.patch("/{account_id}", response_model=AccountRead)
async def update_account(
    session: SessionDep, principal: Writer, account_id: uuid.UUID, body: AccountUpdate
) -> object:
    changes = body.model_dump(exclude_unset=True, exclude={"owners"})
    if body.owners is not None:
        changes["owners"] = dump_owners(body.owners)
    view = await accounts_service.update_account(
        session, workspace_id=principal.workspace_id, account_id=account_id, changes=changes
    )
    return view.as_dict()


@router.post(
    "/{account_id}/transitions",
    response_model=TransitionCreated,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"description": "The move is not allowed from the current stage (allowed_stages)."}
    },
)
async def create_transition(
    session: SessionDep, principal: Writer, account_id: uuid.UUID, body: TransitionCreate
) -> object:
    """Move the account; a handoff task is raised when the quarterback department changes."""
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
    return {**result.transition, "handoff_task": result.handoff_task}


@router.get("/{account_id}/transitions", response_model=TransitionPage)
async def list_transitions(
    session: SessionDep,
    principal: Reader,
    account_id: uuid.UUID,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> object:
    rows, next_cursor = await accounts_service.list_transitions(
        session,
        workspace_id=principal.workspace_id,
        account_id=account_id,
        limit=limit,
        cursor=cursor,
    )
    return {"items": rows, "next_cursor": next_cursor}
