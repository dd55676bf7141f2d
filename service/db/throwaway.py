"""Throwaway PostgreSQL databases for the test suite and the benchmarks."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.engine import make_url

from service.config import Settings
from service.db.engine import create_engine


async def create_database(admin_url: str, prefix: str) -> str:
    """Create `<prefix>_<random>` next to `admin_url`'s database; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(Settings(database_url=admin_url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    url = make_url(Settings(database_url=admin_url).database_url).set(database=name)
    return url.render_as_string(hide_password=False)


async def drop_database(admin_url: str, url: str) -> None:
    """Drop the database of `url`, closing any connection still open to it."""
    name = make_url(url).database
    admin = create_engine(Settings(database_url=admin_url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def asyncpg_dsn(url: str) -> str:
    """`url` as asyncpg's own `connect` takes it (no `+asyncpg` driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
