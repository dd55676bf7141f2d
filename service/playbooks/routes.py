"""`/v1/playbook`: the plan rules in force, their versions, publishing and simulation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import yaml
from fastapi import Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.accounts.schemas import Owner
from service.kit.routing import PrefixedRouter
from service.lifecycle.event_routes import EventIn
from service.playbooks import service as playbooks_service
from service.playbooks import simulation
from service.workspaces.auth import Admin, Reader, SessionDep

router = PrefixedRouter(prefix="/v1/playbook", tags=["playbook"])
# Versions are a 32-bit integer column: larger numbers are no version (and PostgreSQL
# would refuse to compare with them).
MAX_VERSION = 2**31 - 1

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class PlaybookVersionSummary(BaseModel):
    version: int
    name: str
    published_at: datetime
    published_by: str | None
    note: str | None


class PlaybookRead(PlaybookVersionSummary):
    document: dict[str, Any] = Field(description="As in schemas/playbook.schema.json.")


class PlaybookVersionList(BaseModel):
    items: list[PlaybookVersionSummary]
    next_cursor: str | None = Field(description="Pass as `before` for older versions.")


class SimulatedAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    domain: str | None = Field(default=None, max_length=253)
    stage: str | None = None
    segment: Literal["high_touch", "mid_touch", "low_touch"] | None = None
    arr: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,14}(\.[0-9]{1,2})?$")] | None = None
    owners: dict[str, Owner] | None = None


class SimulationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: EventIn
    source: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,100}$")] = "api"
    account_id: uuid.UUID | None = Field(default=None, description="Simulate on a real account.")
    account: SimulatedAccount | None = Field(
        default=None, description="Or describe one: stage, segment, ARR, owners."
    )
    playbook: dict[str, Any] | None = Field(
        default=None, description="A draft playbook to try instead of the published one."
    )


class SimulatedTask(BaseModel):
    kind: str
    title: str
    department: str
    from_department: str | None
    assignee_id: str | None
    assignee_name: str | None
    due_in_business_days: int | None
    priority: str
    checklist: list[str]


class SimulationResult(BaseModel):
    playbook_version: int | None = Field(description="Null when a draft was simulated.")
    draft: bool
    outcome: Literal["applied", "pending", "ignored"]
    reason: str | None
    rule: str | None
    account_id: str | None
    from_stage: str
    to_stage: str | None
    skipped_stages: list[str]
    handoff: SimulatedTask | None
    tasks: list[SimulatedTask]
    success_plan_scaffold: bool


async def _document_from(request: Request) -> Any:
    body = (await request.body()).decode("utf-8", errors="replace")
    return playbooks_service.parse_text(body)


@router.get("", response_model=PlaybookRead, responses={200: {"content": {"application/yaml": {}}}})
async def read_playbook(
    session: SessionDep,
    principal: Reader,
    format: Annotated[
        Literal["json", "yaml"], Query(description="yaml for the editable text.")
    ] = "json",
) -> Any:
    row = await playbooks_service.current_version_row(session, workspace_id=principal.workspace_id)
    if format == "yaml":
        text = yaml.safe_dump(row.document, sort_keys=False, allow_unicode=True)
        return Response(text, media_type="application/yaml")
    return row


@router.put(
    "",
    response_model=PlaybookRead,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    },
    responses={422: {"description": "Invalid playbook: `errors[].pointer` names each problem."}},
)
async def publish_playbook(
    request: Request,
    session: SessionDep,
    principal: Admin,
    note: Annotated[str | None, Query(max_length=2000)] = None,
) -> Any:
    """Validate the document (JSON or YAML) and publish it as the next version."""
    return await playbooks_service.publish(
        session,
        workspace_id=principal.workspace_id,
        document=await _document_from(request),
        actor=principal.actor,
        note=note,
    )


@router.post(
    "/validate",
    status_code=status.HTTP_200_OK,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    },
)
async def validate_playbook(request: Request, principal: Reader) -> dict[str, Any]:
    """Check a document without publishing it: 200 when valid, 422 with every error."""
    playbooks_service.check_document(await _document_from(request))
    return {"valid": True}


@router.get("/versions", response_model=PlaybookVersionList)
async def list_playbook_versions(
    session: SessionDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_VERSION, description="Versions older than this.")
    ] = None,
) -> Any:
    rows = await playbooks_service.list_versions(
        session, workspace_id=principal.workspace_id, limit=limit + 1, before=before
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": str(rows[-1].version) if more and rows else None}


@router.get("/versions/{version}", response_model=PlaybookRead)
async def read_playbook_version(
    session: SessionDep, principal: Reader, version: Annotated[int, Path(ge=1, le=MAX_VERSION)]
) -> Any:
    return await playbooks_service.get_version(
        session, workspace_id=principal.workspace_id, version=version
    )


@router.post("/simulate", response_model=SimulationResult)
async def simulate_event(session: SessionDep, principal: Reader, body: SimulationRequest) -> Any:
    """What the event would do — stage move, handoff, tasks — writing nothing."""
    return await simulation.simulate(
        session,
        workspace_id=principal.workspace_id,
        event=body.event.model_dump(exclude_none=True),
        source=body.source,
        account_id=body.account_id,
        account=body.account.model_dump(exclude_none=True) if body.account else None,
        draft=body.playbook,
    )
