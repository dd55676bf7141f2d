"""Benchmark of the transition hot path on PostgreSQL: the service next to raw asyncpg.

What it measures
----------------
Moving an account one stage along its lifecycle, one transaction per move, by C concurrent
asyncio workers on one event loop, for a fixed time (and at most a fixed count) per variant:

* ``service``: ``service.lifecycle.transitions.transition_account`` inside
  ``async with sessionmaker() as s, s.begin():``, on the engine and sessionmaker the app
  builds (``create_engine(Settings)``, ``create_sessionmaker``), so SQLAlchemy, SQLModel and
  the service's own Python are all in the measurement.
* ``raw asyncpg``: the same SQL by hand on an asyncpg pool, one transaction per move: the
  ``SELECT … FOR UPDATE OF accounts`` joined to workspaces and stages with the two owner
  subqueries, the same checks in Python, ``UPDATE accounts``, and ``INSERT`` of the
  handoff ``tasks`` and ``task_activities`` rows (when the quarterback changes) and of the
  ``stage_transitions`` row, with the same columns and values. It is the floor the service
  could reach on this database; ``ratio service/raw`` says how close it gets.
* ``http`` (unless ``--no-http``): ``quarterback serve --no-migrate`` as a subprocess and
  ``POST /v1/accounts/{id}/transitions`` through httpx, so routing, authentication,
  validation and serialization come on top.

Every account walks the same nine-move cycle, which covers every default stage but EXPAND,
two backward moves (with a reason) and six handoffs out of nine moves:

    QUALIFY → ACQUIRE → IMPLEMENT → VALUE → RENEW → VALUE → IMPLEMENT → VALUE → CHURNED → QUALIFY

Accounts are seeded evenly over the cycle (account i starts at position i mod 9) and handed
to the workers round robin, an account to one worker at a time, so every variant sees the
same mix of moves whatever its count; the ``handoffs`` column shows it. Each variant has a
discarded warm-up pass before its measured pass. Latency is one transaction, checkout and
commit included (for ``http``, one request); transitions/s is moves over the wall time of
the pass. Both pools have the same capacity: the service engine's ``db_pool_size``
connections plus its ``db_max_overflow`` (``create_engine``), unless ``--raw-pool-max`` says
otherwise.

The script creates a throwaway database ``qb_bench_<hex>`` from the admin URL, migrates it,
seeds one workspace with N accounts (through ``accounts_service.create_account``, each with
owners in the four quarterback departments), and drops it ``WITH (FORCE)`` at the end, on
error and on Ctrl-C as well.

Run from the project root::

    .venv/bin/python bench/transitions.py
    .venv/bin/python bench/transitions.py --accounts 2000 --concurrency 8 --seconds 3
    .venv/bin/python bench/transitions.py --no-http --postgres-url postgresql://postgres@db/postgres

The admin URL comes from ``--postgres-url``, else ``QB_BENCH_POSTGRES_URL``, else
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``. The numbers are for comparing the
variants within one run on one machine, not across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from local_server import served
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.accounts import service as accounts_service
from service.config import Settings
from service.db import throwaway
from service.db.engine import create_engine, create_sessionmaker
from service.db.migrate import upgrade
from service.db.types import utcnow, uuid7
from service.kit.dates import add_business_days, local_today
from service.lifecycle.transitions import transition_account
from service.playbooks.document import default_document
from service.playbooks.rules import compile_playbook
from service.playbooks.schedules import business_deadline
from service.tasks import service as tasks_service
from service.workspaces import service as workspaces_service

DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
ACTOR = "bench"
BACKWARD_REASON = "bench: moving back"

# Position k of the cycle is a stage; the move from position k goes to position k + 1.
CYCLE: tuple[str, ...] = (
    "QUALIFY",
    "ACQUIRE",
    "IMPLEMENT",
    "VALUE",
    "RENEW",
    "VALUE",
    "IMPLEMENT",
    "VALUE",
    "CHURNED",
)
_SPECS = compile_playbook(default_document(), version=1).stages
# The departments that quarterback a stage of the cycle: every account has an owner in each.
OWNER_DEPARTMENTS: tuple[str, ...] = ("marketing", "sales", "professional_services", "csm")
SEED_BATCH = 250  # accounts per seeding transaction
SEED_PARALLEL = 4  # seeding transactions at once


def _reason(from_stage: str, to_stage: str) -> str | None:
    """Backward moves need a reason; forward moves go without, as most API calls do."""
    return BACKWARD_REASON if to_stage in _SPECS[from_stage].back else None


def _check_cycle() -> None:
    for position, from_stage in enumerate(CYCLE):
        to_stage = CYCLE[(position + 1) % len(CYCLE)]
        spec = _SPECS[from_stage]
        if to_stage not in spec.next + spec.back:
            raise SystemExit(f"bench cycle is stale: {from_stage} → {to_stage} is not allowed")


# --------------------------------------------------------------------------------------
# The workload: which account moves next, and where it goes.


@dataclass
class Workload:
    workspace_id: uuid.UUID
    account_ids: list[uuid.UUID]
    positions: list[int]  # each account's current position in CYCLE
    free: deque[int]  # indexes of accounts no worker holds, in round-robin order


@dataclass(frozen=True)
class PassResult:
    variant: str
    transitions: int
    handoffs: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.transitions / self.seconds if self.seconds else 0.0

    def percentile_ms(self, percent: int) -> float:
        if not self.latencies:
            return float("nan")
        if len(self.latencies) == 1:
            return self.latencies[0] * 1000
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[percent - 1] * 1000


# move(account_id, to_stage, reason) -> whether a handoff was raised
Move = Callable[[uuid.UUID, str, str | None], Awaitable[bool]]


async def run_pass(
    variant: str,
    workload: Workload,
    move: Move,
    *,
    concurrency: int,
    seconds: float,
    max_transitions: int,
) -> PassResult:
    """Move accounts with `concurrency` workers until `seconds` pass or the count is reached."""
    latencies: list[float] = []
    handoffs = 0
    started = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal handoffs, started
        while started < max_transitions and time.perf_counter() < deadline:
            started += 1
            index = workload.free.popleft()
            try:
                position = workload.positions[index]
                from_stage = CYCLE[position]
                to_stage = CYCLE[(position + 1) % len(CYCLE)]
                begin = time.perf_counter()
                raised = await move(
                    workload.account_ids[index], to_stage, _reason(from_stage, to_stage)
                )
                latencies.append(time.perf_counter() - begin)
                workload.positions[index] = (position + 1) % len(CYCLE)
                handoffs += raised
            finally:
                workload.free.append(index)

    begin = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    elapsed = time.perf_counter() - begin
    return PassResult(variant, len(latencies), handoffs, elapsed, latencies)


async def measure(
    variant: str, workload: Workload, move: Move, args: argparse.Namespace
) -> PassResult:
    options = {"concurrency": args.concurrency, "max_transitions": args.max_transitions}
    if args.warmup > 0:
        await run_pass(variant, workload, move, seconds=args.warmup, **options)
    result = await run_pass(variant, workload, move, seconds=args.seconds, **options)
    print(
        f"  {variant:<12} {result.transitions:>7} transitions in {result.seconds:.2f}s",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------------------
# Variant A: the service.


def service_move(sessionmaker: async_sessionmaker[AsyncSession], workspace_id: uuid.UUID) -> Move:
    async def move(account_id: uuid.UUID, to_stage: str, reason: str | None) -> bool:
        async with sessionmaker() as session, session.begin():
            result = await transition_account(
                session,
                workspace_id=workspace_id,
                account_id=account_id,
                to_stage=to_stage,
                reason=reason,
                actor=ACTOR,
            )
        return result.handoff_task is not None

    return move


# --------------------------------------------------------------------------------------
# Variant B: the same SQL on a bare asyncpg pool.

LOCK_SQL = """
SELECT accounts.name, accounts.stage, stages.key, stages.quarterback,
       stages.quarterback_name, stages.next_stages, stages.backward_stages,
       stages.handoff_checklist, stages.handoff_due_days, stages.accept_within_days,
       stages.stuck_rules, workspaces.timezone, workspaces.holiday_calendar,
       workspaces.playbook_version,
       (SELECT receiving_owner.user_id FROM account_owners AS receiving_owner
         WHERE receiving_owner.account_id = accounts.id
           AND receiving_owner.department = stages.quarterback) AS owner_id,
       (SELECT receiving_owner.user_name FROM account_owners AS receiving_owner
         WHERE receiving_owner.account_id = accounts.id
           AND receiving_owner.department = stages.quarterback) AS owner_name
