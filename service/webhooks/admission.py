"""Admission of webhook deliveries: beyond capacity, 503 + Retry-After before any other work.

A sender told 503 with Retry-After comes back later, while one left queueing past its timeout
(HubSpot: 5 s) counts a failure and retries anyway. The answer is given here, in front of the
app, because a refusal that first went through routing, dependencies and a request object
cost most of what a small accepted delivery costs: under a flood, refusing took the CPU that
accepted deliveries needed (bench/ingest.py, 64 senders).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import PROBLEM_JSON, problem
from service.webhooks.ingest import DELIVERIES

INGEST_PREFIX = "/webhooks/"
RETRY_AFTER_SECONDS = 2

_OVERLOADED = json.dumps(
    problem(503, "overloaded", "Overloaded", "too many deliveries in flight; retry shortly")
).encode()
_OVERLOADED_HEADERS = [
    (b"content-type", PROBLEM_JSON.encode()),
    (b"content-length", str(len(_OVERLOADED)).encode()),
    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
]
# What request metrics label a refused delivery with: the ingestion route's template, though
# routing never ran (service.kit.observability reads the route's `path`).
_INGEST_ROUTE = SimpleNamespace(path=INGEST_PREFIX + "{source_id}")


class WebhookAdmission:
    """At most `max_in_flight` webhook deliveries in this process at once; the rest get 503."""

    def __init__(self, app: ASGIApp, max_in_flight: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(INGEST_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            DELIVERIES.labels("any", "shed").inc()
            scope["route"] = _INGEST_ROUTE
            start = {"type": "http.response.start", "status": 503, "headers": _OVERLOADED_HEADERS}
            await send(start)
            await send({"type": "http.response.body", "body": _OVERLOADED})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
