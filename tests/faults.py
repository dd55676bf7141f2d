"""A harness for proof under faults: real `quarterback` processes that are killed with
SIGKILL, a burst of signed CRM deliveries with a ledger of what each one was answered, and
the database's own account of what it stored and what that derived.

Used by tests/test_faults.py (small and bounded) and bench/faults.py (bigger, by hand).
Nothing here waits a fixed time for something to happen: it polls with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from tests.factories import WorkspaceKey

QUARTERBACK = Path(sys.executable).parent / "quarterback"
READY_SECONDS = 60.0
RETRIES = 30  # for a 429/503, each after its Retry-After: a CRM keeps trying far longer


# ------------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(overrides: dict[str, str]) -> dict[str, str]:
    # Only what we set: a QB_ variable of the shell running the tests must not leak in.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("QB_")}
    return {**inherited, "QB_LOG_LEVEL": "warning", **overrides}


class Process:
    """A `quarterback` command in its own process group, its output kept in a file.

    `kill` sends SIGKILL to the whole group: the process gets no chance to commit, roll
    back, close sockets politely or release anything; the kernel closes its sockets.
    """

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self._log = tempfile.TemporaryFile()
        self._cwd = tempfile.TemporaryDirectory(prefix="qb-faults-")  # no stray .env read
        self.popen = subprocess.Popen(
            [str(QUARTERBACK), *args],
            env=_environment(env),
            cwd=self._cwd.name,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() reaches every child
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self, last: int = 40) -> str:
        self._log.flush()
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").splitlines()
        return "\n".join(lines[-last:])

    def kill(self) -> None:
        """SIGKILL the process group and reap the process."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        self._log.close()
        self._cwd.cleanup()


async def wait_for(
    check: Callable[[], Awaitable[bool]],
    what: str,
    *,
    within: float = 20.0,
    process: Process | None = None,
) -> None:
    """Poll `check` until it is true; fail with `what` after `within` seconds, or at once
    if `process` died (with the end of its output)."""
    deadline = time.monotonic() + within
    while not await check():
        if process is not None and not process.alive:
            raise AssertionError(f"{process.name} exited while waiting for {what}:\n"
                                 f"{process.output()}")  # fmt: skip
        if time.monotonic() > deadline:
            tail = f"\n{process.name} said:\n{process.output()}" if process else ""
            raise AssertionError(f"gave up after {within:g}s waiting for {what}{tail}")
        await asyncio.sleep(0.05)


async def start_server(database_url: str, port: int, **env: str) -> Process:
    """`quarterback serve` (migrations first, as in production) until /readyz answers."""
    server = Process(
        f"quarterback serve :{port}",
        ["serve"],
        {"QB_DATABASE_URL": database_url, "QB_HOST": "127.0.0.1", "QB_PORT": str(port), **env},
    )
    base = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{base}/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await wait_for(ready, "the server to answer /readyz", within=READY_SECONDS, process=server)
    except BaseException:
        server.close()
        raise
    return server


WORKER_STARTED = re.compile(r"worker (\S+) firing due timers")


async def start_worker(database_url: str, **env: str) -> tuple[Process, str]:
    """`quarterback worker` polling every 0.1 s; returns it and its worker id, once it runs."""
    worker = Process(
        "quarterback worker",
        ["worker", "--poll-seconds", "0.1"],
        {"QB_DATABASE_URL": database_url, "QB_OUTBOUND_POLL_SECONDS": "0.1", **env},
    )

    async def started() -> bool:
        return WORKER_STARTED.search(worker.output()) is not None

    try:
        await wait_for(started, "the worker to start", within=READY_SECONDS, process=worker)
    except BaseException:
        worker.close()
        raise
    found = WORKER_STARTED.search(worker.output())
    assert found is not None
    return worker, found.group(1)


async def post(api: str, ws: WorkspaceKey, path: str, body: dict[str, Any]) -> Any:
    """POST to the API as the workspace's admin; the created thing (a 2xx is required)."""
    async with httpx.AsyncClient(base_url=api, headers=ws.headers, timeout=10) as client:
        response = await client.post(path, json=body)
    if response.status_code not in (200, 201):
        raise AssertionError(f"POST {path}: {response.status_code} {response.text}")
    return response.json()


# ------------------------------------------------------------------------ deliveries


@dataclass(frozen=True)
class Delivery:
    """One signed delivery as a CRM sends it: a distinct change, keyed by its webhook-id."""

    msg_id: str
    account: str  # the account's external id
    type: str
    body: str

    @property
    def key(self) -> str:
        """The event's key in lifecycle_events (standard adapter: `stdwh:<webhook-id>`)."""
        return f"stdwh:{self.msg_id}"


