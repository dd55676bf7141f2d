"""`/v1/contracts` and `/v1/accounts/{id}/opportunities`: the deals behind each account."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import Query, status

from service.deals import service as deals_service
from service.deals.schemas import (
    ContractCreate,
    ContractPage,
    ContractRead,
    ContractStatus,
    ContractUpdate,
    OpportunityPage,
    OpportunityStatus,
)
from service.kit.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from service.kit.routing import PrefixedRouter
from service.playbooks import hooks as playbook_hooks
from service.workspaces.auth import Reader, SessionDep, Writer

router = PrefixedRouter(prefix="/v1", tags=["deals"])

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size, at most 200.")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page.")]


@router.get("/accounts/{account_id}/opportunities", response_model=OpportunityPage)
async def list_account_opportunities(
    session: SessionDep,
    principal: Reader,
    account_id: uuid.UUID,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
    status: OpportunityStatus | None = None,
) -> object:
    items, next_cursor = await deals_service.list_opportunities(
        session,
        workspace_id=principal.workspace_id,
        account_id=account_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/contracts", response_model=ContractPage)
async def list_contracts(
    session: SessionDep,
    principal: Reader,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
    account_id: uuid.UUID | None = None,
    status: ContractStatus | None = None,
    renews_before: Annotated[
        date | None, Query(description="Only contracts ending before this date.")
    ] = None,
) -> object:
    items, next_cursor = await deals_service.list_contracts(
        session,
        workspace_id=principal.workspace_id,
        account_id=account_id,
        status=status,
        renews_before=renews_before,
        limit=limit,
        cursor=cursor,
    )
    return {"items": items, "next_cursor": next_cursor}


@router.post("/contracts", response_model=ContractRead, status_code=status.HTTP_201_CREATED)
async def create_contract(session: SessionDep, principal: Writer, body: ContractCreate) -> object:
    """Enter a contract by hand (contracts also come from closed-won and renewal events).

    Its renewal window is timed like an event-made contract's."""
    contract = await deals_service.create_contract(
        session,
        workspace_id=principal.workspace_id,
        account_id=body.account_id,
        starts_on=body.starts_on,
        ends_on=body.ends_on,
        arr=body.arr,
        currency=body.currency,
        auto_renew=body.auto_renew,
    )
    await playbook_hooks.contract_created(
        session,
        workspace_id=principal.workspace_id,
        account_id=contract.account_id,
        contract_id=contract.id,
        ends_on=contract.ends_on,
    )
    return contract


@router.get("/contracts/{contract_id}", response_model=ContractRead)
async def read_contract(session: SessionDep, principal: Reader, contract_id: uuid.UUID) -> object:
    return await deals_service.get_contract(
        session, workspace_id=principal.workspace_id, contract_id=contract_id
    )


@router.patch("/contracts/{contract_id}", response_model=ContractRead)
async def update_contract(
    session: SessionDep, principal: Writer, contract_id: uuid.UUID, body: ContractUpdate
) -> object:
    return await deals_service.update_contract(
        session,
        workspace_id=principal.workspace_id,
        contract_id=contract_id,
        changes=body.model_dump(exclude_unset=True),
    )
