"""The `quarterback` command line: serve, worker, migrate, workspaces, demo, schemas."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.engine import make_url

from service.config import Settings

app = typer.Typer(help="Quarterback: customer lifecycle handoffs.", no_args_is_help=True)
workspace_app = typer.Typer(help="Create and list workspaces.", no_args_is_help=True)
app.add_typer(workspace_app, name="workspace")
playbook_app = typer.Typer(help="Check playbook documents.", no_args_is_help=True)
app.add_typer(playbook_app, name="playbook")
webhooks_app = typer.Typer(help="Sign sample deliveries for webhook sources.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")

console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise fail(f"{'QB_' + field.upper() if field else 'settings'}: {message}") from None


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def run_db(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(engine)`; turn an unreachable database into one clear line."""
    from service.db.engine import create_engine

    async def main() -> T:
        engine = create_engine(settings)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except typer.Exit:
        raise
    except Exception as exc:
        reason = getattr(exc, "orig", None) or exc
        raise fail(
            f"cannot use the database at {safe_url(settings.database_url)}: "
            f"{type(reason).__name__}: {str(reason).splitlines()[0] if str(reason) else ''}"
        ) from None


async def _migrate(engine: Any) -> None:
    from service.db.migrate import upgrade

    await upgrade(engine)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = load_settings()
    run_db(settings, _migrate)
    console.print(f"migrated {safe_url(settings.database_url)}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (QB_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (QB_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (PostgreSQL only).")] = 1,
    demo: Annotated[bool, typer.Option(help="Create the demo workspace and print a key.")] = False,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Run migrations before serving.")
    ] = True,
) -> None:
    """Serve the REST API and GraphQL (/graphql) with uvicorn."""
    import uvicorn

    from service.kit.observability import log_config

    settings = load_settings(host=host, port=port)
    if workers > 1 and settings.is_sqlite:
        raise fail(
            "SQLite serves one process; set QB_DATABASE_URL to PostgreSQL to run several workers"
        )
    if migrate_first:
        run_db(settings, _migrate)
    if demo:
        _print_demo(settings)
    # Workers re-read settings from the environment; pass on what the flags changed.
    import os

    os.environ["QB_HOST"], os.environ["QB_PORT"] = settings.host, str(settings.port)
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
        proxy_headers=True,
        # SIGTERM: stop accepting, finish in-flight requests (up to 30 s), then the lifespan
        # stops the scheduler and the dispatcher after their current timer or delivery.
        timeout_graceful_shutdown=30,
    )


