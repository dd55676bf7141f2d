"""CPU per webhook delivery, in process: what one event costs us, without HTTP or load noise.

bench/ingest.py measures throughput and latency under load, where this 2-core machine's
drift and the load process blur changes of 10 %. This script measures the other way round:
one process, one delivery at a time through the ASGI app (httpx's ASGITransport), on a
throwaway PostgreSQL database, and prints

* CPU milliseconds per delivery (this process: the app, SQLAlchemy, the driver and the
  client side of ASGI; PostgreSQL's own CPU is not in it), and wall milliseconds;
* the SQL statements one delivery runs (BEGIN and COMMIT not counted);
* what one statement costs this process through an ORM session, a Core connection and the
  bare asyncpg connection under them (``SELECT 1``, CPU microseconds): how much of a
  delivery's CPU running its statements on the driver's own connection could save.

Each delivery is a signed Standard Webhooks ``opportunity_created`` for a new account (the
same bodies as bench/ingest.py's ``qb-standard``), after ``--warmup`` discarded ones; the
measured ones come in ``--rounds`` rounds, and the report gives each round and the median,
so that a change can be compared against another checkout run alternately. It needs the
dev dependencies (``make test`` installs them)::

    .venv/bin/python bench/ingest_cpu.py
    .venv/bin/python bench/ingest_cpu.py --deliveries 2000 --rounds 5
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/ingest_cpu.py`, this folder comes first on sys.path, where
# bench/graphql.py would shadow GraphQL-core, which the app imports: put the folder last.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from ingest import (  # noqa: E402
    DEFAULT_ADMIN_URL,
    create_database,
    drop_database,
    seed,
    standard_delivery,
)
from sqlalchemy import event, literal, select  # noqa: E402

from service.app import create_app  # noqa: E402
from service.config import Settings  # noqa: E402
from service.db.engine import create_engine, create_sessionmaker  # noqa: E402


async def measure(admin_url: str, deliveries: int, rounds: int, warmup: int) -> None:
    url = await create_database(admin_url)
    try:
        seeded = await seed(url)
        engine = create_engine(Settings(database_url=url))
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        app = create_app(Settings(database_url=url, scheduler_enabled=False), engine=engine)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

                async def deliver(tag: int, n: int) -> None:
                    body, headers = standard_delivery(tag, n, seeded.standard_secret)
                    answer = await client.post(seeded.standard_path, content=body, headers=headers)
                    assert answer.status_code == 200, answer.text[:500]

                for n in range(warmup):
                    await deliver(1, n)
                statements.clear()
                await deliver(2, 0)
                per_delivery = len(statements)
                cpu_ms, wall_ms = [], []
                for round_ in range(rounds):
                    cpu, wall = time.process_time(), time.perf_counter()
                    for n in range(deliveries):
                        await deliver(3 + round_, n)
                    cpu_ms.append((time.process_time() - cpu) / deliveries * 1000)
                    wall_ms.append((time.perf_counter() - wall) / deliveries * 1000)
                    print(
                        f"round {round_ + 1}: {cpu_ms[-1]:.2f} ms CPU, {wall_ms[-1]:.2f} ms wall "
                        f"per delivery ({deliveries} deliveries)",
                        flush=True,
                    )
        per_statement = await statement_cost(engine)
        await engine.dispose()
        print(
            f"median: {statistics.median(cpu_ms):.2f} ms CPU, {statistics.median(wall_ms):.2f} "
            f"ms wall per delivery; {per_delivery} SQL statements per delivery "
            "(BEGIN and COMMIT not counted)"
        )
        session_us, core_us, driver_us = per_statement
        saved_ms = (per_delivery + 2) * (session_us - driver_us) / 1000
        print(
            f"one statement's CPU: {session_us:.0f} us through a session, {core_us:.0f} us "
            f"through a Core connection, {driver_us:.0f} us on asyncpg itself; on the driver's "
            f"own connection the {per_delivery} statements plus BEGIN and COMMIT would save "
            f"about {saved_ms:.2f} ms of a delivery's {statistics.median(cpu_ms):.2f} ms"
        )
    finally:
        await drop_database(admin_url, url)


async def statement_cost(engine: Any, repeat: int = 3000) -> tuple[float, float, float]:
    """CPU microseconds of one `SELECT 1`: ORM session, Core connection, asyncpg."""
    statement = select(literal(1))

    async def cpu_us(run: Callable[[], Awaitable[Any]]) -> float:
        for _ in range(200):
            await run()
        began = time.process_time()
        for _ in range(repeat):
            await run()
        return (time.process_time() - began) / repeat * 1e6

    async with create_sessionmaker(engine)() as session:
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        return (
            await cpu_us(lambda: session.execute(statement)),
            await cpu_us(lambda: connection.execute(statement)),
            await cpu_us(lambda: driver.fetch("SELECT 1")),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=500, help="per round (500)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (3)")
    parser.add_argument("--warmup", type=int, default=200, help="discarded deliveries (200)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("QB_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="an admin URL of the PostgreSQL server to create the throwaway database on",
    )
    args = parser.parse_args()
    asyncio.run(measure(args.postgres_url, args.deliveries, args.rounds, args.warmup))


if __name__ == "__main__":
    main()
