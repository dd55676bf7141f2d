"""The benchmarks' servers: a subprocess on a free loopback port, ready when /readyz answers,
stopped (and killed if it must be) when the block ends, its output kept for the error that
says why it did not start.

Imported by the scripts beside it, which Python runs with this folder on `sys.path`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO

import httpx

READY_SECONDS = 60


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(log: IO[bytes], lines: int = 20) -> str:
    log.flush()
    log.seek(0)
    return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])


def quarterback_argv() -> list[str]:
    executable = shutil.which("quarterback", path=str(Path(sys.executable).parent))
    if executable is None:
        raise RuntimeError("no `quarterback` script next to this Python; pip install -e . first")
    return [executable, "serve", "--no-migrate"]


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=15)
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def running(
    name: str, argv: Sequence[str], env: dict[str, str], base_url: str
) -> AsyncIterator[tuple[int, IO[bytes]]]:
    """Run a server subprocess until it answers /readyz; yield its pid and log; stop it."""
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            deadline = time.perf_counter() + READY_SECONDS
            async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
                while True:
                    if process.returncode is not None:
                        raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail(log)}")
                    if time.perf_counter() > deadline:
                        waited = f"{name} was not ready in {READY_SECONDS}s"
                        raise RuntimeError(f"{waited}:\n{tail(log)}")
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get("/readyz")).status_code == 200:
                            break
                    await asyncio.sleep(0.1)
            yield process.pid, log
        finally:
            await stop(process)


@contextlib.asynccontextmanager
async def served(database_url: str) -> AsyncIterator[str]:
    """`quarterback serve --no-migrate` on a free port, quiet (no access log line per
    request); yield its base URL."""
    port = free_port()
    env = {
        "QB_DATABASE_URL": database_url,
        "QB_HOST": "127.0.0.1",
        "QB_PORT": str(port),
        "QB_LOG_LEVEL": "warning",
    }
    base_url = f"http://127.0.0.1:{port}"
    async with running("quarterback serve", quarterback_argv(), env, base_url):
        yield base_url
