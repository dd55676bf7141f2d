"""Request and response bodies of the opportunities and contracts API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.accounts.schemas import Amount, Currency

OpportunityKind = Literal["new", "renewal", "expansion"]
OpportunityStatus = Literal["open", "won", "lost"]
ContractStatus = Literal["active", "renewed", "churned", "expired"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpportunityRead(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    source: str
    external_id: str = Field(description="The opportunity's id in its source (the CRM).")
    name: str | None
    amount: Decimal | None = Field(description="Exact decimal, rendered as a string.")
    currency: str
    close_date: date | None
    kind: OpportunityKind
    status: OpportunityStatus
    contract_id: uuid.UUID | None = Field(
        description="New business: the contract it produced; renewal or expansion: the "
        "contract it renews or expands."
    )
    created_at: datetime
    updated_at: datetime


class OpportunityPage(BaseModel):
    items: list[OpportunityRead]
    next_cursor: str | None


class ContractRead(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    starts_on: date
    ends_on: date = Field(description="Last day of the term; the renewal date.")
    arr: Decimal = Field(description="Annual recurring revenue, exact, rendered as a string.")
    currency: str
    auto_renew: bool
    status: ContractStatus
    opportunity_id: uuid.UUID | None = Field(description="The opportunity that produced it.")
    previous_contract_id: uuid.UUID | None = Field(description="The term this one renews.")
    closed_at: datetime | None = Field(
        description="When the term stopped being active (renewed, churned or expired)."
    )
    created_at: datetime
    updated_at: datetime


class ContractPage(BaseModel):
    items: list[ContractRead]
    next_cursor: str | None


class ContractCreate(Strict):
    account_id: uuid.UUID
    starts_on: date
    ends_on: date = Field(description="Last day of the term; must be after starts_on.")
    arr: Amount
    currency: Currency | None = Field(default=None, description="The account's if omitted.")
    auto_renew: bool = False


class ContractUpdate(Strict):
    starts_on: date | None = None
    ends_on: date | None = None
    arr: Amount | None = None
    currency: Currency | None = None
    auto_renew: bool | None = None
    status: ContractStatus | None = None
