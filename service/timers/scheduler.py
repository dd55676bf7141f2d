"""The scheduler: a background task that fires due timers, in `serve` and in `worker`.

Any number of schedulers may share one PostgreSQL database (each `serve` worker process runs
one, and so does each `quarterback worker`); `run_due` makes sure a timer fires once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import service.forecasts.facts_schedule  # registers the renewal facts' daily timer kind
import service.forecasts.snapshot_schedule  # registers the forecast snapshot timer kind
import service.playbooks.time_rules
import service.timers.events  # noqa: F401  (registers the `event` timer kind)
from service.db.types import utcnow
from service.timers.service import run_pass

logger = logging.getLogger("quarterback.timers")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Scheduler:
    """Polls for due timers every `poll_seconds`; a full batch is followed by the next at once."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        poll_seconds: float = 5.0,
        batch: int = 50,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.fired = 0
        self.passes = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            raise RuntimeError("the scheduler is already running")
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"timers {self.worker_id}")

    async def stop(self) -> None:
        """Stop after the timer in flight, if any; the rest of the batch waits for next time."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        logger.info("scheduler %s polls every %ss", self.worker_id, self.poll_seconds)
        while not self._stopping.is_set():
            backlog = False
            try:
                result = await run_pass(
                    self.sessionmaker,
                    now=self.clock(),
                    worker_id=self.worker_id,
                    batch=self.batch,
                    stopping=self._stopping,
                )
            except Exception:
                logger.exception("timer pass failed; next try in %ss", self.poll_seconds)
            else:
                self.passes += 1
                self.fired += result.fired
                if result.claimed:
                    logger.info("fired %d timers, %d failed", result.fired, result.failed)
                backlog = result.claimed >= self.batch
            if not backlog:
                await self._sleep()
        logger.info("scheduler %s stopped", self.worker_id)

    async def _sleep(self) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=self.poll_seconds)
        except TimeoutError:
            pass
