"""Benchmark of the renewal forecast on PostgreSQL: the HTTP API next to a raw SQL aggregate.

What it measures
----------------
One workspace with N accounts (100,000 by default), each with one contract renewing in the
next year, a CSM owner out of N/100 (so an owner has about 100 renewals), an open task on
every fifth account (a third of them overdue, some escalations), a renewal opportunity on
every tenth contract and a success plan with two outcomes on every tenth account, loaded
with COPY. Then, in the same run, one request or query at a time:

* ``http grouped``: ``GET /v1/forecasts/renewals?group_by=quarter,owner,category`` for the
  year, against ``quarterback serve`` (uvicorn) on loopback, through httpx: signals,
  probabilities, categories, fiscal quarters, exact money, JSON, auth and all.
* ``raw grouped``: a hand-written SQL aggregate over the same rows through asyncpg: contracts
  joined to accounts and owners, a probability from the contract alone, grouped by fiscal
  quarter, owner and category. It computes no signals, so it is a floor, not an equal. It
  runs with the memory the service gives its whole-workspace statements (``work_mem``).
* ``http +1 change``: the same request, each one after one contract's ARR changed (an
  ``UPDATE`` through asyncpg, timed with it): the forecast first computes the renewal facts
  of the changed account again (service.forecasts.facts), as it does after any write.
* ``new day``: the same request when the stored facts are of yesterday (``renewal_facts_state``
  aged by a day), so that every contract's facts are computed again: what the first forecast
  of each day in the workspace's time zone costs. Five requests, alone.
* ``http drill-down``: ``GET /v1/forecasts/renewals/accounts?owner=<one owner>`` (the first
  page of one owner's renewals with their signals).
* ``raw drill-down``: one owner's renewals by hand, the same floor for the list.
* ``sql grouped`` and ``sql drill-down``: the service's own main statement of each request
  (captured from one in-process call), run alone through asyncpg with the same custom plans:
  the database's share of the request, so that the report can say how much of the distance to
  the floor is the signals in SQL and how much is everything around the statement.

Each variant has discarded warm-up requests, then ``--requests`` measured ones, the variants
of a kind (grouped; drill-down) taking turns so that a drift in the machine's speed affects
them alike; latencies are wall time per request (per query for raw and sql). The script
prints p50/p95/p99 and the ratios.

Run from the project root::

    .venv/bin/python bench/forecast.py
    .venv/bin/python bench/forecast.py --accounts 1000000 --requests 30
    .venv/bin/python bench/forecast.py --random-page-cost 1.1

The admin URL comes from ``--postgres-url``, else ``QB_BENCH_POSTGRES_URL``, else
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``. A throwaway database is created
and dropped at the end (on error and Ctrl-C as well).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from local_server import served
from sqlalchemy import event
from sqlalchemy.engine import make_url

from service.config import Settings
from service.db import throwaway
from service.db.engine import create_engine, create_sessionmaker
from service.db.migrate import upgrade
from service.db.types import uuid7
from service.forecasts import service as forecasts_service
from service.forecasts.sqldates import WHOLE_WORKSPACE_WORK_MEM
from service.workspaces import service as workspaces_service

DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
STAGES = ("IMPLEMENT", "VALUE", "RENEW", "EXPAND")
SEGMENTS = ("high_touch", "mid_touch", "low_touch")

RAW_GROUPED = """
WITH renewals AS (
    SELECT c.arr, c.ends_on, o.user_id,
           CASE WHEN c.status = 'renewed' THEN 100
                WHEN c.status IN ('churned', 'expired') THEN 0
                ELSE 50 + CASE WHEN c.auto_renew THEN 10 ELSE 0 END END AS probability
    FROM contracts c
    JOIN accounts a ON a.id = c.account_id AND a.workspace_id = $1
    LEFT JOIN account_owners o
           ON o.account_id = c.account_id AND o.workspace_id = $1 AND o.department = 'csm'
    WHERE c.workspace_id = $1 AND c.ends_on BETWEEN $2 AND $3
)
SELECT extract(year FROM ends_on)::int AS fiscal_year,
       (extract(month FROM ends_on)::int - 1) / 3 + 1 AS fiscal_quarter,
       user_id,
       CASE WHEN probability >= 80 THEN 'commit' WHEN probability >= 60 THEN 'best_case'
            WHEN probability >= 40 THEN 'at_risk' ELSE 'churn_risk' END AS category,
       count(*), sum(arr), sum(arr * probability)
