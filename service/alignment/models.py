"""Department operational plans: one per department and fiscal quarter, with goals around the
lifecycle stages, deliverables, dependencies on other departments' work, and weekly updates.

Quarters are stored as their labels (`2027-Q1`, service/kit/fiscal.py): they sort as text in
quarter order, so "due after the quarter that needs it" is a plain comparison in SQL.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db.models import created_at_field, id_field, workspace_field
from service.db.types import Quantity


class OperationalPlan(SQLModel, table=True):
    __tablename__ = "operational_plans"
    __table_args__ = (
        UniqueConstraint("workspace_id", "department", "quarter"),
        Index("ix_operational_plans_workspace_quarter", "workspace_id", "quarter", "department"),
    )

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    department: str = Field(max_length=40)
    quarter: str = Field(max_length=7)
    summary: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class OperationalGoal(SQLModel, table=True):
    """A quarterly goal serving one lifecycle stage: a metric to bring to a target."""

    __tablename__ = "operational_goals"
    __table_args__ = (Index("ix_operational_goals_plan", "plan_id", "id"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    plan_id: uuid.UUID = Field(foreign_key="operational_plans.id", ondelete="CASCADE")
    name: str = Field(max_length=200)
    stage: str = Field(max_length=40)
    metric: str = Field(max_length=200)
    target: Decimal = Field(sa_type=Quantity)
    owner: str = Field(max_length=200)
    # Where the actual value comes from: null (weekly updates) or lifecycle data, e.g.
    # `opportunities_created` or `stage_entries:VALUE` (service/alignment/sources.py).
    source: str | None = Field(default=None, max_length=60)
    status: str = Field(default="active", max_length=20)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class OperationalDeliverable(SQLModel, table=True):
    __tablename__ = "operational_deliverables"
    __table_args__ = (Index("ix_operational_deliverables_plan", "plan_id", "id"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    plan_id: uuid.UUID = Field(foreign_key="operational_plans.id", ondelete="CASCADE")
    name: str = Field(max_length=200)
    due_quarter: str = Field(max_length=7)
    owner: str | None = Field(default=None, max_length=200)
    status: str = Field(default="planned", max_length=20)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class OperationalDependency(SQLModel, table=True):
    """A goal or deliverable of this plan needs another department's goal or deliverable.

    Exactly one `from_*` and one `needs_*` column is set (checked by the service); ids are
    UUIDv7 across both tables, so either pair names one node of the dependency graph.
    """

    __tablename__ = "operational_dependencies"
    __table_args__ = (Index("ix_operational_dependencies_plan", "plan_id", "id"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field()
    plan_id: uuid.UUID = Field(foreign_key="operational_plans.id", ondelete="CASCADE")
    from_goal_id: uuid.UUID | None = Field(
        default=None, foreign_key="operational_goals.id", ondelete="CASCADE"
    )
    from_deliverable_id: uuid.UUID | None = Field(
        default=None, foreign_key="operational_deliverables.id", ondelete="CASCADE"
    )
    needs_goal_id: uuid.UUID | None = Field(
        default=None, foreign_key="operational_goals.id", ondelete="CASCADE"
    )
    needs_deliverable_id: uuid.UUID | None = Field(
        default=None, foreign_key="operational_deliverables.id", ondelete="CASCADE"
    )
    note: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()


class WeeklyUpdate(SQLModel, table=True):
    """A goal's progress in one week (the Monday it starts): one per goal and week."""

    __tablename__ = "operational_goal_updates"
    __table_args__ = (UniqueConstraint("workspace_id", "goal_id", "week"),)

    id: uuid.UUID = id_field()
    workspace_id: uuid.UUID = workspace_field(own_index=False)
    plan_id: uuid.UUID = Field(foreign_key="operational_plans.id", ondelete="CASCADE")
    goal_id: uuid.UUID = Field(foreign_key="operational_goals.id", ondelete="CASCADE")
    week: date
    value: Decimal = Field(sa_type=Quantity)
    status: str = Field(max_length=20)
    comment: str | None = Field(default=None, max_length=2000)
    author: str | None = Field(default=None, max_length=200)
    recorded_at: datetime = created_at_field()
