"""CPU per request spent before a route's own work: matching, middleware, authentication.

FastAPI tries the included routers in order, so a route near the end of the list pays for the
ones before it; service/kit/routing.py lets a router rule itself out by path. This script
sends requests that stop at authentication (no key: 401, or 400 for an empty GraphQL POST)
to routes early and late in the list, in process through ASGI on an embedded SQLite
database, and prints the CPU microseconds per request of each (client side included, the
same for every route). Compare the late routes with the early one, or two checkouts run
alternately::

    .venv/bin/python bench/routing.py
    .venv/bin/python bench/routing.py --requests 5000
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/routing.py`, this folder comes first on sys.path, where
# bench/graphql.py would shadow GraphQL-core, which the app imports: put the folder last.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402

from service.app import create_app  # noqa: E402
from service.config import Settings  # noqa: E402

# (method, path): the first router included, two of the last, and GraphQL after them all.
ROUTES = (
    ("GET", "/v1/workspace"),
    ("GET", "/v1/forecasts/renewals"),
    ("GET", "/v1/subscriptions"),
    ("POST", "/graphql"),
)


async def measure(requests: int, warmup: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{folder}/bench.db",
            scheduler_enabled=False,
            log_level="warning",
            _env_file=None,
        )
        app = create_app(settings)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for method, path in ROUTES:
                    for _ in range(warmup):
                        await client.request(method, path)
                    began = time.process_time()
                    for _ in range(requests):
                        answer = await client.request(method, path)
                    cpu_us = (time.process_time() - began) / requests * 1e6
                    status = answer.status_code
                    print(f"{method:4} {path:26} {status}  {cpu_us:6.0f} us CPU a request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per route (2000)")
    parser.add_argument("--warmup", type=int, default=200, help="discarded, per route (200)")
    args = parser.parse_args()
    asyncio.run(measure(args.requests, args.warmup))


if __name__ == "__main__":
    main()
