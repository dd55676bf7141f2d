"""Benchmark of webhook ingestion on PostgreSQL: `quarterback serve` next to a bare ceiling.

What it measures
----------------
Signed CRM deliveries, each a distinct real change, sent over HTTP from a separate load
process (this file again, in ``--load`` mode, with httpx.AsyncClient) to three targets:

* ``qb-standard``: ``POST /webhooks/{source}`` of a ``standard`` source on
  ``quarterback serve --no-migrate``, each delivery one ``opportunity_created`` event for a
  new account, signed as Standard Webhooks senders sign (``standard.sign``, a fresh
  ``webhook-id`` each);
* ``qb-hubspot``: the same server, a ``hubspot`` source without an API token (no lookups:
  the adapter keys the account on the deal id), each delivery a one-event HubSpot array of
  ``deal.creation`` for a new deal, signed v3 as HubSpot signs (``signed_headers``, against
  ``QB_PUBLIC_URL`` + path);
* ``baseline``: bench/raw_ingest_app.py, bare Starlette on raw asyncpg (pool 4), which
  verifies the Standard Webhooks signature by hand and runs three inserts in one
  transaction. It gets the very bodies and headers ``qb-standard`` gets. It is the
  ceiling: ``ratio`` is Quarterback over it, measured in the same run;
* ``baseline-deep``: the same bare server and deliveries, with as many round trips as
  Quarterback's event path takes for such an event (BEGIN, 8 statements, COMMIT): what the
  round trips alone cost, and so how far running the hot path on the driver's own connection
  could go without also cutting statements.

Variants, each bounded in time (``--seconds``) and count (``--cap``):

* ``warm-up``: discarded, once per target;
* ``closed cN``: N concurrent senders (``--concurrency``, 1, 8 and 64), each sending its
  next delivery when the last is answered, at full speed. Latency is send to answer;
* ``open F``: a fixed arrival rate of F x the target's own ``closed c8`` accepted rate
  (``--rates``, 50 %, 90 % and 120 %), each request started at its scheduled time whatever
  the earlier ones are doing (up to ``--open-connections`` connections), and its latency
  counted from that SCHEDULED time, so time spent waiting behind a slow server or a busy
  client is in it (no coordinated omission). Past capacity the backlog, or the server's
  429/503 shedding, shows here;
* ``bad-sig c8``: 8 senders of deliveries signed with the wrong secret: how fast forgeries
  are refused (the column to read is answered/s; all should be 401).

Printed per variant: accepted (2xx) events/s, answered/s, p50/p99/p99.9 latency, the status
counts (2xx, 4xx other than 429, 429, 503, other 5xx, transport errors and timeouts), how
many 429/503 carried Retry-After, and CPU per wall second (1.00 = one full core) of the
load process, the target server and all of PostgreSQL, read from /proc: on two cores, a
load near 1.00 means the client, not the server, was the limit.

Then Quarterback/baseline ratios, the CPU milliseconds per accepted event of each server
and of PostgreSQL with 8 senders, the issue's aims (as information, with the cores half the
ceiling's rate would take at that CPU per event), and a ledger per variant: sent = 2xx +
refused with a status (no transport errors), and the distinct events stored for the variant
(``lifecycle_events`` of the source, or the baseline's event table) equal the 2xx answers,
with no duplicate rows: nothing lost, nothing doubled, nothing refused yet stored. A ledger
that does not balance makes the exit code 1.

The script creates a throwaway database ``qb_bench_<hex>``, migrates it, creates a
workspace and the two sources through the service functions, starts both servers on free
ports, runs the load process, checks the ledger, and then stops the servers and drops the
database ``WITH (FORCE)``, on error and on Ctrl-C as well.

Run from the project root (under two minutes with the defaults)::

    .venv/bin/python bench/ingest.py
    .venv/bin/python bench/ingest.py --seconds 5 --concurrency 1,8,64 --rates 0.5,0.9,1.2
    .venv/bin/python bench/ingest.py --postgres-url postgresql://postgres@db/postgres

The admin URL comes from ``--postgres-url``, else ``QB_BENCH_POSTGRES_URL``, else
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``. Server, database and load
process share this machine's cores, so the numbers are for comparing the variants of one
run, not machines; the ratio to the baseline is the figure to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import signal
import ssl
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from local_server import free_port, quarterback_argv, running, stop, tail
from sqlalchemy.engine import make_url

from service.config import Settings
from service.db import throwaway
from service.db.engine import create_engine, create_sessionmaker
from service.db.migrate import upgrade
from service.webhooks import sources as sources_service
from service.webhooks.adapters.hubspot import signed_headers
from service.webhooks.adapters.standard import new_secret, sign
from service.workspaces import service as workspaces_service

DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
THIS_FILE = Path(__file__).resolve()
BENCH_DIR = THIS_FILE.parent
HUBSPOT_SECRET = "bench-hubspot-client-secret-0123456789"  # an app's client secret
PORTAL_ID = 62515
APP_ID = 1160452
TARGETS = ("qb-standard", "qb-hubspot", "baseline", "baseline-deep")
STATUS_COLUMNS = ("2xx", "4xx", "429", "503", "5xx", "err")


# --------------------------------------------------------------------------------------
# The plan: what the load process is told, and what it answers. Plain JSON both ways.


@dataclass(frozen=True)
class Target:
    name: str  # one of TARGETS
    kind: str  # "standard" or "hubspot": how deliveries are built and signed
    url: str  # where to POST, as the sender calls it (HubSpot signs it)
    secret: str


@dataclass(frozen=True)
class Variant:
    tag: int  # keys this variant's deliveries, so the ledger can count them
    mode: str  # "warm-up", "closed", "open", "bad-sig"
    target: str
    concurrency: int = 0  # closed-loop senders
    fraction: float = 0.0  # open loop: of the target's closed c8 rate
    rate: float = 0.0  # open loop: arrivals per second

    @property
    def label(self) -> str:
        if self.mode == "open":
            return f"open {self.fraction:.0%} {self.rate:.0f}/s"
        if self.mode == "warm-up":
            return "warm-up"
        return f"{self.mode} c{self.concurrency}"


@dataclass
class Result:
    variant: Variant
    sent: int = 0
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    retry_after: int = 0  # 429/503 answers that said when to come back
    percentiles_ms: dict[str, float] = field(default_factory=dict)
    load_cpu: float = 0.0  # the load process's CPU seconds per wall second
    server_cpu: float = math.nan  # the target server process's, likewise (Linux /proc)
    postgres_cpu: float = math.nan  # every postgres process's, likewise

    @property
    def accepted_rate(self) -> float:
        return self.statuses["2xx"] / self.seconds if self.seconds else 0.0

    @property
    def answered_rate(self) -> float:
        answered = self.sent - self.statuses["err"]
        return answered / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "statuses": dict(self.statuses)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        return cls(
            variant=Variant(**data["variant"]),
            sent=data["sent"],
            seconds=data["seconds"],
            statuses=Counter(data["statuses"]),
            retry_after=data["retry_after"],
            percentiles_ms=data["percentiles_ms"],
            load_cpu=data["load_cpu"],
            server_cpu=data["server_cpu"],
            postgres_cpu=data["postgres_cpu"],
        )


# --------------------------------------------------------------------------------------
# Deliveries, built and signed as each sender does, at send time.


def delivery_id(tag: int, n: int) -> str:
    """The Standard Webhooks `webhook-id` of delivery n of a variant (and the baseline's
    event key); Quarterback stores it as `stdwh:<id>`."""
    return f"bench-{tag}-{n}"


def hubspot_subscription(tag: int) -> int:
    """Each variant delivers under its own subscription id, which is in the dedupe key
    `hubspot:<portal>:<subscription>:<event>:<object>:<occurred>` Quarterback stores."""
    return 1000 + tag


def standard_delivery(tag: int, n: int, secret: str) -> tuple[bytes, dict[str, str]]:
    now = datetime.now(UTC)
    msg_id = delivery_id(tag, n)
    body = json.dumps(
        {
            "id": f"evt-{tag}-{n}",
            "type": "opportunity_created",
            "occurred_at": now.isoformat(timespec="milliseconds"),
            "account": {
                "external_id": f"acct-{tag}-{n}",
                "name": f"Bench Account {tag}-{n}",
                "domain": f"bench-{tag}-{n}.example.com",
            },
            "opportunity": {
                "external_id": f"opp-{tag}-{n}",
                "name": f"Bench Account {tag}-{n} - platform",
                "amount": f"{12000 + n % 97 * 250}.00",
                "currency": "USD",
                "close_date": "2027-03-31",
                "kind": "new",
            },
            "data": {"bench": True, "variant": tag},
        },
        separators=(",", ":"),
    ).encode()
    headers = sign(secret, msg_id, now, body)
    headers["content-type"] = "application/json"
    return body, headers


def hubspot_delivery(tag: int, n: int, secret: str, url: str) -> tuple[bytes, dict[str, str]]:
    now_ms = int(time.time() * 1000)
    body = json.dumps(
        [
            {
                "eventId": n + 1,
                "subscriptionId": hubspot_subscription(tag),
                "portalId": PORTAL_ID,
                "appId": APP_ID,
                "occurredAt": now_ms,
                "subscriptionType": "deal.creation",
                "attemptNumber": 0,
                "objectId": tag * 10_000_000 + n + 1,  # a new deal every time
                "changeFlag": "CREATED",
                "changeSource": "CRM_UI",
                "sourceId": "userId:1",
            }
        ],
        separators=(",", ":"),
    ).encode()
    return body, signed_headers(secret, url, body, now_ms)


def build(target: Target, tag: int, n: int, forged: bool) -> tuple[bytes, dict[str, str]]:
    if target.kind == "hubspot":
        secret = HUBSPOT_SECRET[::-1] if forged else target.secret
        return hubspot_delivery(tag, n, secret, target.url)
    secret = new_secret() if forged else target.secret
    return standard_delivery(tag, n, secret)


# --------------------------------------------------------------------------------------
# The load process: closed and open loops with httpx.


def status_class(status: int) -> str:
    if 200 <= status < 300:
        return "2xx"
    if status in (429, 503):
        return str(status)
    if 400 <= status < 500:
        return "4xx"
    return "5xx"


def percentiles(latencies: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles in milliseconds (p99.9 needs 1000 samples to mean much)."""
    if not latencies:
        return {"p50": math.nan, "p99": math.nan, "p99.9": math.nan}
    ordered = sorted(latencies)

    def rank(percent: float) -> float:
        index = max(0, math.ceil(percent / 100 * len(ordered)) - 1)
        return ordered[index] * 1000

    return {"p50": rank(50), "p99": rank(99), "p99.9": rank(99.9)}


