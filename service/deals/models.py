"""Opportunities (deals in a CRM) and contracts (the terms they produce, renewed year by year)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db.models import created_at_field, id_field, timestamp_field, workspace_field
from service.db.types import Money


class Opportunity(SQLModel, table=True):
    """A deal as the CRM knows it: unique per workspace, source and the CRM's id."""

    __tablename__ = "opportunities"
    __table_args__ = (
        UniqueConstraint("workspace_id", "source", "external_id"),
        Index("ix_opportunities_account", "account_id", "id"),
    )

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    account_id: uuid.UUID = Field(foreign_key="accounts.id", ondelete="CASCADE")
    source: str = Field(max_length=100)
    external_id: str = Field(max_length=200)
    name: str | None = Field(default=None, max_length=300)
    amount: Decimal | None = Field(default=None, sa_type=Money, nullable=True)
    currency: str = Field(max_length=3)
    close_date: date | None = None
    kind: str = Field(default="new", max_length=20)
    status: str = Field(default="open", max_length=20)
    # New business: the contract it produced. Renewal and expansion: the contract it renews
    # or expands (the term it produces points back through Contract.opportunity_id).
    contract_id: uuid.UUID | None = None
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class Contract(SQLModel, table=True):
    """One term of an account's subscription; its renewal date is `ends_on`."""

    __tablename__ = "contracts"
    __table_args__ = (
        # One term per opportunity, and one next term per renewed term: replays find the
        # row they made instead of adding another.
        UniqueConstraint("workspace_id", "opportunity_id"),
        UniqueConstraint("workspace_id", "previous_contract_id"),
        Index("ix_contracts_workspace_ends_on", "workspace_id", "ends_on"),
        Index("ix_contracts_account", "account_id", "id"),
    )

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    account_id: uuid.UUID = Field(foreign_key="accounts.id", ondelete="CASCADE")
    starts_on: date
    ends_on: date
    arr: Decimal = Field(sa_type=Money)
    currency: str = Field(max_length=3)
    auto_renew: bool = False
    status: str = Field(default="active", max_length=20)
    opportunity_id: uuid.UUID | None = None
    previous_contract_id: uuid.UUID | None = None
    # When the term stopped being active (renewed, churned, expired): the renewal's outcome
    # date for forecast accuracy, and how a replayed renewal or churn recognises its own work.
    closed_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
