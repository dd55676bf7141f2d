"""operational plans and alignment (issue 8)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import service.db.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "operational_plans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("quarter", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("summary", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("created_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_operational_plans_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operational_plans")),
        sa.UniqueConstraint(
            "workspace_id",
            "department",
            "quarter",
            name=op.f("uq_operational_plans_workspace_id_department_quarter"),
        ),
    )
    with op.batch_alter_table("operational_plans", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_operational_plans_workspace_id"), ["workspace_id"], unique=False
        )
        batch_op.create_index(
            "ix_operational_plans_workspace_quarter",
            ["workspace_id", "quarter", "department"],
            unique=False,
        )

    op.create_table(
        "operational_deliverables",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("due_quarter", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("created_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["operational_plans.id"],
            name=op.f("fk_operational_deliverables_plan_id_operational_plans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_operational_deliverables_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operational_deliverables")),
    )
    with op.batch_alter_table("operational_deliverables", schema=None) as batch_op:
        batch_op.create_index("ix_operational_deliverables_plan", ["plan_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_operational_deliverables_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "operational_goals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("metric", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("target", service.db.types.Quantity(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("created_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["operational_plans.id"],
            name=op.f("fk_operational_goals_plan_id_operational_plans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_operational_goals_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operational_goals")),
    )
    with op.batch_alter_table("operational_goals", schema=None) as batch_op:
        batch_op.create_index("ix_operational_goals_plan", ["plan_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_operational_goals_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "operational_dependencies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("from_goal_id", sa.Uuid(), nullable=True),
        sa.Column("from_deliverable_id", sa.Uuid(), nullable=True),
        sa.Column("needs_goal_id", sa.Uuid(), nullable=True),
        sa.Column("needs_deliverable_id", sa.Uuid(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("created_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_deliverable_id"],
            ["operational_deliverables.id"],
            name=op.f("fk_operational_dependencies_from_deliverable_id_operational_deliverables"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["from_goal_id"],
            ["operational_goals.id"],
            name=op.f("fk_operational_dependencies_from_goal_id_operational_goals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["needs_deliverable_id"],
            ["operational_deliverables.id"],
            name=op.f("fk_operational_dependencies_needs_deliverable_id_operational_deliverables"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["needs_goal_id"],
            ["operational_goals.id"],
            name=op.f("fk_operational_dependencies_needs_goal_id_operational_goals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["operational_plans.id"],
            name=op.f("fk_operational_dependencies_plan_id_operational_plans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_operational_dependencies_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operational_dependencies")),
    )
    with op.batch_alter_table("operational_dependencies", schema=None) as batch_op:
        batch_op.create_index("ix_operational_dependencies_plan", ["plan_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_operational_dependencies_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "operational_goal_updates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("goal_id", sa.Uuid(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("value", service.db.types.Quantity(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("recorded_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["goal_id"],
            ["operational_goals.id"],
            name=op.f("fk_operational_goal_updates_goal_id_operational_goals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["operational_plans.id"],
            name=op.f("fk_operational_goal_updates_plan_id_operational_plans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_operational_goal_updates_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operational_goal_updates")),
        sa.UniqueConstraint(
            "workspace_id",
            "goal_id",
            "week",
            name=op.f("uq_operational_goal_updates_workspace_id_goal_id_week"),
        ),
    )
    with op.batch_alter_table("operational_goal_updates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_operational_goal_updates_workspace_id"), ["workspace_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("operational_goal_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operational_goal_updates_workspace_id"))

    op.drop_table("operational_goal_updates")
    with op.batch_alter_table("operational_dependencies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operational_dependencies_workspace_id"))
        batch_op.drop_index("ix_operational_dependencies_plan")

    op.drop_table("operational_dependencies")
    with op.batch_alter_table("operational_goals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operational_goals_workspace_id"))
        batch_op.drop_index("ix_operational_goals_plan")

    op.drop_table("operational_goals")
    with op.batch_alter_table("operational_deliverables", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operational_deliverables_workspace_id"))
        batch_op.drop_index("ix_operational_deliverables_plan")

    op.drop_table("operational_deliverables")
    with op.batch_alter_table("operational_plans", schema=None) as batch_op:
        batch_op.drop_index("ix_operational_plans_workspace_quarter")
        batch_op.drop_index(batch_op.f("ix_operational_plans_workspace_id"))

    op.drop_table("operational_plans")