@app.command()
def worker(
    poll_seconds: Annotated[
        float | None,
        typer.Option(help="Seconds between looks for due timers (QB_SCHEDULER_POLL_SECONDS)."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Fire the timers due now, print how many, and exit.")
    ] = False,
) -> None:
    """Fire due timers (time rules, handoff SLAs) until SIGTERM or Ctrl-C.

    `serve` fires timers too; run workers to fire them apart from the API (PostgreSQL).
    """
    import logging
    import signal

    settings = load_settings(scheduler_poll_seconds=poll_seconds)
    if settings.is_sqlite:
        err.print(
            "warning: SQLite serves one process; with SQLite let `quarterback serve` fire the "
            "timers, and use PostgreSQL to run workers apart from it",
            highlight=False,
            soft_wrap=True,
        )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import service.app  # noqa: F401  (imports every domain, and so registers every timer kind)
    from service.db import tables
    from service.db.engine import create_sessionmaker
    from service.db.types import utcnow
    from service.outbound.dispatcher import Dispatcher
    from service.timers.scheduler import Scheduler, default_worker_id
    from service.timers.service import run_pass

    async def fire_due(engine: Any) -> int:
        sessionmaker, now, fired = create_sessionmaker(engine), utcnow(), 0
        while True:
            result = await run_pass(sessionmaker, now=now, worker_id=default_worker_id())
            fired += result.fired
            if result.claimed == 0:
                return fired

    async def deliver_outbox(engine: Any) -> int:
        import httpx

        from service.outbound.dispatcher import deliver_due

        async with httpx.AsyncClient() as http:
            return await deliver_due(
                create_sessionmaker(engine), http, worker_id=default_worker_id()
            )

    async def run_until_signal(engine: Any) -> int:
        from sqlalchemy import select

        async with engine.connect() as connection:  # fail now, in one line, if not migrated
            await connection.execute(select(tables.timers.c.id).limit(1))
        from service.kit import live

        # What its timers change (stage moves, tasks) reaches GraphQL subscribers of any replica.
        broadcaster = live.broadcaster_for(engine.url)
        await broadcaster.start()
        timers_sessionmaker = create_sessionmaker(engine)
        timers_sessionmaker.configure(info=live.session_info(broadcaster))
        scheduler = Scheduler(timers_sessionmaker, poll_seconds=settings.scheduler_poll_seconds)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        dispatcher = Dispatcher(
            create_sessionmaker(engine),
            poll_seconds=settings.outbound_poll_seconds,
            worker_id=scheduler.worker_id,
        )
        scheduler.start()
        dispatcher.start()
        print(
            f"worker {scheduler.worker_id} firing due timers and delivering the outbox; "
            "Ctrl-C to stop",
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            # Finish the timer and the delivery in flight; their row locks go with the commit.
            await dispatcher.stop()
            await scheduler.stop()
            await broadcaster.stop()
        return scheduler.fired

    if once:
        print(f"fired {run_db(settings, fire_due)} timers")
        print(f"delivered {run_db(settings, deliver_outbox)} outbox messages")
    else:
        print(f"stopped; fired {run_db(settings, run_until_signal)} timers")


def _print_demo(settings: Settings) -> None:
    from service.db.engine import create_sessionmaker
    from service.demo import curl_examples, ensure_demo

    async def work(engine: Any) -> Any:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await ensure_demo(session)

    key = run_db(settings, work)
    created = " (created)" if key.created else ""
    # Plain print: these lines are copied by people and parsed by scripts, never wrapped.
    print(f"\nDemo workspace {key.workspace_id}{created}")
    print(f"Admin API key (shown once): {key.api_key}\n\nTry:")
    for line in curl_examples(settings.base_url, key.api_key):
        print(f"  {line}")
    print(flush=True)


@workspace_app.command("create")
def workspace_create(
    name: str,
    renewal_quarterback: Annotated[
        str, typer.Option(help="Quarterback of RENEW: csm, sales or revops.")
    ] = "csm",
    timezone: Annotated[str, typer.Option(help="IANA time zone for due dates.")] = "UTC",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Create a workspace and print its id and an admin API key (shown once)."""
    from service.db.engine import create_sessionmaker
    from service.errors import QuarterbackError
    from service.workspaces import service as workspaces_service

    settings = load_settings()

    async def work(engine: Any) -> tuple[str, str]:
        async with create_sessionmaker(engine)() as session, session.begin():
            try:
                workspace = await workspaces_service.create_workspace(
                    session,
                    name=name,
                    renewal_quarterback=renewal_quarterback,
                    timezone=timezone,
                )
            except QuarterbackError as exc:
                raise fail(exc.detail, code=2) from None
            _, raw_key = await workspaces_service.create_api_key(
                session, workspace_id=workspace.id, name="admin (cli)", scopes=["admin"]
            )
            return str(workspace.id), raw_key

    workspace_id, raw_key = run_db(settings, work)
    if as_json:
        print(json.dumps({"workspace_id": workspace_id, "api_key": raw_key}))
    else:
        print(f"workspace id: {workspace_id}\nadmin API key (shown once): {raw_key}")


@workspace_app.command("list")
def workspace_list() -> None:
    """List workspaces."""
    from sqlalchemy import select
    from sqlmodel import col

    from service.workspaces.models import Workspace

    settings = load_settings()

    async def work(engine: Any) -> list[tuple[str, str]]:
        async with engine.connect() as connection:
            rows = await connection.execute(select(col(Workspace.id), col(Workspace.name)))
            return [(str(r.id), r.name) for r in rows]

    for workspace_id, name in run_db(settings, work):
        print(f"{workspace_id}  {name}")


@app.command()
def schemas(
    out: Annotated[Path, typer.Option(help="Project root to write into.")] = Path("."),
) -> None:
    """Write the generated contracts: openapi/openapi.json and schemas/*."""
    from service.contracts import write_contracts

    for path in write_contracts(out):
        console.print(f"wrote {path}")


@playbook_app.command("validate")
def playbook_validate(
    file: Annotated[Path, typer.Argument(help="A playbook in YAML or JSON; - for stdin.")],
) -> None:
    """Check a playbook offline, as PUT /v1/playbook would: exit 0 if valid, 1 with errors."""
    from service.playbooks import document as playbook_document

    if str(file) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = file.read_text()
        except OSError as exc:
            raise fail(f"cannot read {file}: {exc.strerror}", code=2) from None
    try:
        errors = playbook_document.validate(playbook_document.parse(text))
    except playbook_document.InvalidPlaybook as exc:
        errors = exc.errors
    if not errors:
        print(f"{file}: valid")
        return
    for error in errors:
        print(f"{file}:{error.pointer or '/'}: {error.message}", file=sys.stderr)
    raise typer.Exit(1)


@webhooks_app.command("sign")
def webhooks_sign(
    kind: Annotated[str, typer.Option(help="hubspot, pipedrive, salesforce or standard.")],
    url: Annotated[str, typer.Option(help="The source's ingestion URL (as the CRM calls it).")],
    file: Annotated[Path, typer.Argument(help="The body to send; - for stdin.")],
    secret: Annotated[
        str | None, typer.Option(help="The source's secret (or QB_WEBHOOK_SECRET).")
    ] = None,
    message_id: Annotated[str | None, typer.Option(help="standard: the webhook-id.")] = None,
) -> None:
    """Print a curl command that delivers FILE signed the way KIND signs, for trying a
    source out against a running server."""
    import os
    import shlex
    import time
    import uuid as uuid_module

    body = sys.stdin.read() if str(file) == "-" else file.read_text()
    secret = secret or os.environ.get("QB_WEBHOOK_SECRET")
    if kind != "salesforce" and not secret:
        raise fail("pass --secret (or set QB_WEBHOOK_SECRET): the source's secret", code=2)
    headers: dict[str, str] = {}
    if kind == "standard":
        from service.webhooks.adapters.standard import sign

        headers = sign(
            secret or "", message_id or f"msg_{uuid_module.uuid4().hex}", int(time.time()), body
        )
        headers["content-type"] = "application/json"
    elif kind == "hubspot":
        from service.webhooks.adapters.hubspot_signatures import sign_v3

        timestamp = str(int(time.time() * 1000))
        headers = {
            "content-type": "application/json",
            "x-hubspot-request-timestamp": timestamp,
            "x-hubspot-signature-v3": sign_v3(secret or "", "POST", url, body, timestamp),
        }
    elif kind == "pipedrive":
        import base64

        token = base64.b64encode(f"quarterback:{secret}".encode()).decode()
        headers = {"content-type": "application/json", "authorization": f"Basic {token}"}
    elif kind == "salesforce":
        headers = {"content-type": "text/xml; charset=utf-8", "soapaction": '""'}
    else:
        raise fail(f"unknown kind {kind!r}; hubspot, pipedrive, salesforce or standard", code=2)
    parts = ["curl", "-s", "-X", "POST", url]
    for name, value in headers.items():
        parts += ["-H", f"{name}: {value}"]
    parts += ["--data-binary", body]
    print(" ".join(shlex.quote(part) for part in parts))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