class Recorder:
    def __init__(self, variant: Variant) -> None:
        self.result = Result(variant)
        self.latencies: list[float] = []

    async def send(
        self, client: httpx.AsyncClient, target: Target, n: int, forged: bool, since: float
    ) -> None:
        """Send delivery n; its latency runs from `since` (send time, or scheduled time)."""
        body, headers = build(target, self.result.variant.tag, n, forged)
        self.result.sent += 1
        try:
            response = await client.post(target.url, content=body, headers=headers)
        except httpx.HTTPError:
            self.result.statuses["err"] += 1
            return
        kind = status_class(response.status_code)
        self.result.statuses[kind] += 1
        if kind in ("429", "503") and "retry-after" in response.headers:
            self.result.retry_after += 1
        self.latencies.append(time.perf_counter() - since)


class Connections:
    """`size` httpx.AsyncClients of one connection each, lent out one request at a time.

    One AsyncClient whose pool held 64 connections kept the load process busy while the
    server idled (the baseline fell from ~670/s with 8 senders to ~90/s with 64, client CPU
    near a core, server CPU ~0.1); a client per connection does not.
    """

    def __init__(self, size: int, request_timeout: float) -> None:
        tls = ssl.create_default_context()  # one, not one per client (plain HTTP anyway)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.clients = [
            httpx.AsyncClient(timeout=request_timeout, limits=limits, verify=tls)
            for _ in range(size)
        ]
        self.idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for client in self.clients:
            self.idle.put_nowait(client)

    async def __aenter__(self) -> Connections:
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients))

    @contextlib.asynccontextmanager
    async def borrow(self) -> AsyncIterator[httpx.AsyncClient]:
        client = await self.idle.get()  # waits, first come first served, when all are busy
        try:
            yield client
        finally:
            self.idle.put_nowait(client)


