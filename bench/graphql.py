"""Benchmark of GraphQL's nested account page on PostgreSQL, beside the REST account list.

What it measures
----------------
The page a frontend's account list needs, 100 accounts at a time, with each account's
owners, quarterback, open tasks (and the previous quarterback of each handoff), success plan
outcomes with their latest measurement, and last five stage transitions (the query of
tests/test_graphql.py's N+1 test), sent as ``POST /graphql`` through httpx to the real app
served by uvicorn on loopback. In the same run and the same way:

* ``rest list``: ``GET /v1/accounts?limit=100``, the same 100 accounts with their owners and
  external ids (what REST returns in one request; the nested parts would take more requests);
* ``graphql flat``: the same page asking only for what the REST list returns, to separate
  GraphQL's own cost from the cost of the nested relations.

For each: p50 and p95 latency of one request (sequential requests after a warm-up), SQL
statements per request, counted by a ``before_cursor_execute`` listener on the app's engine
(the app and uvicorn run in this process; the client shares their event loop, in every
variant alike), the p50 of the summed wall time from sending each statement to its result
(an upper bound of the database's share: other coroutines may hold the loop then), and the
objects and fields of the JSON answer with the p50 per object and per field: GraphQL
completes them one at a time, so they bound what a page of this shape can cost.
Aim (issue 5): at most one statement per nesting level, and the nested GraphQL page's p50 at
most twice the REST list's.

The script creates a throwaway database ``qb_bench_<hex>`` from the admin URL, migrates it,
seeds one workspace with N accounts through the service functions (owners in sales and
professional services; every account moved QUALIFY → ACQUIRE → IMPLEMENT, which leaves two
open handoffs and three transitions; a year-1 success plan with two outcomes and one
measurement), and drops the database at the end, on error and on Ctrl-C as well.

Run from the project root::

    .venv/bin/python bench/graphql.py
    .venv/bin/python bench/graphql.py --accounts 2000 --requests 100
    .venv/bin/python bench/graphql.py --profile     # pyinstrument of the nested page

The admin URL comes from ``--postgres-url``, else ``QB_BENCH_POSTGRES_URL``, else
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/graphql.py`, this folder comes first on sys.path and this file's name
# would shadow the `graphql` package (GraphQL-core) that Strawberry imports: drop the folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import AsyncIterator, Callable  # noqa: E402
from contextlib import asynccontextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import date  # noqa: E402
from decimal import Decimal  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import event, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker  # noqa: E402

from service.accounts import service as accounts_service  # noqa: E402
from service.app import create_app  # noqa: E402
from service.config import Settings  # noqa: E402
from service.db import throwaway  # noqa: E402
from service.db.engine import create_engine, create_sessionmaker  # noqa: E402
from service.db.migrate import upgrade  # noqa: E402
from service.lifecycle import transitions  # noqa: E402
from service.plans import service as plans_service  # noqa: E402
from service.workspaces import service as workspaces_service  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
PAGE = 100
SEED_BATCH = 100
SEED_PARALLEL = 4

NESTED = """
query Nested($first: Int!) {
  accounts(first: $first) {
    nodes {
      name
      owners { userId }
      quarterback { department { name } owner { userId } }
      tasks(status: [OPEN, IN_PROGRESS]) { title previousQuarterback { owner { userId } } }
      successPlan(asOf: "2027-03-01") { health outcomes { kpi health latestMeasurement { value } } }
      transitions(last: 5) { toStage }
    }
  }
}
"""
FLAT = """
query Flat($first: Int!) {
  accounts(first: $first) {
    nodes { id name domain segment arr currency stage { key } owners { userId name } }
  }
}
"""
# The nested page's levels below `accounts`: owners, quarterback (stage, department, owner),
# tasks (+ previous quarterback), plan, outcomes, measurements, transitions.


@dataclass
class Result:
    name: str
    latencies: list[float]
    statements: list[int]
    # From sending each statement to its result, summed per request. The app shares one event
    # loop with the client, so this includes time other coroutines held the loop meanwhile:
    # an upper bound of the database's share, not its execution time.
    sql_seconds: list[float]
    shape: tuple[int, int] = (0, 0)  # objects and fields of one answer

    def percentile_ms(self, percent: int) -> float:
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))
        return ordered[index] * 1000

    @property
    def statements_per_request(self) -> float:
        return statistics.mean(self.statements)

    def per_object_us(self) -> tuple[float, float]:
        """p50 per object and per field of the answer, in µs."""
        objects, fields = self.shape
        p50_us = self.percentile_ms(50) * 1000
        return p50_us / max(objects, 1), p50_us / max(fields, 1)

    @property
    def sql_ms_p50(self) -> float:
        return statistics.median(self.sql_seconds) * 1000


async def seed(sessionmaker: async_sessionmaker[AsyncSession], accounts: int) -> str:
    """One workspace with `accounts` accounts in IMPLEMENT; returns a read key."""
    async with sessionmaker() as session, session.begin():
        workspace = await workspaces_service.create_workspace(session, name="Bench Workspace")
        _, api_key = await workspaces_service.create_api_key(
            session, workspace_id=workspace.id, name="bench", scopes=["read"]
        )
    workspace_id = workspace.id
    gate = asyncio.Semaphore(SEED_PARALLEL)

    async def batch(first: int, last: int) -> None:
        async with gate, sessionmaker() as session, session.begin():
            for index in range(first, last):
                await _seed_account(session, workspace_id, index)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for first in range(0, accounts, SEED_BATCH):
            group.create_task(batch(first, min(first + SEED_BATCH, accounts)))
    print(f"seeded {accounts} accounts in {time.perf_counter() - started:.1f} s", flush=True)
    return api_key


async def _seed_account(session: AsyncSession, workspace_id: uuid.UUID, index: int) -> None:
    view = await accounts_service.create_account(
        session,
        workspace_id=workspace_id,
        name=f"Bench Account {index:05d}",
        domain=f"bench-{index:05d}.example.com",
        arr=Decimal(1000 + index % 97 * 250),
        owners={
            "sales": {"user_id": f"s{index % 25}", "name": f"Seller {index % 25}"},
            "professional_services": {"user_id": f"p{index % 10}", "name": None},
        },
        actor="bench",
    )
    account_id = view.account.id
    for stage in ("ACQUIRE", "IMPLEMENT"):
        await transitions.transition_account(
            session, workspace_id=workspace_id, account_id=account_id, to_stage=stage
        )
    plan = await plans_service.put_plan(
        session,
        workspace_id=workspace_id,
        account_id=account_id,
        starts_on=date(2027, 1, 1),
        outcomes=[
            {"kpi": "Seats", "baseline": "0", "target": "100", "target_quarter": 2},
            {"kpi": "NPS", "baseline": "10", "target": "40", "target_quarter": 4},
        ],
    )
    await plans_service.record_measurement(
        session,
        workspace_id=workspace_id,
        account_id=account_id,
        outcome_id=plan.outcomes[0].outcome.id,
        value=Decimal(index % 100),
        measured_on=date(2027, 2, 1),
    )


@asynccontextmanager
async def served(url: str, engine: AsyncEngine) -> AsyncIterator[str]:
    """The app on `engine`, served by uvicorn on a free loopback port, in this process."""
    settings = Settings(database_url=url, scheduler_enabled=False)
    # IPPROTO_TCP said outright: asyncio sets TCP_NODELAY only on sockets that say it, and
    # without it Nagle's algorithm and delayed ACKs add ~40 ms to every loopback response.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        config = uvicorn.Config(
            create_app(settings, engine=engine), log_level="warning", access_log=False
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task


async def measure(
    name: str,
    engine: AsyncEngine,
    send: Callable[[], Any],
    requests: int,
    warmup: int,
) -> Result:
    executed, in_sql, sent_at = 0, 0.0, 0.0

    def before(*_args: Any) -> None:
        nonlocal executed, sent_at
        executed += 1
        sent_at = time.perf_counter()

    def after(*_args: Any) -> None:
        nonlocal in_sql
        in_sql += time.perf_counter() - sent_at

    for _ in range(warmup):
        await send()
    result = Result(name, [], [], [], shape=json_shape(await send()))
    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    try:
        for _ in range(requests):
            executed, in_sql = 0, 0.0
            started = time.perf_counter()
            await send()
            result.latencies.append(time.perf_counter() - started)
            result.statements.append(executed)
            result.sql_seconds.append(in_sql)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
        event.remove(engine.sync_engine, "after_cursor_execute", after)
    return result


def json_shape(document: Any) -> tuple[int, int]:
    """How many objects, and fields in them, a JSON document has."""
    objects = fields = 0
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            objects += 1
            fields += len(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return objects, fields


def graphql_request(client: httpx.AsyncClient, key: str, query: str) -> Callable[[], Any]:
    headers = {"Authorization": f"Bearer {key}"}
    body = {"query": query, "variables": {"first": PAGE}}

    async def send() -> Any:
        response = await client.post("/graphql", json=body, headers=headers)
        payload = response.json()
        assert response.status_code == 200 and "errors" not in payload, payload
        assert len(payload["data"]["accounts"]["nodes"]) == PAGE
        return payload["data"]

    return send


def rest_request(client: httpx.AsyncClient, key: str) -> Callable[[], Any]:
    headers = {"Authorization": f"Bearer {key}"}

    async def send() -> Any:
        response = await client.get("/v1/accounts", params={"limit": PAGE}, headers=headers)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert len(payload["items"]) == PAGE
        return payload

    return send


async def bench(url: str, args: argparse.Namespace) -> list[Result]:
    engine = create_engine(Settings(database_url=url))
    try:
        await upgrade(engine)
        key = await seed(create_sessionmaker(engine), args.accounts)
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
        async with (
            served(url, engine) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        ):
            variants = {
                "graphql nested": graphql_request(client, key, NESTED),
                "rest list": rest_request(client, key),
                "graphql flat": graphql_request(client, key, FLAT),
            }
            if args.profile:
                await profile(variants["graphql nested"], args.requests)
            results = []
            for name, send in variants.items():
                results.append(await measure(name, engine, send, args.requests, args.warmup))
            return results
    finally:
        await engine.dispose()


async def profile(send: Callable[[], Any], requests: int) -> None:
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

    profiler = Profiler(async_mode="disabled")  # sample the server too, not the client task
    with profiler:
        for _ in range(requests):
            await send()
    print(profiler.output(ConsoleRenderer(flat=True, show_all=True))[:6000])


def report(results: list[Result]) -> None:
    print(
        f"{'variant':<16}{'p50 ms':>9}{'p95 ms':>9}{'SQL wall ms':>12}{'statements/request':>20}"
        f"{'objects':>9}{'fields':>8}{'µs/object':>11}{'µs/field':>10}"
    )
    for result in results:
        per_object, per_field = result.per_object_us()
        print(
            f"{result.name:<16}{result.percentile_ms(50):>9.2f}{result.percentile_ms(95):>9.2f}"
            f"{result.sql_ms_p50:>12.2f}{result.statements_per_request:>20.1f}"
            f"{result.shape[0]:>9}{result.shape[1]:>8}{per_object:>11.1f}{per_field:>10.1f}"
        )
    by_name = {result.name: result for result in results}
    nested, rest = by_name["graphql nested"], by_name["rest list"]
    ratio = nested.percentile_ms(50) / rest.percentile_ms(50)
    print(f"ratio p50 graphql nested / rest list: {ratio:.2f} (aim ≤ 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="pyinstrument the nested page")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("QB_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="admin URL; a throwaway database is created next to it",
    )
    args = parser.parse_args()

    async def run() -> list[Result]:
        url = await throwaway.create_database(args.postgres_url, "qb_bench")
        try:
            return await bench(url, args)
        finally:
            await throwaway.drop_database(args.postgres_url, url)

    report(asyncio.run(run()))


if __name__ == "__main__":
    main()
