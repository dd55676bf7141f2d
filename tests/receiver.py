"""A real HTTP receiver on 127.0.0.1 for outbound webhooks: records what it gets, verifies
signatures, and fails, stalls or goes away on request."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, float]] = field(default_factory=list)  # (status, delay) per call
    port: int = 0

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self, *steps: tuple[int, float]) -> None:
        """The next calls get these (status, delay) answers, then 200s."""
        self.script.extend(steps)

    def reset(self) -> None:
        self.received.clear()
        self.script.clear()

    async def _hook(self, request: Request) -> Response:
        self.received.append(Received(dict(request.headers), await request.body()))
        status, delay = self.script.pop(0) if self.script else (200, 0.0)
        if delay:
            await asyncio.sleep(delay)
        return JSONResponse({"ok": status < 300}, status_code=status)

    def start(self) -> Receiver:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def payloads(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(item.body) for item in self.received]