async def closed_loop(
    target: Target, variant: Variant, seconds: float, cap: int, request_timeout: float
) -> Result:
    recorder = Recorder(variant)
    numbers = itertools.count()
    forged = variant.mode == "bad-sig"
    async with Connections(variant.concurrency, request_timeout) as connections:
        cpu, began = time.process_time(), time.perf_counter()
        deadline = began + seconds

        async def sender(client: httpx.AsyncClient) -> None:  # a connection of its own
            while time.perf_counter() < deadline:
                n = next(numbers)
                if n >= cap:
                    return
                await recorder.send(client, target, n, forged, time.perf_counter())

        async with asyncio.TaskGroup() as group:
            for client in connections.clients:
                group.create_task(sender(client))
        return finish(recorder, began, cpu)


async def open_loop(
    target: Target,
    variant: Variant,
    seconds: float,
    cap: int,
    request_timeout: float,
    connections: int,
) -> Result:
    recorder = Recorder(variant)
    total = min(cap, max(1, round(variant.rate * seconds)))
    interval = 1 / variant.rate

    async with Connections(connections, request_timeout) as pool:

        async def arrival(n: int, scheduled: float) -> None:
            async with pool.borrow() as client:
                await recorder.send(client, target, n, False, scheduled)

        cpu, began = time.process_time(), time.perf_counter()
        tasks: list[asyncio.Task[None]] = []
        n = 0
        while n < total:
            now = time.perf_counter()
            # Start every request that is due, each stamped with its scheduled time.
            while n < total and began + n * interval <= now:
                scheduled = began + n * interval
                tasks.append(asyncio.create_task(arrival(n, scheduled)))
                n += 1
            if n < total:
                await asyncio.sleep(max(0.0, began + n * interval - time.perf_counter()))
        _, late = await asyncio.wait(tasks, timeout=request_timeout + 2)
        for task in late:  # cannot happen with the client's own timeout; counted if it does
            task.cancel()
            recorder.result.statuses["err"] += 1
        return finish(recorder, began, cpu)