def deal_deliveries(accounts: int, tag: str) -> list[Delivery]:
    """Per account: an opportunity is created (Marketing hands over to Sales), then won
    (Sales hands over to Professional Services): two changes, two handoffs."""
    deliveries = []
    for n in range(accounts):
        account = f"{tag}-{n:05d}"
        opportunity = {"external_id": f"{account}-opp", "amount": "12000.00", "currency": "USD"}
        for event_type in ("opportunity_created", "closed_won"):
            event = {
                "id": f"{account}-{event_type}",
                "type": event_type,
                "occurred_at": datetime.now(UTC).isoformat(),
                "account": {"external_id": account, "name": f"Account {account}"},
                "opportunity": opportunity,
            }
            deliveries.append(
                Delivery(f"msg_{account}_{event_type}", account, event_type, json.dumps(event))
            )
    return deliveries


def signed(secret: str, delivery: Delivery) -> dict[str, str]:
    """Standard Webhooks headers, signed by the reference library as a sender signs: the
    same webhook-id on every attempt, the time of this attempt."""
    now = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": delivery.msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery.msg_id, now, delivery.body),
    }


@dataclass(frozen=True)
class Answer:
    outcome: str  # "2xx", "refused" (any other status) or "error" (no answer)
    status: int | None = None
    error: str | None = None  # the exception's class name

    @property
    def never_connected(self) -> bool:
        """Refused at connect: the request cannot have reached the server."""
        return self.error == "ConnectError"


def lanes(deliveries: Sequence[Delivery], senders: int) -> list[list[Delivery]]:
    """Split by account over `senders` lanes, each keeping its accounts' order (a CRM sends
    a record's changes in order)."""
    by_lane: list[list[Delivery]] = [[] for _ in range(senders)]
    accounts: dict[str, int] = {}
    for delivery in deliveries:
        lane = accounts.setdefault(delivery.account, len(accounts) % senders)
        by_lane[lane].append(delivery)
    return by_lane


async def send(
    url: str,
    secret: str,
    deliveries: Sequence[Delivery],
    *,
    senders: int,
    after_answers: tuple[int, Callable[[], None]] | None = None,
    retry_refusals: bool = False,
) -> dict[str, Answer]:
    """Send every delivery once from `senders` concurrent senders; return what each got.

    `after_answers=(n, act)` calls `act()` the moment the n-th HTTP answer arrives (to kill
    the server mid-burst). `retry_refusals` makes a sender do what a CRM does with a 429 or
    503: wait `Retry-After` and deliver again, up to `RETRIES` times.
    """
    answers: dict[str, Answer] = {}
    answered = 0

    async def lane(items: list[Delivery]) -> None:
        nonlocal answered
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0)) as client:
            for delivery in items:
                for attempt in range(RETRIES + 1):
                    try:
                        response = await client.post(
                            url, content=delivery.body, headers=signed(secret, delivery)
                        )
                    except httpx.HTTPError as exc:
                        answers[delivery.msg_id] = Answer("error", error=type(exc).__name__)
                        break
                    answered += 1
                    if after_answers is not None and answered == after_answers[0]:
                        after_answers[1]()
                    ok = 200 <= response.status_code < 300
                    answers[delivery.msg_id] = Answer(
                        "2xx" if ok else "refused", status=response.status_code
                    )
                    if ok or not retry_refusals or response.status_code not in (429, 503):
                        break
                    if attempt < RETRIES:
                        await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    await asyncio.gather(*(lane(items) for items in lanes(deliveries, senders) if items))
    return answers


# ------------------------------------------------------------------------ the database's account


@dataclass(frozen=True)
class Stored:
    rows: int
    duplicates: int
    outcome: str
    account: str  # the account's external id ("" while it has none)


@dataclass
class Picture:
    """What the database holds for one workspace and source."""

    events: dict[str, Stored]  # by external id
    stages: dict[str, str]  # account external id -> stage
    transitions: Counter[str]  # account external id -> stage transitions
    handoffs: Counter[str]  # account external id -> handoff tasks
    handoffs_per_transition: int  # the most handoff tasks raised by one transition
    tasks: int
    task_announcements: int  # task.raised outbox messages

    @property
    def stored(self) -> int:
        return len(self.events)

    @property
    def duplicates(self) -> int:
        return sum(item.duplicates for item in self.events.values())