FROM renewals
GROUP BY 1, 2, 3, 4
"""

RAW_DRILL_DOWN = """
SELECT c.id, c.account_id, a.name, c.ends_on, c.arr, c.currency, c.status, a.segment, a.stage,
       o.user_id, o.user_name, 50 + CASE WHEN c.auto_renew THEN 10 ELSE 0 END AS probability
FROM account_owners o
JOIN contracts c ON c.account_id = o.account_id AND c.workspace_id = $1
JOIN accounts a ON a.id = c.account_id AND a.workspace_id = $1
WHERE o.workspace_id = $1 AND o.user_id = $2 AND o.department = 'csm'
  AND c.ends_on BETWEEN $3 AND $4
ORDER BY c.ends_on, c.id
LIMIT 50
"""


CONTRACTS = "SELECT id FROM contracts WHERE workspace_id = $1"
CHANGE_ONE = "UPDATE contracts SET arr = arr + 1 WHERE id = $1"
AGE_FACTS = "UPDATE renewal_facts_state SET as_of = as_of - 1 WHERE workspace_id = $1"
NEW_DAYS = 5


# --- seeding -----------------------------------------------------------------------------


async def seed(url: str, accounts: int) -> tuple[uuid.UUID, str]:
    """A workspace, a forecast:read key, and the accounts with their facts, by COPY."""
    engine = create_engine(Settings(database_url=url))
    try:
        await upgrade(engine)
        async with create_sessionmaker(engine)() as session, session.begin():
            workspace = await workspaces_service.create_workspace(session, name="Bench")
            _, key = await workspaces_service.create_api_key(
                session, workspace_id=workspace.id, name="bench", scopes=["forecast:read"]
            )
            workspace_id = workspace.id
    finally:
        await engine.dispose()
    now = datetime.now(UTC)
    today = now.date()
    owners = max(1, accounts // 100)
    account_ids = [uuid7() for _ in range(accounts)]
    contract_ids = [uuid7() for _ in range(accounts)]
    connection = await asyncpg.connect(throwaway.asyncpg_dsn(url))
    try:
        await connection.copy_records_to_table(
            "accounts",
            columns=[
                "id",
                "workspace_id",
                "name",
                "segment",
                "arr",
                "currency",
                "stage",
                "stage_entered_at",
                "created_at",
                "updated_at",
            ],
            records=(
                (
                    account_id,
                    workspace_id,
                    f"Account {i:07d}",
                    SEGMENTS[i % 3],
                    0,
                    "USD",
                    STAGES[i % 4],
                    now - timedelta(days=i % 200),
                    now,
                    now,
                )
                for i, account_id in enumerate(account_ids)
            ),
        )
        await connection.copy_records_to_table(
            "account_owners",
            columns=["id", "workspace_id", "account_id", "department", "user_id", "user_name"],
            records=(
                (uuid7(), workspace_id, account_id, "csm", f"csm-{i % owners}", f"CSM {i % owners}")
                for i, account_id in enumerate(account_ids)
            ),
        )
        await connection.copy_records_to_table(
            "contracts",
            columns=[
                "id",
                "workspace_id",
                "account_id",
                "starts_on",
                "ends_on",
                "arr",
                "currency",
                "auto_renew",
                "status",
                "created_at",
                "updated_at",
            ],
            records=(
                (
                    contract_id,
                    workspace_id,
                    account_ids[i],
                    today + timedelta(days=i % 365) - timedelta(days=364),
                    today + timedelta(days=i % 365),
                    100_000 + (i * 7919) % 10_000_000,  # cents
                    "USD",
                    i % 3 == 0,
                    "active",
                    now,
                    now,
                )
                for i, contract_id in enumerate(contract_ids)
            ),
        )
        await connection.copy_records_to_table(
            "tasks",
            columns=[
                "id",
                "workspace_id",
                "account_id",
                "kind",
                "title",
                "department",
                "status",
                "priority",
                "due_on",
                "checklist",
                "context",
                "created_at",
                "updated_at",
            ],
            records=(
                (
                    uuid7(),
                    workspace_id,
                    account_ids[i],
                    "escalation" if i % 50 == 0 else "handoff",
                    "Follow up",
                    "csm",
                    "open",
                    "normal",
                    today + timedelta(days=(i % 3 - 1) * 5),  # a third overdue
                    "[]",
                    "{}",
                    now,
                    now,
                )
                for i in range(0, accounts, 5)
            ),
        )
        await connection.copy_records_to_table(
            "opportunities",
            columns=[
                "id",
                "workspace_id",
                "account_id",
                "source",
                "external_id",
                "currency",
                "kind",
                "status",
                "contract_id",
                "created_at",
                "updated_at",
            ],
            records=(
                (
                    uuid7(),
                    workspace_id,
                    account_ids[i],
                    "bench",
                    f"renewal-{i}",
                    "USD",
                    "renewal",
                    ("open", "won", "lost")[i % 3],
                    contract_ids[i],
                    now,
                    now,
                )
                for i in range(0, accounts, 10)
            ),
        )
        plans = [(uuid7(), account_ids[i]) for i in range(3, accounts, 10)]
        await connection.copy_records_to_table(
            "success_plans",
            columns=[
                "id",
                "workspace_id",
                "account_id",
                "contract_year",
                "starts_on",
                "ends_on",
                "timeline",
                "touchpoints",
                "created_at",
                "updated_at",
            ],
            records=(
                (
                    plan_id,
                    workspace_id,
                    account_id,
                    1,
                    today - timedelta(days=120),
                    today + timedelta(days=244),
                    "[]",
                    "[]",
                    now,
                    now,
                )
                for plan_id, account_id in plans
            ),
        )
        await connection.copy_records_to_table(
            "plan_outcomes",
            columns=[
                "id",
                "workspace_id",
                "plan_id",
                "position",
                "kpi",
                "baseline",
                "target",
                "target_quarter",
                "status",
                "created_at",
                "updated_at",
            ],
            records=(
                (
                    uuid7(),
                    workspace_id,
                    plan_id,
                    position,
                    f"KPI {position}",
                    0,
                    1_000_000,
                    position + 1,
                    ("in_progress", "achieved", "missed")[n % 3],
                    now,
                    now,
                )
                for n, (plan_id, _) in enumerate(plans)
                for position in (1, 2)
            ),
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return workspace_id, key


# --- the service's own statements ---------------------------------------------------------


async def service_statement(
    url: str, workspace_id: uuid.UUID, call: Callable[..., Awaitable[Any]], **params: Any
) -> tuple[str, tuple[Any, ...]]:
    """The largest SQL query (the forecast itself) that a service call runs, with its
    parameters, as the driver receives them: timing it alone separates the database's share
    of a request from everything around it."""
    engine = create_engine(Settings(database_url=url))
    captured: list[tuple[str, tuple[Any, ...]]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        # Reads only: the first call may also bring the renewal facts up to date.
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, tuple(parameters)))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await call(session, workspace_id=workspace_id, **params)
    finally:
        await engine.dispose()
    return max(captured, key=lambda item: len(item[0]))


# --- measuring ---------------------------------------------------------------------------


async def interleaved(
    calls: dict[str, Callable[[], Awaitable[Any]]], warmup: int, requests: int
) -> dict[str, list[float]]:
    """Latencies (ms) of several variants taking turns, one call each per round, after
    `warmup` discarded calls of each: this machine's speed drifts by tens of percent over
    minutes, and a ratio of variants measured minutes apart would measure the drift."""
    for call in calls.values():
        for _ in range(warmup):
            await call()
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(requests):
        for name, call in calls.items():
            began = time.perf_counter()
            await call()
            latencies[name].append((time.perf_counter() - began) * 1000)
    return latencies


async def new_days(
    connection: asyncpg.Connection, workspace_id: uuid.UUID, grouped: Callable[[], Awaitable[Any]]
) -> list[float]:
    """Latencies (ms) of a day's first forecast: the facts are of yesterday, so every
    contract's are computed again (and the few that differ rewritten)."""
    latencies = []
    for _ in range(NEW_DAYS):
        await connection.execute(AGE_FACTS, workspace_id)
        began = time.perf_counter()
        await grouped()
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def percentiles(latencies: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


async def bench(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    began = time.perf_counter()
    workspace_id, key = await seed(url, args.accounts)
    print(f"seeded {args.accounts} accounts in {time.perf_counter() - began:.1f}s", flush=True)
    today = date.today()
    window = (today, today + timedelta(days=365))
    owner = "csm-7"
    results: dict[str, list[float]] = {}
    # The first request computes every contract's renewal facts: minutes at 1M.
    async with served(url) as base_url, httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        headers = {"Authorization": f"Bearer {key}"}
        params = {"from": window[0].isoformat(), "to": window[1].isoformat()}

        async def grouped() -> None:
            response = await client.get(
                "/v1/forecasts/renewals",
                params={**params, "group_by": "quarter,owner,category"},
                headers=headers,
            )
            assert response.status_code == 200, response.text[:500]

        async def drill_down() -> None:
            response = await client.get(
                "/v1/forecasts/renewals/accounts",
                params={**params, "owner": owner, "limit": 50},
                headers=headers,
            )
            assert response.status_code == 200, response.text[:500]

        began = time.perf_counter()
        first = await client.get(
            "/v1/forecasts/renewals",
            params={**params, "group_by": "quarter,owner,category"},
            headers=headers,
        )
        took = (time.perf_counter() - began) * 1000
        assert first.status_code == 200, first.text[:500]
        # What autovacuum does in the minutes after a load: the first computation left every
        # account's mark dead in renewal_facts_stale, and statistics to update.
        vacuum = await asyncpg.connect(throwaway.asyncpg_dsn(url))
        try:
            await vacuum.execute("VACUUM ANALYZE")
        finally:
            await vacuum.close()
        body = first.json()
        print(
            f"grouped forecast: {len(body['rows'])} rows, {body['totals']['count']} renewals, "
            f"{len(first.content) / 1024:.0f} KiB of JSON; the first one, which computed the "
            f"renewal facts of every contract (and analyzed them), took {took:.0f} ms",
            flush=True,
        )

        grouped_sql = await service_statement(
            url,
            workspace_id,
            forecasts_service.renewal_forecast,
            starts_on=window[0],
            ends_on=window[1],
            group_by=["quarter,owner,category"],
        )
        drill_sql = await service_statement(
            url,
            workspace_id,
            forecasts_service.renewal_accounts,
            starts_on=window[0],
            ends_on=window[1],
            owner=owner,
            limit=50,
        )
        # The plans and memory the service gets: custom plans and WHOLE_WORKSPACE_WORK_MEM
        # for the grouped forecast (and, alike, for the raw queries), PostgreSQL's choice for
        # the drill-down (see plan_for_these_values).
        connection = await asyncpg.connect(
            throwaway.asyncpg_dsn(url),
            server_settings={
                "plan_cache_mode": "force_custom_plan",
                "work_mem": WHOLE_WORKSPACE_WORK_MEM,
            },
        )
        as_service_plans = await asyncpg.connect(throwaway.asyncpg_dsn(url))
        drill_statement = await as_service_plans.prepare(drill_sql[0])
        contracts = [row[0] for row in await connection.fetch(CONTRACTS, workspace_id)]

        async def grouped_after_a_change() -> None:
            # One contract's ARR changes (its account is marked stale), then the forecast,
            # which computes that account's facts again first.
            await connection.execute(CHANGE_ONE, random.choice(contracts))
            await grouped()

        try:
            raw_rows = await connection.fetch(RAW_GROUPED, workspace_id, *window)
            print(f"raw grouped: {len(raw_rows)} rows", flush=True)
            results |= await interleaved(
                {
                    "http grouped": grouped,
                    "http +1 change": grouped_after_a_change,
                    "sql grouped": lambda: connection.fetch(grouped_sql[0], *grouped_sql[1]),
                    "raw grouped": lambda: connection.fetch(RAW_GROUPED, workspace_id, *window),
                },
                args.warmup,
                args.requests,
            )
            results["new day"] = await new_days(connection, workspace_id, grouped)
            results |= await interleaved(
                {
                    "http drill-down": drill_down,
                    "sql drill-down": lambda: drill_statement.fetch(*drill_sql[1]),
                    "raw drill-down": lambda: connection.fetch(
                        RAW_DRILL_DOWN, workspace_id, owner, *window
                    ),
                },
                args.warmup,
                args.requests * 4,
            )
        finally:
            await connection.close()
            await as_service_plans.close()
    return results


def report(results: dict[str, list[float]], args: argparse.Namespace) -> None:
    print()
    print(f"{'variant':<16} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}")
    for name, latencies in results.items():
        p50, p95, p99 = percentiles(latencies)
        print(f"{name:<16} {len(latencies):>5} {p50:>9.2f} {p95:>9.2f} {p99:>9.2f}")
    http, raw = percentiles(results["http grouped"]), percentiles(results["raw grouped"])
    drill = percentiles(results["http drill-down"])
    print()
    sql, sql_drill = percentiles(results["sql grouped"]), percentiles(results["sql drill-down"])
    print(
        f"ratio http/raw grouped: p50 x{http[0] / raw[0]:.2f}, p95 x{http[1] / raw[1]:.2f} "
        f"(aim p50 <= 1.5); http grouped p99 {http[2]:.1f} ms (aim <= 150); "
        f"drill-down p99 {drill[2]:.1f} ms (aim <= 10)"
    )
    print(
        f"where it goes (p50): the service's grouped statement alone x{sql[0] / raw[0]:.2f} the "
        f"raw floor (the signals), the rest of the request x{http[0] / sql[0]:.2f} the statement; "
        f"drill-down statement {sql_drill[0]:.1f} ms of {drill[0]:.1f} ms"
    )
    changed, new_day = percentiles(results["http +1 change"]), percentiles(results["new day"])
    print(
        f"after a change: p50 x{changed[0] / raw[0]:.2f} the raw floor; a new day's first "
        f"forecast (every contract's facts again): p50 {new_day[0]:.0f} ms, "
        f"x{new_day[0] / http[0]:.1f} a forecast"
    )
    if args.json:
        print(json.dumps({name: percentiles(values) for name, values in results.items()}))


async def main(args: argparse.Namespace) -> None:
    url = await throwaway.create_database(args.postgres_url, "qb_bench")
    name = make_url(url).database
    print(f"created database {name}", flush=True)
    try:
        if args.random_page_cost is not None:
            # What a DBA would set for the service's database on SSDs or a cached working
            # set; every connection opened from here on plans with it.
            admin = await asyncpg.connect(throwaway.asyncpg_dsn(args.postgres_url))
            try:
                await admin.execute(
                    f'ALTER DATABASE "{name}" SET random_page_cost = {args.random_page_cost:g}'
                )
            finally:
                await admin.close()
            print(f"random_page_cost = {args.random_page_cost:g} for {name}", flush=True)
        results = await bench(url, args)
    finally:
        await throwaway.drop_database(args.postgres_url, url)
        print(f"dropped database {name}", flush=True)
    report(results, args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Renewal forecast latency: HTTP vs raw SQL.")
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts (100000)")
    parser.add_argument("--requests", type=int, default=50, help="measured requests (50)")
    parser.add_argument("--warmup", type=int, default=5, help="discarded requests (5)")
    parser.add_argument("--json", action="store_true", help="also print percentiles as JSON")
    parser.add_argument(
        "--random-page-cost",
        type=float,
        default=None,
        help="set random_page_cost for the throwaway database (PostgreSQL's default is 4; "
        "1.1 is the usual setting for SSDs), to see what the planner's choice costs",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("QB_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="admin URL of the PostgreSQL server (a database is created and dropped)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parse_args()))