def finish(recorder: Recorder, began: float, cpu: float) -> Result:
    result = recorder.result
    result.seconds = time.perf_counter() - began
    result.load_cpu = (time.process_time() - cpu) / result.seconds if result.seconds else 0.0
    result.percentiles_ms = percentiles(recorder.latencies)
    return result


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_cpu(pid: int | str) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_snapshot(server_pid: int) -> tuple[float, dict[str, float]] | None:
    """The server's CPU seconds and each postgres process's, or None without /proc.
    Postgres here is the whole cluster: another database's work would count too."""
    proc = Path("/proc")
    if not (proc / str(server_pid) / "stat").exists():
        return None
    postgres = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    postgres[entry.name] = _process_cpu(entry.name)
    return _process_cpu(server_pid), postgres


def postgres_cpu_used(before: dict[str, float], after: dict[str, float]) -> float:
    """CPU seconds postgres processes used between two snapshots (one that started in
    between counts whole; one that ended in between is missed)."""
    return sum(max(0.0, used - before.get(pid, 0.0)) for pid, used in after.items())


def progress(result: Result) -> None:
    statuses = " ".join(f"{k}={v}" for k, v in sorted(result.statuses.items()))
    print(
        f"  {result.variant.target:<12} {result.variant.label:<18} {result.sent:>6} sent "
        f"in {result.seconds:5.2f}s  {result.accepted_rate:7.1f} accepted/s  "
        f"p99 {result.percentiles_ms['p99']:7.1f} ms  {statuses}",
        flush=True,
    )


async def run_load(plan: dict[str, Any]) -> list[Result]:
    """Every variant in turn, in the order that keeps comparable rows close in time."""
    targets = {name: Target(**spec) for name, spec in plan["targets"].items()}
    seconds, cap, timeout = plan["seconds"], plan["cap"], plan["timeout"]
    tags = itertools.count(1)
    results: list[Result] = []

    async def measured(variant: Variant, load: Coroutine[Any, Any, Result]) -> Result:
        pid = plan["pids"][variant.target]
        before, began = cpu_snapshot(pid), time.perf_counter()
        result = await load
        after, wall = cpu_snapshot(pid), time.perf_counter() - began
        if before is not None and after is not None:
            result.server_cpu = (after[0] - before[0]) / wall
            result.postgres_cpu = postgres_cpu_used(before[1], after[1]) / wall
        progress(result)
        results.append(result)
        return result

    async def closed(mode: str, name: str, concurrency: int, length: float) -> Result:
        variant = Variant(next(tags), mode, name, concurrency=concurrency)
        return await measured(variant, closed_loop(targets[name], variant, length, cap, timeout))

    if plan["warmup"] > 0:
        for name in targets:
            await closed("warm-up", name, 8, plan["warmup"])
    base: dict[str, float] = {}
    for concurrency in plan["concurrency"]:
        for name in targets:
            result = await closed("closed", name, concurrency, seconds)
            if concurrency == plan["open_base"]:
                base[name] = result.accepted_rate
    for fraction in plan["rates"]:
        for name, target in targets.items():
            rate = max(1.0, fraction * base.get(name, 0.0))
            variant = Variant(next(tags), "open", name, fraction=fraction, rate=rate)
            connections = plan["open_connections"]
            await measured(variant, open_loop(target, variant, seconds, cap, timeout, connections))
    if plan["badsig_seconds"] > 0:
        for name in targets:
            await closed("bad-sig", name, 8, plan["badsig_seconds"])
    return results


