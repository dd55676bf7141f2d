"""GraphQL types of opportunities (CRM deals) and contracts (the terms they produce)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from service.graphql.context import context_of
from service.graphql.rows import from_row

if TYPE_CHECKING:
    from service.accounts.graphql import Account


@strawberry.enum
class OpportunityKind(enum.Enum):
    NEW = "new"
    RENEWAL = "renewal"
    EXPANSION = "expansion"


@strawberry.enum
class OpportunityStatus(enum.Enum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


@strawberry.enum
class ContractStatus(enum.Enum):
    ACTIVE = "active"
    RENEWED = "renewed"
    CHURNED = "churned"
    EXPIRED = "expired"


async def _account(info: strawberry.Info, account_id: uuid.UUID) -> Any:
    from service.accounts.graphql import account_of

    row = await context_of(info).loaders.account.load(account_id)
    assert row is not None  # deals are deleted with their account
    return account_of(row)


@strawberry.type(description="A deal as the CRM knows it.")
class Opportunity:
    id: uuid.UUID
    account_id: uuid.UUID
    source: str = strawberry.field(description="The CRM it comes from, e.g. `hubspot`.")
    external_id: str = strawberry.field(description="The opportunity's id in that CRM.")
    name: str | None
    amount: Decimal | None
    currency: str
    close_date: date | None
    kind: OpportunityKind
    status: OpportunityStatus
    contract_id: uuid.UUID | None = strawberry.field(
        description="New business: the contract it produced; renewal or expansion: the "
        "contract it renews or expands."
    )
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    async def account(
        self, info: strawberry.Info
    ) -> Annotated[Account, strawberry.lazy("service.accounts.graphql")]:
        return await _account(info, self.account_id)

    @strawberry.field
    async def contract(self, info: strawberry.Info) -> Contract | None:
        if self.contract_id is None:
            return None
        row = await context_of(info).loaders.contract.load(self.contract_id)
        return contract_of(row) if row else None


def opportunity_of(row: Any) -> Opportunity:
    return from_row(Opportunity, row)


@strawberry.type(description="One term of the account's subscription; it renews on `endsOn`.")
class Contract:
    id: uuid.UUID
    account_id: uuid.UUID
    starts_on: date
    ends_on: date = strawberry.field(description="Last day of the term: the renewal date.")
    arr: Decimal = strawberry.field(description="Annual recurring revenue, exact decimal.")
    currency: str
    auto_renew: bool
    status: ContractStatus
    opportunity_id: uuid.UUID | None
    previous_contract_id: uuid.UUID | None = strawberry.field(
        description="The term this one renews."
    )
    closed_at: datetime | None = strawberry.field(
        description="When the term stopped being active (renewed, churned or expired)."
    )
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    async def account(
        self, info: strawberry.Info
    ) -> Annotated[Account, strawberry.lazy("service.accounts.graphql")]:
        return await _account(info, self.account_id)

    @strawberry.field(description="The opportunity that produced it.")
    async def opportunity(self, info: strawberry.Info) -> Opportunity | None:
        if self.opportunity_id is None:
            return None
        row = await context_of(info).loaders.opportunity.load(self.opportunity_id)
        return opportunity_of(row) if row else None

    @strawberry.field(description="The term this one renews.")
    async def previous_contract(self, info: strawberry.Info) -> Contract | None:
        if self.previous_contract_id is None:
            return None
        row = await context_of(info).loaders.contract.load(self.previous_contract_id)
        return contract_of(row) if row else None


def contract_of(row: Any) -> Contract:
    return from_row(Contract, row)
