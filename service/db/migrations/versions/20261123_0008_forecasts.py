"""renewal forecasts: manual overrides, the workspace's fiscal year start

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import service.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fiscal_year_start_month", sa.Integer(), nullable=False, server_default="1")
        )

    op.create_table(
        "forecast_overrides",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("probability", sa.Integer(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_forecast_overrides_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_forecast_overrides_contract_id_contracts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_forecast_overrides_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecast_overrides")),
    )
    with op.batch_alter_table("forecast_overrides", schema=None) as batch_op:
        batch_op.create_index(
            "ix_forecast_overrides_contract", ["workspace_id", "contract_id", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_forecast_overrides_workspace_id"), ["workspace_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("forecast_overrides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_forecast_overrides_workspace_id"))
        batch_op.drop_index("ix_forecast_overrides_contract")
    op.drop_table("forecast_overrides")
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.drop_column("fiscal_year_start_month")