def load_main(plan_path: str, result_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    try:
        try:  # the same loop the servers get from uvicorn, when installed: less client CPU
            import uvloop
        except ImportError:
            results = asyncio.run(run_load(plan))
        else:
            results = uvloop.run(run_load(plan))
    except KeyboardInterrupt:
        sys.exit(130)
    Path(result_path).write_text(json.dumps([result.to_json() for result in results]))


# --------------------------------------------------------------------------------------
# The database, the sources and the servers.


async def create_database(admin_url: str) -> str:
    return await throwaway.create_database(admin_url, "qb_bench")


async def drop_database(admin_url: str, url: str) -> None:
    await throwaway.drop_database(admin_url, url)


@dataclass(frozen=True)
class Seeded:
    workspace_id: uuid.UUID
    standard_secret: str
    standard_path: str  # /webhooks/{source id}
    standard_namespace: str
    hubspot_path: str
    hubspot_namespace: str


async def seed(url: str) -> Seeded:
    """Migrate; one workspace with a standard and a hubspot source (no API token)."""
    engine = create_engine(Settings(database_url=url))
    try:
        await upgrade(engine)
        async with create_sessionmaker(engine)() as session, session.begin():
            workspace = await workspaces_service.create_workspace(session, name="Bench Ingest")
            common: dict[str, Any] = {
                "workspace_id": workspace.id,
                "mapping": None,
                "api_base_url": None,
                "api_token": None,
                "namespace": None,
                "actor": "bench",
            }
            standard, standard_secret = await sources_service.create_source(
                session, kind="standard", name="Bench relay", secret=None, **common
            )
            hubspot, _ = await sources_service.create_source(
                session, kind="hubspot", name="Bench HubSpot", secret=HUBSPOT_SECRET, **common
            )
            return Seeded(
                workspace.id,
                standard_secret,
                sources_service.ingestion_path(standard),
                standard.namespace,
                sources_service.ingestion_path(hubspot),
                hubspot.namespace,
            )
    finally:
        await engine.dispose()


async def run_load_process(plan: dict[str, Any], workdir: Path) -> list[Result]:
    """This file in --load mode, in its own process: the load does not share our loop."""
    plan_path, result_path = workdir / "plan.json", workdir / "results.json"
    plan_path.write_text(json.dumps(plan))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(THIS_FILE),
        "--load",
        str(plan_path),
        "--result",
        str(result_path),
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        code = await process.wait()
    finally:
        await stop(process)
    if code != 0:
        raise RuntimeError(f"the load process exited with {code}")
    return [Result.from_json(item) for item in json.loads(result_path.read_text())]


# --------------------------------------------------------------------------------------
# The ledger: what each variant's answers say against what the database holds.


@dataclass(frozen=True)
class LedgerLine:
    result: Result
    stored: int  # distinct events stored for the variant
    rows: int  # rows stored for the variant (a duplicate would show here)
    outcomes: dict[str, int]

    @property
    def refused(self) -> int:
        return sum(self.result.statuses[k] for k in STATUS_COLUMNS if k not in ("2xx", "err"))

    @property
    def problems(self) -> list[str]:
        result, found = self.result, []
        accepted = result.statuses["2xx"]
        if result.sent != accepted + self.refused:
            found.append(f"{result.sent - accepted - self.refused} sent without an answer")
        if self.stored != accepted:
            found.append(f"stored {self.stored} != accepted {accepted}")
        if self.rows != self.stored:
            found.append(f"{self.rows - self.stored} duplicate rows")
        return found


async def ledger(url: str, seeded: Seeded, results: list[Result]) -> list[LedgerLine]:
    lines = []
    connection = await asyncpg.connect(throwaway.asyncpg_dsn(url))
    try:
        for result in results:
            variant = result.variant
            if variant.target.startswith("baseline"):
                stored, rows = await connection.fetchrow(
                    "SELECT count(DISTINCT event_id), count(*) FROM bench_raw_events "
                    "WHERE event_id LIKE $1",
                    f"{delivery_id(variant.tag, 0)[:-1]}%",
                )
                outcomes = {}
            else:
                if variant.target == "qb-standard":
                    namespace = seeded.standard_namespace
                    pattern = f"stdwh:{delivery_id(variant.tag, 0)[:-1]}%"
                else:
                    namespace = seeded.hubspot_namespace
                    pattern = f"hubspot:{PORTAL_ID}:{hubspot_subscription(variant.tag)}:%"
                found = await connection.fetch(
                    "SELECT outcome, count(DISTINCT external_id) AS distinct_ids, "
                    "count(*) AS n FROM lifecycle_events "
                    "WHERE workspace_id = $1 AND source = $2 AND external_id LIKE $3 "
                    "GROUP BY outcome",
                    seeded.workspace_id,
                    namespace,
                    pattern,
                )
                outcomes = {row["outcome"]: row["n"] for row in found}
                stored = sum(row["distinct_ids"] for row in found)
                rows = sum(row["n"] for row in found)
            lines.append(LedgerLine(result, stored, rows, outcomes))
    finally:
        await connection.close()
    return lines


# --------------------------------------------------------------------------------------
# The report.


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def report(results: list[Result]) -> None:
    header = (
        f"{'target':<12} {'variant':<18} {'sent':>6} {'accepted/s':>10} {'answered/s':>10} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} "
        + " ".join(f"{k:>5}" for k in STATUS_COLUMNS)
        + f" {'retry-after':>11} {'cpu: load':>9} {'server':>6} {'pg':>5}"
    )
    print()
    print(header)
    print("-" * len(header))
    mode = None
    for result in results:
        if mode is not None and result.variant.mode != mode:
            print()
        mode = result.variant.mode
        p = result.percentiles_ms
        print(
            f"{result.variant.target:<12} {result.variant.label:<18} {result.sent:>6} "
            f"{result.accepted_rate:>10.1f} {result.answered_rate:>10.1f} "
            f"{_ms(p['p50']):>7} {_ms(p['p99']):>7} {_ms(p['p99.9']):>8} "
            + " ".join(f"{result.statuses[k]:>5}" for k in STATUS_COLUMNS)
            + f" {result.retry_after:>11} {result.load_cpu:>9.2f} {result.server_cpu:>6.2f} "
            f"{result.postgres_cpu:>5.2f}"
        )


def _find(results: list[Result], target: str, mode: str, concurrency: int) -> Result | None:
    for result in results:
        v = result.variant
        if (v.target, v.mode, v.concurrency) == (target, mode, concurrency):
            return result
    return None


def report_ratios(results: list[Result], concurrencies: Sequence[int]) -> None:
    print("\nQuarterback / baseline, same run (events/s ratio; p99 latency multiple):")
    rows = [("closed", c) for c in concurrencies] + [("bad-sig", 8)]
    for mode, concurrency in rows:
        baseline = _find(results, "baseline", mode, concurrency)
        if baseline is None:
            continue
        cells = []
        for name in ("qb-standard", "qb-hubspot", "baseline-deep"):
            ours = _find(results, name, mode, concurrency)
            if ours is None:
                continue
            # bad-sig: refusals/s is the figure; closed: accepted events/s.
            rate, base = (
                (ours.answered_rate, baseline.answered_rate)
                if mode == "bad-sig"
                else (ours.accepted_rate, baseline.accepted_rate)
            )
            ratio = rate / base if base else math.nan
            p99 = ours.percentiles_ms["p99"] / baseline.percentiles_ms["p99"]
            cells.append(f"{name} {ratio:5.2f} (p99 x{p99:.1f})")
        unit = "refused/s" if mode == "bad-sig" else "accepted/s"
        rate = baseline.answered_rate if mode == "bad-sig" else baseline.accepted_rate
        print(f"  {mode} c{concurrency:<3} baseline {rate:7.1f} {unit:<10}  " + "   ".join(cells))
    print("\nQuarterback / baseline-deep, same run (the same round trips on raw asyncpg):")
    for concurrency in concurrencies:
        deep = _find(results, "baseline-deep", "closed", concurrency)
        if deep is None or not deep.accepted_rate:
            continue
        cells = [
            f"{name} {ours.accepted_rate / deep.accepted_rate:5.2f}"
            for name in ("qb-standard", "qb-hubspot")
            if (ours := _find(results, name, "closed", concurrency)) is not None
        ]
        print(
            f"  closed c{concurrency:<3} baseline-deep {deep.accepted_rate:7.1f} accepted/s  "
            + "   ".join(cells)
        )


def _cpu_per_event(result: Result | None) -> tuple[float, float] | None:
    """CPU seconds per accepted event of the server and of PostgreSQL (None without /proc
    or without an accepted event)."""
    if result is None or not result.accepted_rate or math.isnan(result.server_cpu):
        return None
    return (
        result.server_cpu / result.accepted_rate,
        result.postgres_cpu / result.accepted_rate,
    )


def report_cpu_per_event(results: list[Result]) -> None:
    """CPU milliseconds per accepted event, ours and PostgreSQL's, with 8 senders: what a
    throughput costs in cores, whatever the machine's speed that day."""
    print("\nCPU per accepted event, closed c8 (server process; all of PostgreSQL):")
    for name in ("qb-standard", "qb-hubspot", "baseline", "baseline-deep"):
        if (cost := _cpu_per_event(_find(results, name, "closed", 8))) is not None:
            server_ms, postgres_ms = (seconds * 1000 for seconds in cost)
            print(f"  {name:<14} server {server_ms:5.2f} ms   postgres {postgres_ms:5.2f} ms")


def report_aims(results: list[Result], concurrencies: Sequence[int]) -> None:
    """Issue 7 point 6's aims, per Quarterback target: information, not the exit code."""
    print("\nAims of issue 7.6 (information only; the exit code is the ledger's):")
    top = max(concurrencies)
    for name in ("qb-standard", "qb-hubspot"):
        checks = []
        ours, base = _find(results, name, "closed", top), _find(results, "baseline", "closed", top)
        if ours and base and base.accepted_rate:
            share = ours.accepted_rate / base.accepted_rate
            checks.append(f"throughput c{top} {share:.2f} x ceiling (aim >= 0.5)")
        c8, base8 = _find(results, name, "closed", 8), _find(results, "baseline", "closed", 8)
        if base8 and (cost := _cpu_per_event(c8)) is not None:
            # At this CPU per event, the cores half the ceiling's rate would take.
            cores = sum(cost) * 0.5 * base8.accepted_rate
            checks.append(
                f"0.5 x ceiling ({0.5 * base8.accepted_rate:.0f}/s) at c8's CPU per event "
                f"would take {cores:.1f} cores of server and PostgreSQL ({os.cpu_count()} here)"
            )
        if c8:
            checks.append(f"p99 c8 {c8.percentiles_ms['p99']:.1f} ms (aim <= 50)")
        if c64 := _find(results, name, "closed", 64):
            bad = c64.sent - c64.statuses["2xx"]
            checks.append(
                f"p99.9 c64 {c64.percentiles_ms['p99.9']:.1f} ms (aim < 500), {bad} not 2xx"
            )
        overload = [r for r in results if r.variant.target == name and r.variant.fraction > 1]
        for r in overload:
            shed = r.statuses["429"] + r.statuses["503"]
            checks.append(
                f"{r.variant.label}: p99 {r.percentiles_ms['p99']:.0f} ms, {shed} shed "
                f"with 429/503 ({r.retry_after} with Retry-After)"
            )
        if bad_sig := _find(results, name, "bad-sig", 8):
            checks.append(f"bad-sig {bad_sig.answered_rate:.0f} refused/s")
        print(f"  {name}:")
        for check in checks:
            print(f"    {check}")


def report_ledger(lines: list[LedgerLine]) -> bool:
    print("\nLedger: sent = 2xx + refused with a status; distinct stored = 2xx; no duplicates")
    header = (
        f"{'target':<12} {'variant':<18} {'sent':>6} {'2xx':>6} {'refused':>7} {'err':>4} "
        f"{'stored':>6} {'rows':>6}  {'outcomes':<24} check"
    )
    print(header)
    print("-" * len(header))
    balanced = True
    for line in lines:
        result = line.result
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(line.outcomes.items())) or "-"
        problems = line.problems
        balanced &= not problems
        print(
            f"{result.variant.target:<12} {result.variant.label:<18} {result.sent:>6} "
            f"{result.statuses['2xx']:>6} {line.refused:>7} {result.statuses['err']:>4} "
            f"{line.stored:>6} {line.rows:>6}  {outcomes:<24} "
            + ("ok" if not problems else "FAIL: " + "; ".join(problems))
        )
    print("ledger: " + ("balanced" if balanced else "DOES NOT BALANCE"))
    return balanced


