"""The PostgreSQL pool keeps its connections: a new one costs a connect, SQLAlchemy's codec
set-up and a backend fork, so reopening them under steady load showed up in p99."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event, text

from service.app import create_app
from service.config import Settings
from service.db.engine import create_engine
from tests.conftest import POSTGRES_URL


@pytest.mark.skipif(not POSTGRES_URL, reason="QB_TEST_POSTGRES_URL is not set")
async def test_a_full_pool_reuses_its_connections_burst_after_burst(monkeypatch):
    for name in ("QB_DB_POOL_SIZE", "QB_DB_MAX_OVERFLOW"):
        monkeypatch.delenv(name, raising=False)
    assert POSTGRES_URL
    settings = Settings(database_url=POSTGRES_URL, _env_file=None)
    engine = create_engine(settings)
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda connection, _record: opened.append(1))
    at_once = settings.webhook_admission_limit  # as many as webhook deliveries in flight

    async def hold(everyone_in: asyncio.Barrier) -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            await everyone_in.wait()  # all the connections are out at the same time

    try:
        for _burst in range(3):
            everyone_in = asyncio.Barrier(at_once)
            await asyncio.gather(*(hold(everyone_in) for _ in range(at_once)))
    finally:
        await engine.dispose()
    assert len(opened) == at_once


@pytest.mark.skipif(not POSTGRES_URL, reason="QB_TEST_POSTGRES_URL is not set")
async def test_a_request_that_finds_no_free_connection_gets_503_with_retry_after(db, workspace):
    """Overload, not a fault: every connection busy for QB_DB_POOL_TIMEOUT_SECONDS."""
    if db.dialect != "postgresql":
        pytest.skip("the pool settings are PostgreSQL's")
    settings = Settings(
        database_url=db.url,
        db_pool_size=1,
        db_pool_timeout_seconds=0.2,
        scheduler_enabled=False,
        _env_file=None,
    )
    engine = create_engine(settings)
    app = create_app(settings, engine=engine)
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                headers = {"Authorization": f"Bearer {workspace.key}"}
                assert (await client.get("/v1/tasks", headers=headers)).status_code == 200
                async with engine.connect() as held:  # the pool's only connection
                    await held.execute(text("SELECT 1"))
                    answer = await client.get("/v1/tasks", headers=headers)
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"] == "1"
                assert answer.json()["code"] == "service_unavailable"
                # Free again, the same worker serves.
                assert (await client.get("/v1/tasks", headers=headers)).status_code == 200
    finally:
        await engine.dispose()
