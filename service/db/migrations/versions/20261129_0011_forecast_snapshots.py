"""forecast snapshots (issue 6)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import service.db.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "forecast_snapshots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("kind", _text(20), nullable=False),
        sa.Column("taken_by", _text(200), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("reporting_currency", _text(3), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("renewals", sa.Integer(), nullable=False),
        sa.Column("created_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_forecast_snapshots_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecast_snapshots")),
    )
    with op.batch_alter_table("forecast_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_forecast_snapshots_workspace", ["workspace_id", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_forecast_snapshots_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "forecast_snapshot_rows",
        sa.Column("snapshot_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("account_name", _text(300), nullable=False),
        sa.Column("renewal_date", sa.Date(), nullable=False),
        sa.Column("currency", _text(3), nullable=False),
        sa.Column("arr_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", _text(20), nullable=False),
        sa.Column("segment", _text(20), nullable=False),
        sa.Column("stage", _text(40), nullable=False),
        sa.Column("owner_id", _text(200), nullable=True),
        sa.Column("owner_name", _text(200), nullable=True),
        sa.Column("probability", sa.Integer(), nullable=False),
        sa.Column("category", _text(20), nullable=False),
        sa.Column("auto_renew", sa.Integer(), nullable=False),
        sa.Column("outcomes_achieved", sa.Integer(), nullable=False),
        sa.Column("outcomes_missed", sa.Integer(), nullable=False),
        sa.Column("plan_health", sa.Integer(), nullable=True),
        sa.Column("stuck", sa.Integer(), nullable=False),
        sa.Column("overdue_tasks", sa.Integer(), nullable=False),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("renewal_passed", sa.Integer(), nullable=False),
        sa.Column("renewal_soon", sa.Integer(), nullable=False),
        sa.Column("renewal_opportunity", _text(20), nullable=True),
        sa.Column("override", sa.Integer(), nullable=True),
        sa.Column("stage_effect", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["forecast_snapshots.id"],
            name=op.f("fk_forecast_snapshot_rows_snapshot_id_forecast_snapshots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_forecast_snapshot_rows_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "snapshot_id", "contract_id", name=op.f("pk_forecast_snapshot_rows")
        ),
    )
    with op.batch_alter_table("forecast_snapshot_rows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_forecast_snapshot_rows_contract", ["workspace_id", "contract_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("forecast_snapshot_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_forecast_snapshot_rows_contract")
    op.drop_table("forecast_snapshot_rows")
    with op.batch_alter_table("forecast_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_forecast_snapshots_workspace_id"))
        batch_op.drop_index("ix_forecast_snapshots_workspace")
    op.drop_table("forecast_snapshots")