# --------------------------------------------------------------------------------------
# The run.


async def bench(url: str, args: argparse.Namespace, workdir: Path) -> bool:
    began = time.perf_counter()
    seeded = await seed(url)
    connection = await asyncpg.connect(throwaway.asyncpg_dsn(url))
    try:
        version = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    qb_port, raw_port = free_port(), free_port()
    qb_base, raw_base = f"http://127.0.0.1:{qb_port}", f"http://127.0.0.1:{raw_port}"
    qb_env = {
        "QB_DATABASE_URL": url,
        "QB_HOST": "127.0.0.1",
        "QB_PORT": str(qb_port),
        "QB_LOG_LEVEL": "warning",
        "QB_PUBLIC_URL": qb_base,  # HubSpot signs the URL it calls
    }
    raw_env = {
        "BENCH_RAW_DSN": throwaway.asyncpg_dsn(url),
        "BENCH_RAW_SECRET": seeded.standard_secret,
    }
    raw_argv = [sys.executable, str(BENCH_DIR / "raw_ingest_app.py"), "--port", str(raw_port)]
    async with (
        running("quarterback serve", quarterback_argv(), qb_env, qb_base) as (qb_pid, qb_log),
        running("baseline", raw_argv, raw_env, raw_base) as (raw_pid, raw_log),
    ):
        settings = Settings(database_url=url)
        print(
            f"migrated and seeded in {time.perf_counter() - began:.1f}s; PostgreSQL {version}; "
            f"quarterback serve (1 worker, pool {settings.db_pool_size}+"
            f"{settings.db_max_overflow} overflow) on :{qb_port}, baseline (pool 4) on "
            f":{raw_port}; {os.cpu_count()} cores shared by servers, PostgreSQL and load\n"
            f"variants: warm-up {args.warmup:g}s; closed c{'/c'.join(map(str, args.concurrency))} "
            f"{args.seconds:g}s; open {'/'.join(f'{r:.0%}' for r in args.rates)} of closed "
            f"c8 {args.seconds:g}s; bad-sig c8 {args.badsig_seconds:g}s; cap {args.cap} each",
            flush=True,
        )
        targets = {
            "qb-standard": Target(
                "qb-standard",
                "standard",
                qb_base + seeded.standard_path,
                seeded.standard_secret,
            ),
            "qb-hubspot": Target(
                "qb-hubspot",
                "hubspot",
                qb_base + seeded.hubspot_path,
                HUBSPOT_SECRET,
            ),
            "baseline": Target(
                "baseline", "standard", f"{raw_base}/ingest", seeded.standard_secret
            ),
            "baseline-deep": Target(
                "baseline-deep", "standard", f"{raw_base}/ingest-deep", seeded.standard_secret
            ),
        }
        plan = {
            "targets": {name: asdict(target) for name, target in targets.items()},
            "seconds": args.seconds,
            "warmup": args.warmup,
            "badsig_seconds": args.badsig_seconds,
            "cap": args.cap,
            "timeout": args.timeout,
            "concurrency": args.concurrency,
            "open_base": 8 if 8 in args.concurrency else max(args.concurrency),
            "rates": args.rates,
            "open_connections": args.open_connections,
            "pids": {
                "qb-standard": qb_pid,
                "qb-hubspot": qb_pid,
                "baseline": raw_pid,
                "baseline-deep": raw_pid,
            },
        }
        results = await run_load_process(plan, workdir)
        for name, log in (("quarterback serve", qb_log), ("baseline", raw_log)):
            target = "baseline" if name == "baseline" else "qb-"
            failed = sum(r.statuses["5xx"] for r in results if r.variant.target.startswith(target))
            if failed:
                print(f"\n{name} answered 5xx {failed} times; the end of its log:\n{tail(log)}")
    report(results)
    report_ratios(results, args.concurrency)
    report_cpu_per_event(results)
    report_aims(results, args.concurrency)
    return report_ledger(await ledger(url, seeded, results))


