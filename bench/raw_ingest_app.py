"""The ceiling for bench/ingest.py: a bare signed three-insert webhook endpoint on raw asyncpg.

``POST /ingest`` verifies a Standard Webhooks v1 signature by hand (HMAC-SHA256 of
``{webhook-id}.{webhook-timestamp}.{body}`` with the base64-decoded ``whsec_`` key, 300 s
tolerance either way, constant-time compare), refuses a bad one with 401 before touching the
database, then runs one transaction on an asyncpg pool of 4 connections with three inserts:
the event (``ON CONFLICT DO NOTHING RETURNING``, keyed on ``webhook-id``), a stage transition
and a handoff task. A repeated ``webhook-id`` answers 200 and inserts nothing more. It is
the least an ingest endpoint can do on this machine; nothing else (no framework, no ORM, no
JSON schema) stands between the socket and the driver.

``POST /ingest-deep`` does the same with Quarterback's round-trip count: after the event
insert, seven more statements (lookups, inserts of transitions and tasks, an update of the
event row) in the one transaction, as many as the event path runs for an
``opportunity_created`` of a new account. What separates it from ``/ingest`` is the round
trips alone; what separates Quarterback from it is everything else.

It creates its three tables (``bench_raw_events``, ``bench_raw_transitions``,
``bench_raw_tasks``) in the database it is given if they are missing. bench/ingest.py starts
it as a subprocess::

    BENCH_RAW_DSN=postgresql://postgres@127.0.0.1:5432/qb_bench_x \\
    BENCH_RAW_SECRET=whsec_... .venv/bin/python bench/raw_ingest_app.py --port 8123
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator

import asyncpg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

POOL_SIZE = 4  # the pool that beat 16 and 32 here (perf-anchors 2.2, G-I8)
TOLERANCE_SECONDS = 300

SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_raw_events (
    event_id text PRIMARY KEY,
    source text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    payload jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS bench_raw_transitions (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL REFERENCES bench_raw_events (event_id),
    account_id text NOT NULL,
    from_stage text,
    to_stage text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bench_raw_transitions_account ON bench_raw_transitions (account_id);
CREATE TABLE IF NOT EXISTS bench_raw_tasks (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL REFERENCES bench_raw_events (event_id),
    account_id text NOT NULL,
    kind text NOT NULL,
    status text NOT NULL DEFAULT 'open',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bench_raw_tasks_account ON bench_raw_tasks (account_id);
"""
INSERT_EVENT = """
INSERT INTO bench_raw_events (event_id, source, payload) VALUES ($1, 'standard', $2::jsonb)
ON CONFLICT DO NOTHING RETURNING event_id
"""
INSERT_TRANSITION = """
INSERT INTO bench_raw_transitions (event_id, account_id, from_stage, to_stage)
VALUES ($1, $2, NULL, 'QUALIFY')
"""
INSERT_TASK = """
INSERT INTO bench_raw_tasks (event_id, account_id, kind) VALUES ($1, $2, 'handoff:QUALIFY')
"""

# ``POST /ingest-deep``: the same event, in as many round trips as Quarterback's event path
# takes for it (BEGIN, 8 statements, COMMIT: bench/ingest_cpu.py counts them), so the report
# can tell the cost of the round trips from the cost of everything around them. After the
# event insert, in the path's order: the account lookup, the new account, the opportunity,
# the transition's locked read, the handoff task, the move with its history row, and the
# event's decision.
DEEP_STEPS = (
    ("fetch", "SELECT event_id FROM bench_raw_events WHERE event_id = $1", "event"),
    ("execute", INSERT_TRANSITION, "both"),
    ("execute", INSERT_TASK, "both"),
    (
        "fetch",
        "SELECT t.id, e.received_at FROM bench_raw_transitions t "
        "JOIN bench_raw_events e USING (event_id) WHERE t.account_id = $1",
        "account",
    ),
    ("execute", INSERT_TASK, "both"),
    ("execute", INSERT_TRANSITION, "both"),
    ("execute", "UPDATE bench_raw_events SET source = source WHERE event_id = $1", "event"),
)


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def _refuse(reason: str) -> Response:
    return JSONResponse({"error": reason}, status_code=401)


def _verified(key: bytes, headers: dict[str, str], body: bytes) -> str | None:
    """Why the Standard Webhooks signature does not hold, or None when it does."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        return "missing Standard Webhooks headers"
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
        return "stale or malformed webhook-timestamp"
    signed = b"%s.%s.%s" % (msg_id.encode(), stamp.encode(), body)
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    matched = False
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        matched |= version == "v1" and hmac.compare_digest(expected, encoded.encode())
    return None if matched else "no matching signature"


def create_app(dsn: str, secret: str) -> Starlette:
    key = _key(secret)
    pool: asyncpg.Pool | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        async with asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE) as created:
            async with created.acquire() as connection:
                await connection.execute(SCHEMA)
            pool = created
            yield

    async def ingest(request: Request) -> Response:
        return await _ingest(request, deep=False)

    async def ingest_deep(request: Request) -> Response:
        return await _ingest(request, deep=True)

    async def _ingest(request: Request, *, deep: bool) -> Response:
        body = await request.body()
        headers = {name: request.headers.get(name, "") for name in _HEADERS}
        reason = _verified(key, headers, body)
        if reason is not None:
            return _refuse(reason)  # before any database work
        try:
            event = json.loads(body)
            account = str(event["account"]["external_id"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "not a lifecycle event"}, status_code=400)
        event_id = headers["webhook-id"]
        assert pool is not None
        async with pool.acquire() as connection, connection.transaction():
            inserted = await connection.fetchval(INSERT_EVENT, event_id, body.decode())
            if inserted is not None and not deep:
                await connection.execute(INSERT_TRANSITION, event_id, account)
                await connection.execute(INSERT_TASK, event_id, account)
            elif inserted is not None:
                for method, sql, arguments in DEEP_STEPS:
                    values = {"event": (event_id,), "account": (account,)}.get(
                        arguments, (event_id, account)
                    )
                    await getattr(connection, method)(sql, *values)
        return JSONResponse({"id": event_id, "duplicate": inserted is None})

    async def ready(_: Request) -> Response:
        return JSONResponse({"ready": pool is not None}, status_code=200 if pool else 503)

    return Starlette(
        routes=[
            Route("/ingest", ingest, methods=["POST"]),
            Route("/ingest-deep", ingest_deep, methods=["POST"]),
            Route("/readyz", ready),
        ],
        lifespan=lifespan,
    )


_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = create_app(os.environ["BENCH_RAW_DSN"], os.environ["BENCH_RAW_SECRET"])
    # The same server stack `quarterback serve` gets: uvicorn, uvloop and httptools when
    # installed, one worker, no access log.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
