"""Indexes earn their keep: the tenant key leads one on every table, and no index repeats the
leading columns of another (which would serve the same lookups and only cost each write)."""

from __future__ import annotations

from sqlalchemy import PrimaryKeyConstraint, Table, UniqueConstraint
from sqlmodel import SQLModel

from service.db import models_registry  # noqa: F401  (registers every table)


def _keys(table: Table) -> list[tuple[str, tuple[str, ...], bool]]:
    """(name, columns, is a plain index) of every index, unique constraint and primary key."""
    keys = [
        (str(index.name), tuple(c.name for c in index.columns), True) for index in table.indexes
    ]
    keys += [
        (str(constraint.name), tuple(c.name for c in constraint.columns), False)
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint | PrimaryKeyConstraint)
    ]
    return keys


def test_workspace_id_leads_an_index_on_every_tenant_table():
    # Tenant filters, and the cascade when a workspace is deleted, look rows up by it.
    unindexed = [
        table.name
        for table in SQLModel.metadata.sorted_tables
        if "workspace_id" in table.c
        and not any(cols[0] == "workspace_id" for _, cols, _ in _keys(table))
    ]
    assert unindexed == []


def test_no_index_repeats_the_leading_columns_of_another():
    redundant = [
        f"{table.name}.{name} {columns} is a prefix of {other} {longer}"
        for table in SQLModel.metadata.sorted_tables
        for name, columns, plain in _keys(table)
        if plain
        for other, longer, _ in _keys(table)
        if other != name and len(longer) > len(columns) and longer[: len(columns)] == columns
    ]
    assert redundant == []
