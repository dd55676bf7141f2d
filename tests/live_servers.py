"""Real uvicorn servers on loopback and a `graphql-transport-ws` client, for subscription tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from service.app import create_app
from service.config import Settings

PROTOCOL = Subprotocol("graphql-transport-ws")


@dataclass
class Server:
    base_url: str

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/graphql"


@contextlib.asynccontextmanager
async def serving(database_url: str) -> AsyncIterator[Server]:
    """A whole app (its own engine and broadcaster) served by uvicorn on a free port."""
    settings = Settings(database_url=database_url, scheduler_enabled=False)
    # IPPROTO_TCP said outright, so that asyncio sets TCP_NODELAY on the connections.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), log_level="warning", timeout_graceful_shutdown=2, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield Server(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        listener.close()


@contextlib.asynccontextmanager
async def http_client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield client


@contextlib.asynccontextmanager
async def websocket(
    server: Server,
    init: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[ClientConnection]:
    async with connect(
        server.ws_url, subprotocols=[PROTOCOL], additional_headers=headers or {}
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": init or {}}))
        yield ws


async def acknowledged(ws: ClientConnection) -> None:
    message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert message["type"] == "connection_ack", message


async def subscribe(
    ws: ClientConnection, operation_id: str, query: str, variables: dict[str, Any] | None = None
) -> None:
    """Start a subscription and return once the server listens for it.

    graphql-transport-ws acknowledges no subscription; the servers run in this process, so
    the `qb_live_subscribers` gauge says when this one is registered.
    """
    before = listening()
    await send_operation(ws, operation_id, query, variables)
    for _ in range(1000):  # up to 10 s
        if listening() > before:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the server never started listening for {operation_id!r}")


async def send_operation(
    ws: ClientConnection, operation_id: str, query: str, variables: dict[str, Any] | None = None
) -> None:
    """Send a `subscribe` message, whatever the operation, without waiting for anything."""
    payload = {"query": query, "variables": variables or {}}
    await ws.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": payload}))


def listening() -> float:
    return REGISTRY.get_sample_value("qb_live_subscribers") or 0.0


async def next_result(ws: ClientConnection, wait: float = 10) -> dict[str, Any]:
    """The next `next` message's payload (pings are answered on the way)."""
    async with asyncio.timeout(wait):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            assert message["type"] == "next", message
            return dict(message["payload"])


async def nothing_within(ws: ClientConnection, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        message = await asyncio.wait_for(ws.recv(), seconds)
        raise AssertionError(f"expected nothing, got {message}")


async def collect(ws: ClientConnection, count: int) -> dict[str, list[dict[str, Any]]]:
    """`count` results, by subscription field (results of two subscriptions interleave)."""
    results: dict[str, list[dict[str, Any]]] = {}
    for _ in range(count):
        payload = await next_result(ws)
        assert "errors" not in payload, payload
        for name, value in payload["data"].items():
            results.setdefault(name, []).append(value)
    return results
