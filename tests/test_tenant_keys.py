"""The schema stays distributable by workspace (README, "Growing past one database server").

Every tenant table carries a non-null `workspace_id` that points at its workspace, and every
uniqueness either leads with `workspace_id` or is one of the few known exceptions that the
README lists as the one change still needed before Citus. A new table or constraint that
breaks this fails here, not on the day someone shards the database.
"""

from __future__ import annotations

from sqlalchemy import ForeignKeyConstraint, Table, UniqueConstraint
from sqlmodel import SQLModel

from service.db import models_registry  # noqa: F401  (registers every table)

# Uniqueness keyed on a child id rather than on workspace_id: each must gain workspace_id
# (and api_keys become a reference table) before distributing. Listed in the README.
KNOWN_EXCEPTIONS = {
    ("api_keys", ("key_hash",)),
    ("account_external_ids", ("account_id", "source")),
    ("account_owners", ("account_id", "department")),
    ("subscription_event_types", ("subscription_id", "event_type")),
    ("success_plans", ("account_id", "contract_year")),
    ("webhook_mapping_versions", ("source_id", "version")),
    ("webhook_record_states", ("source_id", "key")),
}


def _tenant_tables() -> list[Table]:
    return [table for table in SQLModel.metadata.sorted_tables if table.name != "workspaces"]


def _uniques(table: Table) -> list[tuple[str, ...]]:
    found = [
        tuple(constraint.columns.keys())
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    ]
    found += [
        tuple(column.name for column in index.columns) for index in table.indexes if index.unique
    ]
    return found


def test_every_tenant_table_has_a_non_null_workspace_id_pointing_at_its_workspace():
    for table in _tenant_tables():
        assert "workspace_id" in table.c, f"{table.name} has no workspace_id"
        assert not table.c.workspace_id.nullable, f"{table.name}.workspace_id is nullable"
        targets = {
            constraint.referred_table.name
            for constraint in table.constraints
            if isinstance(constraint, ForeignKeyConstraint)
            and constraint.column_keys == ["workspace_id"]
        }
        assert targets == {"workspaces"}, f"{table.name}.workspace_id has no foreign key"


def test_uniqueness_leads_with_workspace_id_or_is_a_listed_exception():
    offenders = [
        (table.name, columns)
        for table in _tenant_tables()
        for columns in _uniques(table)
        if columns[0] != "workspace_id" and (table.name, columns) not in KNOWN_EXCEPTIONS
    ]
    assert offenders == [], (
        "a unique constraint must lead with workspace_id so the schema can be distributed by "
        f"workspace: {offenders}"
    )


def test_the_exception_list_has_no_stale_entries():
    present = {(table.name, columns) for table in _tenant_tables() for columns in _uniques(table)}
    assert KNOWN_EXCEPTIONS <= present, sorted(KNOWN_EXCEPTIONS - present)
