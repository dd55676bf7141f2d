"""drop indexes that a composite index or unique constraint already starts with

Each of these was the leading column of another index on its table, which serves the same
lookups and the cascades, so it only cost every insert and update (write amplification on the
webhook path: nine fewer index entries for a new account's first event).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 02:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column): the index is named ix_<table>_<column>.
REDUNDANT = (
    ("accounts", "workspace_id"),
    ("account_owners", "workspace_id"),
    ("account_owners", "account_id"),
    ("account_external_ids", "workspace_id"),
    ("account_external_ids", "account_id"),
    ("contracts", "workspace_id"),
    ("departments", "workspace_id"),
    ("forecast_overrides", "workspace_id"),
    ("forecast_snapshots", "workspace_id"),
    ("lifecycle_events", "workspace_id"),
    ("operational_goal_updates", "workspace_id"),
    ("operational_plans", "workspace_id"),
    ("opportunities", "workspace_id"),
    ("playbook_versions", "workspace_id"),
    ("stages", "workspace_id"),
    ("subscription_event_types", "workspace_id"),
    ("tasks", "workspace_id"),
    ("timers", "workspace_id"),
    ("webhook_mapping_versions", "source_id"),
)


def upgrade() -> None:
    for table, column in REDUNDANT:
        op.drop_index(f"ix_{table}_{column}", table_name=table)


def downgrade() -> None:
    for table, column in REDUNDANT:
        op.create_index(f"ix_{table}_{column}", table, [column])