async def picture(engine: AsyncEngine, workspace_id: uuid.UUID, source: str) -> Picture:
    workspace = {"workspace": workspace_id, "source": source}
    async with engine.connect() as connection:
        accounts = {
            row.id: (row.external_id, row.stage)
            for row in await connection.execute(
                text(
                    "SELECT a.id, x.external_id, a.stage FROM accounts a "
                    "JOIN account_external_ids x ON x.account_id = a.id "
                    "WHERE a.workspace_id = :workspace AND x.source = :source"
                ),
                workspace,
            )
        }
        events = {
            row.external_id: Stored(
                row.rows, row.duplicates, row.outcome, accounts.get(row.account_id, ("", ""))[0]
            )
            for row in await connection.execute(
                text(
                    "SELECT external_id, count(*) AS rows, max(duplicates) AS duplicates, "
                    "max(outcome) AS outcome, max(account_id::text)::uuid AS account_id "
                    "FROM lifecycle_events WHERE workspace_id = :workspace AND source = :source "
                    "GROUP BY external_id"
                ),
                workspace,
            )
        }

        async def per_account(sql: str) -> Counter[str]:
            rows = await connection.execute(text(sql), workspace)
            return Counter({accounts[row.account_id][0]: row.n for row in rows})

        transitions = await per_account(
            # Moves only: an account's creation is recorded as a transition into its first stage.
            "SELECT account_id, count(*) AS n FROM stage_transitions "
            "WHERE workspace_id = :workspace AND from_stage IS NOT NULL GROUP BY account_id"
        )
        handoffs = await per_account(
            "SELECT account_id, count(*) AS n FROM tasks "
            "WHERE workspace_id = :workspace AND kind = 'handoff' GROUP BY account_id"
        )
        per_transition = await connection.scalar(
            text(
                "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM tasks "
                "WHERE workspace_id = :workspace AND kind = 'handoff' GROUP BY transition_id) t"
            ),
            workspace,
        )
        tasks = await connection.scalar(
            text("SELECT count(*) FROM tasks WHERE workspace_id = :workspace"), workspace
        )
        announcements = await connection.scalar(
            text(
                "SELECT count(*) FROM outbox_messages "
                "WHERE workspace_id = :workspace AND event_type = 'task.raised'"
            ),
            workspace,
        )
    return Picture(
        events=events,
        stages={external_id: stage for external_id, stage in accounts.values()},
        transitions=transitions,
        handoffs=handoffs,
        handoffs_per_transition=int(per_transition or 0),
        tasks=int(tasks or 0),
        task_announcements=int(announcements or 0),
    )


# ------------------------------------------------------------------------ the ledger


