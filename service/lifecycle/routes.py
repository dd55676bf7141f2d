"""`GET /v1/lifecycle`: the stages, their quarterbacks and the allowed moves."""

from __future__ import annotations

from pydantic import BaseModel, Field

from service.kit.routing import PrefixedRouter
from service.lifecycle import service as lifecycle_service
from service.workspaces.auth import Reader, SessionDep

router = PrefixedRouter(prefix="/v1", tags=["lifecycle"])


class DepartmentRead(BaseModel):
    key: str
    name: str


class StageRead(BaseModel):
    key: str
    name: str
    position: int
    quarterback: str = Field(description="The department that leads the customer in this stage.")
    supporting: list[str]
    next_stages: list[str] = Field(description="Forward moves.")
    backward_stages: list[str] = Field(description="Moves back, which need a reason.")
    entered_when: str


class LifecycleRead(BaseModel):
    departments: list[DepartmentRead]
    stages: list[StageRead]


@router.get("/lifecycle", response_model=LifecycleRead)
async def read_lifecycle(session: SessionDep, principal: Reader) -> object:
    return {
        "departments": await lifecycle_service.list_departments(
            session, workspace_id=principal.workspace_id
        ),
        "stages": await lifecycle_service.list_stages(session, workspace_id=principal.workspace_id),
    }
