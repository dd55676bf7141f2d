"""`/v1/accounts/{account_id}/plan`: the account's annual success plan and its measurements."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import Query, status
from pydantic import BaseModel

from service.kit.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from service.kit.routing import PrefixedRouter
from service.plans import service as plans_service
from service.plans.schemas import (
    MeasurementCreate,
    MeasurementPage,
    MeasurementRead,
    PlanPut,
    PlanRead,
)
from service.workspaces.auth import Reader, SessionDep, Writer

router = PrefixedRouter(prefix="/v1/accounts/{account_id}/plan", tags=["plans"])

Year = Annotated[
    int | None,
    Query(ge=1, le=1000, description="Contract year (1 = the first); the latest if omitted."),
]


def _dumped(items: Sequence[BaseModel] | None) -> list[dict[str, Any]] | None:
    return None if items is None else [item.model_dump() for item in items]


@router.get("", response_model=PlanRead)
async def read_plan(
    session: SessionDep,
    principal: Reader,
    account_id: uuid.UUID,
    year: Year = None,
    as_of: Annotated[
        date | None,
        Query(description="Compute health and latest values as of this day; default today."),
    ] = None,
) -> object:
    """The plan with each outcome's latest value, progress and health, and the plan's health."""
    view = await plans_service.get_plan(
        session,
        workspace_id=principal.workspace_id,
        account_id=account_id,
        contract_year=year,
        as_of=as_of,
    )
    return view.as_dict()


@router.put(
    "",
    response_model=PlanRead,
    responses={409: {"description": "New dates would overlap another contract year."}},
)
async def put_plan(
    session: SessionDep, principal: Writer, account_id: uuid.UUID, body: PlanPut, year: Year = None
) -> object:
    """Replace the plan's timeline, touchpoints and outcomes (at most three); creates the
    first year's plan when the account has none (starts_on required then)."""
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
    return view.as_dict()


@router.post(
    "/outcomes/{outcome_id}/measurements",
    response_model=MeasurementRead,
    status_code=status.HTTP_201_CREATED,
)
async def record_measurement(
    session: SessionDep,
    principal: Writer,
    account_id: uuid.UUID,
    outcome_id: uuid.UUID,
    body: MeasurementCreate,
) -> object:
    return await plans_service.record_measurement(
        session,
        workspace_id=principal.workspace_id,
        account_id=account_id,
        outcome_id=outcome_id,
        value=body.value,
        measured_on=body.measured_on,
        note=body.note,
        actor=principal.actor,
    )


@router.get("/outcomes/{outcome_id}/measurements", response_model=MeasurementPage)
async def list_measurements(
    session: SessionDep,
    principal: Reader,
    account_id: uuid.UUID,
    outcome_id: uuid.UUID,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> object:
    items, next_cursor = await plans_service.list_measurements(
        session,
        workspace_id=principal.workspace_id,
        account_id=account_id,
        outcome_id=outcome_id,
        limit=limit,
        cursor=cursor,
    )
    return {"items": items, "next_cursor": next_cursor}
