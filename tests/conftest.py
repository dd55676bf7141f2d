"""Test fixtures: every database test runs on SQLite and, when QB_TEST_POSTGRES_URL is set,
on PostgreSQL, each in a database the suite creates, migrates and drops itself."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.app import create_app
from service.config import Settings
from service.db import throwaway
from service.db.base import metadata
from service.db.engine import create_engine, create_sessionmaker
from service.db.migrate import upgrade
from tests import factories

POSTGRES_URL = os.environ.get("QB_TEST_POSTGRES_URL")
DIALECTS = ["sqlite", "postgresql"]


@dataclass
class Database:
    dialect: str
    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


@pytest.fixture(scope="session", params=DIALECTS)
async def database(request: pytest.FixtureRequest, tmp_path_factory) -> AsyncIterator[Database]:
    if request.param == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("QB_TEST_POSTGRES_URL is not set")
        url = await throwaway.create_database(POSTGRES_URL, "qb_test")
    else:
        path = Path(tmp_path_factory.mktemp("db")) / "quarterback.db"
        url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(Settings(database_url=url))
    try:
        await upgrade(engine)
        yield Database(request.param, url, engine, create_sessionmaker(engine))
    finally:
        await engine.dispose()
        if request.param == "postgresql":
            assert POSTGRES_URL
            await throwaway.drop_database(POSTGRES_URL, url)


async def _clear(database: Database) -> None:
    tables = [table.name for table in reversed(metadata.sorted_tables)]
    async with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        else:
            for table in tables:
                await connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(scope="session")
async def _app_client(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    # No background timer poller here: tests fire timers themselves (tests/test_timers.py).
    settings = Settings(
        database_url=database.url,
        scheduler_enabled=False,
        outbound_allow_private_networks=True,
    )
    app = create_app(settings, engine=database.engine)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    """The test's database, emptied after the test."""
    try:
        yield database
    finally:
        await _clear(database)


@pytest.fixture
async def client(_app_client: httpx.AsyncClient, db: Database) -> httpx.AsyncClient:
    return _app_client


@pytest.fixture
async def workspace(db: Database) -> factories.WorkspaceKey:
    return await factories.create_workspace(db.sessionmaker, name="Acme Workspace")


@pytest.fixture
async def other_workspace(db: Database) -> factories.WorkspaceKey:
    return await factories.create_workspace(db.sessionmaker, name="Other Workspace")