async def main(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    if task is not None:  # SIGTERM cleans up like Ctrl-C does
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    url = await create_database(args.postgres_url)
    name = make_url(url).database
    print(f"created database {name}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="qb-bench-ingest-") as workdir:
            balanced = await bench(url, args, Path(workdir))
    finally:
        await drop_database(args.postgres_url, url)
        print(f"dropped database {name}", flush=True)
    return 0 if balanced else 1


def _numbers(kind: type, text_value: str) -> list[Any]:
    try:
        return [kind(part) for part in text_value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list: {text_value!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Signed webhook ingestion under load: quarterback serve vs a bare ceiling."
    )
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="seconds per closed and open variant (3)"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per target (1)")
    parser.add_argument(
        "--badsig-seconds", type=float, default=2.0, help="seconds per bad-signature variant (2)"
    )
    parser.add_argument(
        "--concurrency",
        type=lambda value: _numbers(int, value),
        default=[1, 8, 64],
        help="closed-loop senders, comma-separated (1,8,64)",
    )
    parser.add_argument(
        "--rates",
        type=lambda value: _numbers(float, value),
        default=[0.5, 0.9, 1.2],
        help="open-loop arrival rates as fractions of the closed c8 rate (0.5,0.9,1.2)",
    )
    parser.add_argument(
        "--cap", type=int, default=20_000, help="at most this many deliveries per variant (20000)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="client timeout per request, seconds (10)"
    )
    parser.add_argument(
        "--open-connections",
        type=int,
        default=256,
        help="connections the open-loop client may open (256)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("QB_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="admin URL to create and drop the bench database "
        "(QB_BENCH_POSTGRES_URL, default %(default)s)",
    )
    parser.add_argument("--load", metavar="PLAN", help=argparse.SUPPRESS)
    parser.add_argument("--result", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.concurrency or not all(1 <= c <= 512 for c in args.concurrency):
        parser.error("--concurrency must list numbers between 1 and 512")
    if not args.rates or not all(0 < r <= 10 for r in args.rates):
        parser.error("--rates must list fractions in (0, 10]")
    if not 0 < args.seconds <= 120 or not 0 <= args.warmup <= 60:
        parser.error("--seconds must be in (0, 120] and --warmup in [0, 60]")
    if not 0 <= args.badsig_seconds <= 60:
        parser.error("--badsig-seconds must be in [0, 60]")
    if not 1 <= args.cap <= 1_000_000 or not 0 < args.timeout <= 60:
        parser.error("--cap must be in [1, 1000000] and --timeout in (0, 60]")
    if not 1 <= args.open_connections <= 1024:
        parser.error("--open-connections must be in [1, 1024]")
    if not args.postgres_url.startswith(("postgres://", "postgresql")):
        parser.error("--postgres-url must be a PostgreSQL URL")
    if bool(args.load) != bool(args.result):
        parser.error("--load and --result go together")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.load:
        load_main(arguments.load, arguments.result)
        sys.exit(0)
    try:
        sys.exit(asyncio.run(main(arguments)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