def tally(answers: dict[str, Answer]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for answer in answers.values():
        counts[answer.outcome] += 1
        if answer.never_connected:
            counts["never connected"] += 1
    return counts


def after_crash_problems(
    deliveries: Sequence[Delivery], answers: dict[str, Answer], seen: Picture
) -> list[str]:
    """What must hold after a SIGKILL mid-burst and a restart: every delivery answered 2xx
    is stored exactly once, untouched; nothing refused or never sent is stored; and the
    state derived from what is stored is whole (one transition and one handoff per move)."""
    problems = []
    known = {delivery.key for delivery in deliveries}
    for delivery in deliveries:
        answer, stored = answers.get(delivery.msg_id), seen.events.get(delivery.key)
        if answer is None:
            problems.append(f"{delivery.msg_id}: never sent")
        elif answer.outcome == "2xx" and (stored is None or stored.rows != 1):
            problems.append(f"{delivery.msg_id}: answered 2xx but stored {stored}")
        elif answer.outcome == "2xx" and stored is not None and stored.duplicates:
            problems.append(f"{delivery.msg_id}: sent once but counted {stored.duplicates} repeats")
        elif answer.outcome == "refused" and stored is not None:
            problems.append(f"{delivery.msg_id}: refused with {answer.status} but stored")
        elif answer.never_connected and stored is not None:
            problems.append(f"{delivery.msg_id}: never reached the server but stored")
    problems += [f"{key}: stored but never sent" for key in seen.events.keys() - known]
    problems += derived_problems(seen)
    return problems


def derived_problems(seen: Picture) -> list[str]:
    """Every applied event moved its account once, and every move raised one handoff."""
    problems = []
    applied: Counter[str] = Counter()
    for stored in seen.events.values():
        if stored.outcome == "applied":
            applied[stored.account] += 1
    for account in applied.keys() | seen.transitions.keys() | seen.handoffs.keys():
        moves, transitions = applied[account], seen.transitions[account]
        if transitions != moves:
            problems.append(f"{account}: {moves} applied events but {transitions} transitions")
        if seen.handoffs[account] != transitions:
            problems.append(
                f"{account}: {transitions} transitions but {seen.handoffs[account]} handoffs"
            )
    if seen.handoffs_per_transition > 1:
        problems.append(f"a transition raised {seen.handoffs_per_transition} handoff tasks")
    if seen.task_announcements != seen.tasks:
        problems.append(
            f"{seen.tasks} tasks but {seen.task_announcements} task.raised outbox messages"
        )
    return problems


def final_problems(
    deliveries: Sequence[Delivery],
    before: Picture,
    redelivered: dict[str, Answer],
    after: Picture,
) -> list[str]:
    """What must hold once the CRM redelivered what was not answered 2xx (and some that
    were): every change stored once and applied, two handoffs per account, and each event's
    `duplicates` = how many of its deliveries reached a commit, less the first."""
    problems = []
    for delivery in deliveries:
        stored = after.events.get(delivery.key)
        again = redelivered.get(delivery.msg_id)
        if again is not None and again.outcome != "2xx":
            problems.append(f"{delivery.msg_id}: redelivery answered {again}")
        if stored is None or stored.rows != 1:
            problems.append(f"{delivery.msg_id}: stored {stored} after redelivery")
            continue
        if stored.outcome != "applied":
            problems.append(f"{delivery.msg_id}: {stored.outcome} after redelivery")
        # A redelivery of a stored event is a repeat; one of a missing event is the first.
        expected = int(again is not None and delivery.key in before.events)
        if stored.duplicates != expected:
            problems.append(
                f"{delivery.msg_id}: duplicates {stored.duplicates}, expected {expected}"
            )
    accounts = {delivery.account for delivery in deliveries}
    for account in sorted(accounts):
        stage, moves = after.stages.get(account), after.transitions[account]
        if (stage, moves, after.handoffs[account]) != ("IMPLEMENT", 2, 2):
            problems.append(
                f"{account}: {stage} after {moves} transitions, {after.handoffs[account]} handoffs"
            )
    return problems + derived_problems(after)


@dataclass
class Ledger:
    sent: int
    burst: Counter[str]
    stored_after_crash: int
    stored_without_2xx: int
    redelivered: int
    redelivered_2xx: int
    stored_final: int
    duplicates_final: int
    handoffs_final: int
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"sent                      {self.sent}",
            f"  answered 2xx            {self.burst['2xx']}",
            f"  refused (non-2xx)       {self.burst['refused']}",
            f"  connection errors       {self.burst['error']} "
            f"({self.burst['never connected']} never connected)",
            f"stored after the crash    {self.stored_after_crash} "
            f"({self.stored_without_2xx} committed but unanswered)",
            f"redelivered               {self.redelivered} ({self.redelivered_2xx} answered 2xx)",
            f"stored after redelivery   {self.stored_final}",
            f"duplicates counted        {self.duplicates_final}",
            f"handoff tasks             {self.handoffs_final}",
            f"problems                  {len(self.problems)}",
        ]


def ledger(
    deliveries: Sequence[Delivery],
    answers: dict[str, Answer],
    before: Picture,
    redelivered: dict[str, Answer],
    after: Picture,
    problems: list[str],
) -> Ledger:
    answered_2xx = {msg_id for msg_id, answer in answers.items() if answer.outcome == "2xx"}
    return Ledger(
        sent=len(deliveries),
        burst=tally(answers),
        stored_after_crash=before.stored,
        stored_without_2xx=sum(
            1 for d in deliveries if d.key in before.events and d.msg_id not in answered_2xx
        ),
        redelivered=len(redelivered),
        redelivered_2xx=sum(1 for answer in redelivered.values() if answer.outcome == "2xx"),
        stored_final=after.stored,
        duplicates_final=after.duplicates,
        handoffs_final=sum(after.handoffs.values()),
        problems=problems,
    )


def to_redeliver(
    deliveries: Sequence[Delivery], answers: dict[str, Answer], every_nth_2xx: int
) -> list[Delivery]:
    """What a CRM sends again: everything it got no 2xx for, and (it may) some that it did."""
    chosen, seen_2xx = [], 0
    for delivery in deliveries:
        answer = answers.get(delivery.msg_id)
        if answer is None or answer.outcome != "2xx":
            chosen.append(delivery)
        else:
            seen_2xx += 1
            if seen_2xx % every_nth_2xx == 0:
                chosen.append(delivery)
    return chosen
