"""playbooks: published versions, stage handoff settings, playbook version on history,
holiday calendar of a workspace, duplicate deliveries of an event

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 18:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import service.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "playbook_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("published_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("published_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_playbook_versions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playbook_versions")),
        sa.UniqueConstraint(
            "workspace_id", "version", name=op.f("uq_playbook_versions_workspace_id_version")
        ),
    )
    with op.batch_alter_table("playbook_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_playbook_versions_workspace_id"), ["workspace_id"], unique=False
        )

    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("playbook_version", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "holiday_calendar", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True
            )
        )

    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "quarterback_role",
                sqlmodel.sql.sqltypes.AutoString(length=40),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column(
                "quarterback_name",
                sqlmodel.sql.sqltypes.AutoString(length=100),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column("handoff_checklist", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(
            sa.Column("handoff_due_days", sa.Integer(), nullable=False, server_default="2")
        )
        batch_op.add_column(
            sa.Column("accept_within_days", sa.Integer(), nullable=False, server_default="2")
        )
        batch_op.add_column(
            sa.Column("stuck_rules", sa.JSON(), nullable=False, server_default="[]")
        )

    with op.batch_alter_table("stage_transitions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("skipped_stages", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("playbook_version", sa.Integer(), nullable=True))

    with op.batch_alter_table("lifecycle_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("playbook_version", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.add_column(
            sa.Column("duplicates", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column(
                "last_duplicate_at", service.db.types.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("lifecycle_events", schema=None) as batch_op:
        batch_op.drop_column("last_duplicate_at")
        batch_op.drop_column("duplicates")
        batch_op.drop_column("rule")
        batch_op.drop_column("playbook_version")
    with op.batch_alter_table("stage_transitions", schema=None) as batch_op:
        batch_op.drop_column("playbook_version")
        batch_op.drop_column("skipped_stages")
    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.drop_column("stuck_rules")
        batch_op.drop_column("accept_within_days")
        batch_op.drop_column("handoff_due_days")
        batch_op.drop_column("handoff_checklist")
        batch_op.drop_column("quarterback_name")
        batch_op.drop_column("quarterback_role")
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.drop_column("holiday_calendar")
        batch_op.drop_column("playbook_version")
    with op.batch_alter_table("playbook_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_playbook_versions_workspace_id"))
    op.drop_table("playbook_versions")
