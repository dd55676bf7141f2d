"""renewal facts: one row per contract with what its forecast signals read, and the triggers
that mark an account's facts stale when a row they come from changes (issue 6)

The forecast read seven tables joined per request; it now reads `renewal_facts`, which
service.forecasts.facts brings up to date before each forecast: for the accounts marked in
`renewal_facts_stale`, or for the whole workspace once a day (overdue tasks and plan health
are facts as of a day) or when its renewal department changes (`renewal_facts_state`).

The marks are written by triggers, not by the service's code, so that no write path (the ORM,
Core statements on the webhook path, a future one) can change a fact without marking it.
On SQLite, a later migration that rebuilds one of these tables (batch mode copies a table
into a new one) drops its triggers: tests/test_renewal_facts.py checks that every one exists.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 04:00:00
"""

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
import sqlmodel
from alembic import op

import service.db.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


@dataclass(frozen=True)
class Source:
    """A table that renewal facts are read from.

    `account` selects the workspace_id and account_id of the row named `{row}`; `changes` are the
    columns whose update can change a fact (None: any). `events` are the changes that mark."""

    table: str
    account: str
    changes: tuple[str, ...] | None = None
    events: tuple[str, ...] = ("insert", "update", "delete")


_DIRECT = "SELECT {row}.workspace_id AS workspace_id, {row}.account_id AS account_id"
SOURCES = (
    Source("contracts", _DIRECT),
    Source("account_owners", _DIRECT),
    Source("forecast_overrides", _DIRECT),
    Source("tasks", _DIRECT, ("account_id", "status", "due_on", "kind")),
    Source("opportunities", _DIRECT, ("account_id", "contract_id", "kind", "status")),
    Source("success_plans", _DIRECT, ("account_id", "contract_year", "starts_on", "ends_on")),
    # An account's own facts; a new account has no contract yet, and a deleted one takes its
    # contracts' facts with it (foreign key cascade).
    Source(
        "accounts",
        "SELECT {row}.workspace_id AS workspace_id, {row}.id AS account_id",
        ("name", "segment", "stage", "stage_entered_at"),
        ("update",),
    ),
    Source(
        "plan_outcomes",
        "SELECT p.workspace_id, p.account_id FROM success_plans p WHERE p.id = {row}.plan_id",
        ("plan_id", "status", "baseline", "target", "target_quarter"),
    ),
    Source(
        "plan_measurements",
        "SELECT p.workspace_id, p.account_id FROM plan_outcomes o "
        "JOIN success_plans p ON p.id = o.plan_id WHERE o.id = {row}.outcome_id",
        ("outcome_id", "value", "measured_on"),
    ),
)
# Only where no mark is committed yet, and without a unique key to conflict on: two
# transactions changing the same account must not wait for each other's mark. Nor for a
# workspace being deleted: its cascade deletes every source row, and a mark would name a
# workspace that is gone.
_MARK = (
    "INSERT INTO renewal_facts_stale (workspace_id, account_id) "
    "SELECT m.workspace_id, m.account_id FROM ({account}) AS m WHERE NOT EXISTS ("
    "SELECT 1 FROM renewal_facts_stale s "
    "WHERE s.workspace_id = m.workspace_id AND s.account_id = m.account_id) "
    "AND EXISTS (SELECT 1 FROM workspaces w WHERE w.id = m.workspace_id)"
)


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _workspace_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id"],
        ["workspaces.id"],
        name=op.f(f"fk_{table}_workspace_id_workspaces"),
        ondelete="CASCADE",
    )


