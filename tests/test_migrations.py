"""The Alembic history builds exactly the schema the models describe, on both dialects."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.db.base import metadata


async def test_migrations_match_models(db):
    def diff(connection):
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        return compare_metadata(context, metadata)

    async with db.engine.connect() as connection:
        changes = await connection.run_sync(diff)
    assert changes == [], f"models and migrations differ; add a migration: {changes}"