FROM accounts
JOIN workspaces ON workspaces.id = accounts.workspace_id
LEFT OUTER JOIN stages ON stages.workspace_id = accounts.workspace_id
                      AND (stages.key = accounts.stage OR stages.key = $3)
WHERE accounts.workspace_id = $1 AND accounts.id = $2
FOR UPDATE OF accounts
"""
UPDATE_SQL = """
UPDATE accounts SET stage = $3, stage_entered_at = $4, updated_at = $4
WHERE accounts.workspace_id = $1 AND accounts.id = $2
"""
INSERT_TASK_SQL = """
INSERT INTO tasks (id, workspace_id, account_id, kind, title, department, status, priority,
                   assignee_id, assignee_name, due_on, checklist, from_department,
                   to_department, from_stage, to_stage, context, handoff_status,
                   handoff_reason, transition_id, parent_task_id, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20, $21, $22, $23)
"""
INSERT_ACTIVITY_SQL = """
INSERT INTO task_activities (id, workspace_id, task_id, action, actor, changes, comment,
                             occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
INSERT_TRANSITION_SQL = """
INSERT INTO stage_transitions (id, workspace_id, account_id, from_stage, to_stage, reason,
                               cause, actor, backward, skipped_stages, playbook_version,
                               occurred_at, handoff_task_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""
# The service's timers (handoff acceptance SLA, stuck-in-stage rules), as it writes them.
INSERT_TIMER_SQL = """
INSERT INTO timers (id, workspace_id, kind, key, account_id, due_at, payload, status,
                    attempts, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8)
ON CONFLICT (workspace_id, key) DO NOTHING
"""


async def _init_raw_connection(connection: asyncpg.Connection) -> None:
    # JSON columns in and out as Python objects, as SQLAlchemy's JSON type does.
    await connection.set_type_codec(
        "json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )


def raw_move(pool: asyncpg.Pool, workspace_id: uuid.UUID) -> Move:
    async def move(account_id: uuid.UUID, to_stage: str, reason: str | None) -> bool:
        now = utcnow()
        async with pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(LOCK_SQL, workspace_id, account_id, to_stage)
            if not rows:
                raise RuntimeError(f"account {account_id} not found")
            current_stage = rows[0]["stage"]
            stages = {row["key"]: row for row in rows if row["key"] is not None}
            current, target = stages[current_stage], stages.get(to_stage)
            allowed = list(current["next_stages"]) + list(current["backward_stages"])
            if target is None or to_stage not in allowed:
                raise RuntimeError(f"{current_stage} → {to_stage} is not allowed")
            backward = to_stage in current["backward_stages"]
            if backward and not (reason and reason.strip()):
                raise RuntimeError(f"{current_stage} → {to_stage} needs a reason")
            await connection.execute(UPDATE_SQL, workspace_id, account_id, to_stage, now)
            transition_id = uuid7()
            task_id = None
            from_qb, to_qb = current["quarterback"], target["quarterback"]
            if to_qb != from_qb:
                task_id = uuid7()
                checklist = target["handoff_checklist"]
                title = (
                    f"Handoff: {rows[0]['name']} from {current['quarterback_name']} "
                    f"to {target['quarterback_name']}"
                )
                zone, calendar = rows[0]["timezone"], rows[0]["holiday_calendar"]
                due_on = add_business_days(
                    local_today(now, zone), target["handoff_due_days"], calendar
                )
                await connection.execute(
                    INSERT_TASK_SQL,
                    task_id,
                    workspace_id,
                    account_id,
                    tasks_service.KIND_HANDOFF,
                    title,
                    to_qb,
                    "open",
                    "high",
                    target["owner_id"],
                    target["owner_name"],
                    due_on,
                    tasks_service.checklist_items(checklist),
                    from_qb,
                    to_qb,
                    current_stage,
                    to_stage,
                    {"notes": None, "links": [], "risks": []},
                    "pending",
                    None,
                    transition_id,
                    None,
                    now,
                    now,
                )
                await connection.execute(
                    INSERT_ACTIVITY_SQL,
                    uuid7(),
                    workspace_id,
                    task_id,
                    "created",
                    ACTOR,
                    {},
                    None,
                    now,
                )
                await connection.execute(
                    INSERT_TIMER_SQL,
                    uuid7(),
                    workspace_id,
                    "handoff_sla",
                    f"handoff-sla:{task_id}",
                    account_id,
                    business_deadline(now, target["accept_within_days"], zone, calendar),
                    {"task_id": str(task_id), "days": target["accept_within_days"]},
                    now,
                )
            await connection.execute(
                INSERT_TRANSITION_SQL,
                transition_id,
                workspace_id,
                account_id,
                current_stage,
                to_stage,
                reason,
                "manual",
                ACTOR,
                backward,
                [],
                rows[0]["playbook_version"],
                now,
                task_id,
            )
            for index, rule in enumerate(target["stuck_rules"]):
                await connection.execute(
                    INSERT_TIMER_SQL,
                    uuid7(),
                    workspace_id,
                    "stuck_in_stage",
                    f"stuck:{transition_id}:{index}",
                    account_id,
                    now + timedelta(days=int(rule["days"])),
                    {"stage": to_stage, "transition_id": str(transition_id), "rule": rule},
                    now,
                )
        return task_id is not None

    return move


# --------------------------------------------------------------------------------------
# Variant C: the HTTP API, served by `quarterback serve` in a subprocess.


def http_move(client: httpx.AsyncClient, api_key: str) -> Move:
    headers = {"Authorization": f"Bearer {api_key}"}

    async def move(account_id: uuid.UUID, to_stage: str, reason: str | None) -> bool:
        body: dict[str, Any] = {"to_stage": to_stage}
        if reason is not None:
            body["reason"] = reason
        response = await client.post(
            f"/v1/accounts/{account_id}/transitions", json=body, headers=headers
        )
        if response.status_code != 201:
            raise RuntimeError(
                f"POST transitions {to_stage}: {response.status_code} {response.text[:500]}"
            )
        return response.json()["handoff_task"] is not None

    return move


# --------------------------------------------------------------------------------------
# The throwaway database, as tests/conftest.py does it.


async def create_database(admin_url: str) -> str:
    return await throwaway.create_database(admin_url, "qb_bench")


async def drop_database(admin_url: str, url: str) -> None:
    await throwaway.drop_database(admin_url, url)


async def seed(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], accounts: int
) -> tuple[Workload, str]:
    """One workspace, an API key, and `accounts` accounts spread evenly over the cycle."""
    async with sessionmaker() as session, session.begin():
        workspace = await workspaces_service.create_workspace(session, name="Bench Workspace")
        _, api_key = await workspaces_service.create_api_key(
            session, workspace_id=workspace.id, name="bench", scopes=["write"]
        )
    workspace_id = workspace.id
    account_ids: list[uuid.UUID | None] = [None] * accounts
    gate = asyncio.Semaphore(SEED_PARALLEL)

    async def batch(first: int, last: int) -> None:
        async with gate, sessionmaker() as session, session.begin():
            for i in range(first, last):
                view = await accounts_service.create_account(
                    session,
                    workspace_id=workspace_id,
                    name=f"Bench Account {i:05d}",
                    domain=f"bench-{i:05d}.example.com",
                    arr=Decimal(1000 + i % 97 * 250),
                    stage=CYCLE[i % len(CYCLE)],
                    owners={
                        department: {"user_id": f"{department}-{i % 25}", "name": f"User {i % 25}"}
                        for department in OWNER_DEPARTMENTS
                    },
                    actor=ACTOR,
                )
                account_ids[i] = view.account.id

    async with asyncio.TaskGroup() as group:
        for first in range(0, accounts, SEED_BATCH):
            group.create_task(batch(first, min(first + SEED_BATCH, accounts)))
    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE"))
    ids = [account_id for account_id in account_ids if account_id is not None]
    workload = Workload(
        workspace_id=workspace_id,
        account_ids=ids,
        positions=[i % len(CYCLE) for i in range(accounts)],
        free=deque(range(accounts)),
    )
    return workload, api_key


# --------------------------------------------------------------------------------------
# The run and the report.


async def bench(url: str, args: argparse.Namespace) -> list[PassResult]:
    settings = Settings(database_url=url)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    raw_max = args.raw_pool_max or settings.db_pool_size + settings.db_max_overflow
    results: list[PassResult] = []
    try:
        await upgrade(engine)
        began = time.perf_counter()
        workload, api_key = await seed(engine, sessionmaker, args.accounts)
        async with engine.connect() as connection:
            version = (await connection.execute(text("SHOW server_version"))).scalar_one()
        print(
            f"seeded {args.accounts} accounts in {time.perf_counter() - began:.1f}s; "
            f"PostgreSQL {version}; concurrency {args.concurrency}; "
            f"{args.warmup:g}s warm-up + {args.seconds:g}s per variant\n"
            f"pools: service pool_size={settings.db_pool_size} "
            f"max_overflow={settings.db_max_overflow}; raw asyncpg "
            f"min_size={min(settings.db_pool_size, raw_max)} max_size={raw_max}",
            flush=True,
        )
        results.append(
            await measure(
                "service", workload, service_move(sessionmaker, workload.workspace_id), args
            )
        )
        async with asyncpg.create_pool(
            throwaway.asyncpg_dsn(url),
            min_size=min(settings.db_pool_size, raw_max),
            max_size=raw_max,
            init=_init_raw_connection,
            server_settings={"application_name": "quarterback-bench-raw"},
        ) as pool:
            results.append(
                await measure("raw asyncpg", workload, raw_move(pool, workload.workspace_id), args)
            )
        if args.http:
            await engine.dispose()  # leave the connections to the server
            async with (
                served(url) as base_url,
                httpx.AsyncClient(
                    base_url=base_url,
                    timeout=30,
                    limits=httpx.Limits(max_connections=args.concurrency),
                ) as client,
            ):
                results.append(await measure("http", workload, http_move(client, api_key), args))
    finally:
        await engine.dispose()
    return results


def report(results: list[PassResult]) -> None:
    header = (
        f"{'variant':<12} {'transitions':>11} {'seconds':>8} {'transitions/s':>13} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'handoffs':>9}"
    )
    print()
    print(header)
    print("-" * len(header))
    for result in results:
        share = result.handoffs / result.transitions if result.transitions else 0.0
        print(
            f"{result.variant:<12} {result.transitions:>11} {result.seconds:>8.2f} "
            f"{result.rate:>13.1f} {result.percentile_ms(50):>8.2f} "
            f"{result.percentile_ms(99):>8.2f} {share:>9.0%}"
        )
    by_name = {result.variant: result for result in results}
    raw = by_name.get("raw asyncpg")
    if raw is None or not raw.rate:
        return
    print()
    for name in ("service", "http"):
        if name in by_name:
            other = by_name[name]
            latency = other.percentile_ms(50) / raw.percentile_ms(50)
            print(
                f"ratio {name}/raw = {other.rate / raw.rate:.2f}  "
                f"(transitions/s; p50 latency x{latency:.2f})"
            )


async def main(args: argparse.Namespace) -> None:
    task = asyncio.current_task()
    if task is not None:  # SIGTERM cleans up like Ctrl-C does
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    url = await create_database(args.postgres_url)
    name = make_url(url).database
    print(f"created database {name}", flush=True)
    try:
        results = await bench(url, args)
    finally:
        await drop_database(args.postgres_url, url)
        print(f"dropped database {name}", flush=True)
    report(results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Transitions/s and latency of the transition hot path: service vs raw asyncpg."
    )
    parser.add_argument("--accounts", type=int, default=2000, help="accounts to seed (2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent workers (8)")
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="measured seconds per variant (3)"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="discarded warm-up seconds per variant (1)"
    )
    parser.add_argument(
        "--max-transitions",
        type=int,
        default=100_000,
        help="at most this many transitions per pass (100000)",
    )
    parser.add_argument(
        "--raw-pool-max",
        type=int,
        default=None,
        help="max connections of the raw asyncpg pool (default: the service engine's "
        "db_pool_size + max_overflow)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("QB_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="admin URL to create and drop the bench database "
        "(QB_BENCH_POSTGRES_URL, default %(default)s)",
    )
    parser.add_argument(
        "--no-http", dest="http", action="store_false", help="skip the HTTP variant"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.concurrency <= 256:
        parser.error("--concurrency must be between 1 and 256")
    if not args.concurrency <= args.accounts <= 200_000:
        parser.error("--accounts must be at least --concurrency and at most 200000")
    if not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 600:
        parser.error("--seconds must be in (0, 600] and --warmup in [0, 600]")
    if args.max_transitions < 1:
        parser.error("--max-transitions must be positive")
    if args.raw_pool_max is not None and args.raw_pool_max < 1:
        parser.error("--raw-pool-max must be positive")
    if not args.postgres_url.startswith(("postgres://", "postgresql")):
        parser.error("--postgres-url must be a PostgreSQL URL")
    return args


if __name__ == "__main__":
    _check_cycle()
    try:
        asyncio.run(main(parse_args()))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
