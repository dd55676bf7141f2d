"""Proof under faults, bigger and by hand: SIGKILL `quarterback serve` in a delivery burst.

What it does (the same harness as tests/test_faults.py, at a size you choose):

1. creates a throwaway PostgreSQL database ``qb_faults_<hex>``, migrates it, starts
   ``quarterback serve`` on a free port (no timers or outbox delivery in it), and creates a
   workspace, a ``standard`` webhook source and a task.raised subscription through the API;
2. sends ``--accounts`` x 2 signed Standard Webhooks deliveries (per account an
   ``opportunity_created`` and a ``closed_won``, each a distinct webhook-id) from
   ``--senders`` concurrent httpx senders, and SIGKILLs the server's process group the
   moment the ``--kill-after``-th answer arrives;
3. restarts the server on the same port and checks that every delivery answered 2xx is
   stored exactly once, that nothing refused or never sent is stored, and that the stored
   events derived one transition and one handoff task (and one outbox message) each;
4. redelivers, as a CRM does, everything not answered 2xx plus every ``--redeliver-every``-th
   delivery that was, and checks the final picture: every change stored once and applied,
   two handoffs per account, and ``duplicates`` counting exactly the repeats that reached a
   commit.

It prints the ledger (sent, 2xx, refused, connection errors, stored after the crash,
stored after redelivery, duplicates, handoffs) and every problem found; the exit code is 1
when there is one. The database is dropped at the end, on error and on Ctrl-C as well.

``--out-of-order`` redelivers in reverse order (a deal's closed_won before its
opportunity_created, as CRMs retrying on their own schedules may): see the xfail test
``test_a_change_redelivered_before_the_one_it_follows_still_applies``.

Run from the project root::

    .venv/bin/python bench/faults.py
    .venv/bin/python bench/faults.py --accounts 2000 --senders 32 --kill-after 1500
    .venv/bin/python bench/faults.py --postgres-url postgresql://postgres@db/postgres

The admin URL comes from ``--postgres-url``, else ``QB_BENCH_POSTGRES_URL``, else
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness lives in tests/

from service.config import Settings
from service.db import throwaway
from service.db.engine import create_engine, create_sessionmaker
from service.db.migrate import upgrade
from tests import factories
from tests import faults as kit

DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
QUIET = {"QB_SCHEDULER_ENABLED": "false", "QB_OUTBOUND_ALLOW_PRIVATE_NETWORKS": "true"}


async def run(url: str, args: argparse.Namespace) -> list[str]:
    engine = create_engine(Settings(database_url=url))
    port = kit.free_port()
    server: kit.Process | None = None
    try:
        await upgrade(engine)
        ws = await factories.create_workspace(create_sessionmaker(engine), name="Faults bench")
        server = await kit.start_server(url, port, **QUIET)
        api = f"http://127.0.0.1:{port}"
        source = await kit.post(api, ws, "/v1/webhook-sources", {"kind": "standard", "name": "CRM"})
        # Counted, not delivered: one task.raised outbox message per task raised.
        unused = {"url": "http://127.0.0.1:9/unused", "events": ["task.raised"]}
        await kit.post(api, ws, "/v1/subscriptions", unused)
        deliveries = kit.deal_deliveries(args.accounts, tag="bench")
        began = time.perf_counter()
        answers = await kit.send(
            source["ingestion_url"],
            source["secret"],
            deliveries,
            senders=args.senders,
            after_answers=(args.kill_after, server.kill),
        )
        burst = time.perf_counter() - began
        if server.alive:
            raise SystemExit(f"only {kit.tally(answers)['2xx']} answers: raise --accounts")
        server.close()
        began = time.perf_counter()
        server = await kit.start_server(url, port, **QUIET)
        restart = time.perf_counter() - began
        before = await kit.picture(engine, ws.id, source["namespace"])
        crash_problems = kit.after_crash_problems(deliveries, answers, before)

        again = kit.to_redeliver(deliveries, answers, args.redeliver_every)
        if args.out_of_order:
            again.reverse()
        began = time.perf_counter()
        redelivered = await kit.send(
            source["ingestion_url"],
            source["secret"],
            again,
            senders=args.senders,
            retry_refusals=True,
        )
        redelivery = time.perf_counter() - began
        after = await kit.picture(engine, ws.id, source["namespace"])
        problems = crash_problems + kit.final_problems(deliveries, before, redelivered, after)
        ledger = kit.ledger(deliveries, answers, before, redelivered, after, problems)
        print(
            f"{args.accounts} accounts, {args.senders} senders, SIGKILL at answer "
            f"{args.kill_after}; burst {burst:.1f}s, restart {restart:.1f}s, "
            f"redelivery {redelivery:.1f}s"
        )
        print("\n".join(ledger.lines()))
        return problems
    finally:
        if server is not None:
            server.close()
        await engine.dispose()


async def main(args: argparse.Namespace) -> int:
    url = await throwaway.create_database(args.postgres_url, "qb_faults")
    try:
        problems = await run(url, args)
    finally:
        await throwaway.drop_database(args.postgres_url, url)
    for problem in problems[:50]:
        print(f"  problem: {problem}")
    if len(problems) > 50:
        print(f"  ... and {len(problems) - 50} more")
    print("ledger: " + ("balanced" if not problems else "DOES NOT BALANCE"))
    return 1 if problems else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres-url", default=os.environ.get("QB_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)
    )
    parser.add_argument("--accounts", type=int, default=1000, help="two deliveries each")
    parser.add_argument("--senders", type=int, default=16, help="concurrent senders")
    parser.add_argument("--kill-after", type=int, default=700, help="answers before SIGKILL")
    parser.add_argument("--redeliver-every", type=int, default=4, help="n-th 2xx sent again")
    parser.add_argument("--out-of-order", action="store_true", help="redeliver in reverse")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
