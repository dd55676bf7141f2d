"""The ASGI application: wiring only. Engine and sessionmaker live in the lifespan state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service import __version__
from service.accounts.routes import router as accounts_router
from service.alignment.routes import alignment_router
from service.alignment.routes import router as operational_plans_router
from service.config import Settings, get_settings
from service.db.engine import create_engine, create_sessionmaker
from service.deals.routes import router as deals_router
from service.errors import install_error_handlers, problem, problem_response
from service.forecasts.routes import router as forecasts_router
from service.graphql import graphiql
from service.graphql.schema import graphql_router
from service.kit import backlog, live
from service.kit.collector import tune_for_serving
from service.kit.limits import BodySizeLimit
from service.kit.observability import RequestContext
from service.lifecycle.event_routes import router as events_router
from service.lifecycle.routes import router as lifecycle_router
from service.outbound.dispatcher import Dispatcher
from service.outbound.routes import router as subscriptions_router
from service.plans.routes import router as plans_router
from service.playbooks.routes import router as playbook_router
from service.tasks.routes import router as tasks_router
from service.timers.scheduler import Scheduler
from service.webhooks.admission import WebhookAdmission
from service.webhooks.routes import ingest_router as webhooks_router
from service.webhooks.routes import router as webhook_sources_router
from service.workspaces.routes import router as workspaces_router

DESCRIPTION = """\
Quarterback keeps every customer account on a lifecycle (QUALIFY → ACQUIRE → IMPLEMENT →
VALUE → RENEW → EXPAND), knows which department is the quarterback of each stage, and raises
a handoff task for the next quarterback whenever a move changes who leads the customer.

Every `/v1` route needs `Authorization: Bearer <api key>`. Errors are
`application/problem+json` (RFC 9457) with a stable `code`.
"""


class State(TypedDict):
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    scheduler: Scheduler | None
    http: httpx.AsyncClient
    live: live.Broadcaster


def create_app(settings: Settings | None = None, engine: AsyncEngine | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        owned = engine is None
        active = engine or create_engine(settings)
        # Committed changes reach GraphQL subscribers on every replica (service/kit/live.py).
        broadcaster = live.broadcaster_for(active.url)
        await broadcaster.start()
        sessionmaker = create_sessionmaker(active)
        sessionmaker.configure(info=live.session_info(broadcaster))
        # Every serving process fires due timers; SKIP LOCKED keeps replicas from doubling up.
        scheduler = None
        if settings.scheduler_enabled:
            scheduler = Scheduler(sessionmaker, poll_seconds=settings.scheduler_poll_seconds)
            scheduler.start()
        dispatcher = None
        if settings.scheduler_enabled:
            dispatcher = Dispatcher(sessionmaker, poll_seconds=settings.outbound_poll_seconds)
            dispatcher.start()
        # One client for calls out (CRM lookups): pooled connections, explicit timeouts.
        http = httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=2.0))
        tune_for_serving()  # last: everything made at start-up is frozen
        try:
            yield {
                "engine": active,
                "sessionmaker": sessionmaker,
                "settings": settings,
                "scheduler": scheduler,
                "http": http,
                "live": broadcaster,
            }
        finally:
            await http.aclose()
            if dispatcher is not None:
                await dispatcher.stop()
            if scheduler is not None:
                await scheduler.stop()
            await broadcaster.stop()  # last: the scheduler's final commits are announced too
            if owned:
                await active.dispose()

    app = FastAPI(
        title="Quarterback",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit)
    # Outside the body limit and the app, inside the request id and metrics.
    app.add_middleware(WebhookAdmission, max_in_flight=settings.webhook_admission_limit)
    app.add_middleware(RequestContext)
    # The CRM ingestion route first: FastAPI tries routes in order, and matching a path
    # against the hundred routes before it cost more CPU than verifying the signature.
    for router in (
        webhooks_router,
        workspaces_router,
        lifecycle_router,
        accounts_router,
        events_router,
        playbook_router,
        tasks_router,
        plans_router,
        operational_plans_router,
        alignment_router,
        deals_router,
        forecasts_router,
        webhook_sources_router,
        subscriptions_router,
    ):
        app.include_router(router)
    app.include_router(graphql_router(settings))
    # GraphiQL's scripts, vendored so that the IDE works without reaching a CDN.
    app.mount(graphiql.ASSETS_URL.rstrip("/"), StaticFiles(directory=graphiql.ASSETS_DIR))

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics: this process's counters, and the shared queues' depth."""
        await backlog.refresh(request.state.engine)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "Database down."}})
    async def readyz(request: Request) -> Any:
        """The database answers."""
        try:
            async with request.state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any failure to reach the database means not ready
            body = problem(
                503, "not_ready", "Not ready", f"database unreachable: {type(exc).__name__}"
            )
            return problem_response(body)
        return JSONResponse({"status": "ok", "database": "ok"})

    return app