def _create_tables() -> None:
    op.create_table(
        "renewal_facts",
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("account_name", _text(200), nullable=False),
        sa.Column("renewal_date", sa.Date(), nullable=False),
        sa.Column("currency", _text(3), nullable=False),
        sa.Column("arr_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", _text(20), nullable=False),
        sa.Column("auto_renew", sa.Integer(), nullable=False),
        sa.Column("segment", _text(20), nullable=False),
        sa.Column("stage", _text(40), nullable=False),
        sa.Column("stage_entered_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("owner_id", _text(200), nullable=True),
        sa.Column("owner_name", _text(200), nullable=True),
        sa.Column("outcomes_achieved", sa.Integer(), nullable=False),
        sa.Column("outcomes_missed", sa.Integer(), nullable=False),
        sa.Column("plan_health", sa.Integer(), nullable=True),
        sa.Column("overdue_tasks", sa.Integer(), nullable=False),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("renewal_opportunity", _text(20), nullable=True),
        sa.Column("override", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_renewal_facts_contract_id_contracts"),
            ondelete="CASCADE",
        ),
        _workspace_fk("renewal_facts"),
        sa.PrimaryKeyConstraint("contract_id", name=op.f("pk_renewal_facts")),
    )
    with op.batch_alter_table("renewal_facts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_renewal_facts_workspace_renewal", ["workspace_id", "renewal_date"], unique=False
        )
        batch_op.create_index(
            "ix_renewal_facts_workspace_owner", ["workspace_id", "owner_id"], unique=False
        )
    op.create_table(
        "renewal_facts_state",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("renewal_owner", _text(40), nullable=False),
        sa.Column("refreshed_at", service.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_on", sa.Date(), nullable=True),
        _workspace_fk("renewal_facts_state"),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_renewal_facts_state")),
    )
    op.create_table(
        "renewal_facts_stale",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            nullable=False,
        ),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        _workspace_fk("renewal_facts_stale"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_renewal_facts_stale")),
    )
    with op.batch_alter_table("renewal_facts_stale", schema=None) as batch_op:
        batch_op.create_index(
            "ix_renewal_facts_stale_account", ["workspace_id", "account_id"], unique=False
        )


def _postgresql_triggers(source: Source) -> list[str]:
    name = f"renewal_facts_stale_{source.table}"

    def mark(row: str) -> str:
        return _MARK.format(account=source.account.format(row=row)) + ";"

    statements = [
        f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        {mark("OLD")}
    END IF;
    IF TG_OP <> 'DELETE' THEN
        {mark("NEW")}
    END IF;
    RETURN NULL;
END
$$"""
    ]
    events = " OR ".join(event.upper() for event in source.events if event != "update")
    if events:
        statements.append(
            f"CREATE TRIGGER {name} AFTER {events} ON {source.table} "
            f"FOR EACH ROW EXECUTE FUNCTION {name}()"
        )
    if "update" in source.events:
        when = ""
        if source.changes:
            changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in source.changes)
            when = f" WHEN ({changed})"
        statements.append(
            f"CREATE TRIGGER {name}_update AFTER UPDATE ON {source.table} "
            f"FOR EACH ROW{when} EXECUTE FUNCTION {name}()"
        )
    return statements


def _sqlite_triggers(source: Source) -> list[str]:
    def mark(row: str) -> str:
        return _MARK.format(account=source.account.format(row=row))

    statements = []
    for event in source.events:
        name = f"renewal_facts_stale_{source.table}_{event}"
        when = ""
        if event == "update" and source.changes:
            when = " WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in source.changes)
        body = {
            "insert": [mark("NEW")],
            "delete": [mark("OLD")],
            "update": [mark("OLD"), mark("NEW")],
        }[event]
        statements.append(
            f"CREATE TRIGGER {name} AFTER {event.upper()} ON {source.table}{when} "
            f"BEGIN {'; '.join(body)}; END"
        )
    return statements


# The marks are a queue: rows come and go all day, and every forecast asks whether its
# workspace has any. Vacuumed only at PostgreSQL's default (a fifth of the table dead), a
# burst of marks (an import; the first computation of a large workspace) leaves dead rows
# that each such question walks past until autovacuum comes. Vacuum it after a thousand.
_VACUUM_MARKS_OFTEN = (
    "ALTER TABLE renewal_facts_stale SET ("
    "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000, "
    "autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000)"
)


def upgrade() -> None:
    _create_tables()
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_VACUUM_MARKS_OFTEN)
    for source in SOURCES:
        triggers = _postgresql_triggers if dialect == "postgresql" else _sqlite_triggers
        for statement in triggers(source):
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for source in SOURCES:
        if dialect == "postgresql":
            # Dropping the function drops its triggers with it.
            op.execute(f"DROP FUNCTION renewal_facts_stale_{source.table}() CASCADE")
        else:
            for event in source.events:
                op.execute(f"DROP TRIGGER renewal_facts_stale_{source.table}_{event}")
    with op.batch_alter_table("renewal_facts_stale", schema=None) as batch_op:
        batch_op.drop_index("ix_renewal_facts_stale_account")
    op.drop_table("renewal_facts_stale")
    op.drop_table("renewal_facts_state")
    with op.batch_alter_table("renewal_facts", schema=None) as batch_op:
        batch_op.drop_index("ix_renewal_facts_workspace_owner")
        batch_op.drop_index("ix_renewal_facts_workspace_renewal")
    op.drop_table("renewal_facts")
