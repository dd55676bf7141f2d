"""Request and response bodies of the accounts API."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from service.tasks.schemas import TaskRead

Segment = Literal["high_touch", "mid_touch", "low_touch"]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Amount = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


def _domain(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 253 or not _DOMAIN.match(value):
        raise ValueError("expected a domain name like acme.com (no scheme, no path)")
    return value


Domain = Annotated[str, AfterValidator(_domain)]
SourceKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,100}$")]
ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Owner(Strict):
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    name: str | None = Field(default=None, max_length=200)


class AccountCreate(Strict):
    name: Name
    domain: Domain | None = None
    segment: Segment = "mid_touch"
    arr: Amount = Decimal("0")
    currency: Currency = "USD"
    stage: str | None = Field(
        default=None, description="Stage the account enters the lifecycle in; QUALIFY if omitted."
    )
    owners: dict[str, Owner] = Field(
        default_factory=dict, description="Owner per department key, e.g. {'sales': {...}}."
    )
    external_ids: dict[SourceKey, ExternalId] = Field(
        default_factory=dict, description="The account's id per source, e.g. {'hubspot': '123'}."
    )


class AccountUpdate(Strict):
    name: Name | None = None
    domain: Domain | None = None
    segment: Segment | None = None
    arr: Amount | None = None
    currency: Currency | None = None
    owners: dict[str, Owner | None] | None = Field(
        default=None, description="Departments to set; null for a department removes its owner."
    )
    external_ids: dict[SourceKey, ExternalId | None] | None = Field(
        default=None, description="Sources to set; null removes the account's id in a source."
    )


class AccountRead(BaseModel):
    id: uuid.UUID
    name: str
    domain: str | None
    segment: Segment
    arr: Decimal
    currency: str
    stage: str
    quarterback: str | None = Field(description="Department that is quarterback of the stage.")
    stage_entered_at: datetime
    owners: dict[str, Owner]
    external_ids: dict[str, str]
    created_at: datetime
    updated_at: datetime


class AccountPage(BaseModel):
    items: list[AccountRead]
    next_cursor: str | None


class HandoffContext(Strict):
    notes: str | None = Field(default=None, max_length=10_000)
    links: list[Annotated[str, StringConstraints(max_length=2000)]] = Field(
        default_factory=list, max_length=50
    )
    risks: list[Annotated[str, StringConstraints(max_length=2000)]] = Field(
        default_factory=list, max_length=50
    )


class TransitionCreate(Strict):
    to_stage: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    reason: str | None = Field(default=None, max_length=2000)
    from_stage: str | None = Field(
        default=None,
        description="If given, the move happens only while the account is still in this stage.",
    )
    handoff: HandoffContext | None = Field(
        default=None, description="What the current quarterback leaves for the next one."
    )


class TransitionRead(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    from_stage: str | None
    to_stage: str
    reason: str | None
    cause: str
    actor: str | None
    backward: bool
    skipped_stages: list[str] = Field(
        description="Stages jumped over under the playbook's apply_skipping policy."
    )
    playbook_version: int | None = Field(description="The playbook version in force.")
    occurred_at: datetime
    handoff_task_id: uuid.UUID | None


class TransitionCreated(TransitionRead):
    handoff_task: TaskRead | None = Field(
        description="The handoff raised for the new quarterback, if the quarterback changed."
    )


class TransitionPage(BaseModel):
    items: list[TransitionRead]
    next_cursor: str | None


def dump_owners(owners: dict[str, Owner | None]) -> dict[str, Any]:
    return {dept: (owner.model_dump() if owner else None) for dept, owner in owners.items()}
