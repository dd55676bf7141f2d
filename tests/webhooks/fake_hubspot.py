"""A fake HubSpot for the webhook tests: the CRM v3 read endpoints served for real on
127.0.0.1 (uvicorn in a thread), and deliveries built and signed the way HubSpot's
Webhooks API sends them.

The API answers like HubSpot's (developers.hubspot.com, CRM API | Deals and Companies):
`GET /crm/v3/objects/deals/{id}?properties=…&associations=companies` returns the asked
properties (plus the ones HubSpot always adds) and `associations.companies.results`
when the deal has companies; 404 and 401 come with HubSpot's error body. Tests script
429/5xx answers with `fail()` and count the requests each path got.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.webhooks.adapters.base import Delivery
from service.webhooks.adapters.hubspot import signed_headers

TOKEN = "pat-na1-fake-token"
PUBLIC_URL = "https://qb.example.com/webhooks/6f1c2b9e-6a1d-4c1e-9a53-0d6c1b2a3f4e"


@dataclass
class Fault:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (to make a request time out)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None


class FakeHubSpot:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.deals: dict[str, dict[str, Any]] = {}
        self.companies: dict[str, dict[str, Any]] = {}
        self.requests: list[Seen] = []
        self._faults: dict[str, list[Fault]] = defaultdict(list)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/crm/v3/objects/deals/{deal_id}", self._deal),
                Route("/crm/v3/objects/companies/{company_id}", self._company),
            ]
        )

    # --- data and faults ---

    def add_deal(
        self,
        deal_id: str,
        *,
        company_ids: tuple[str, ...] = (),
        **properties: str | None,
    ) -> None:
        self.deals[deal_id] = {"properties": properties, "company_ids": company_ids}

    def add_company(self, company_id: str, **properties: str | None) -> None:
        self.companies[company_id] = properties

    def fail(
        self,
        path: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` requests to `path` with `status` instead."""
        self._faults[path].extend(Fault(status, headers or {}, delay) for _ in range(times))

    def count(self, path: str) -> int:
        return sum(1 for seen in self.requests if seen.path == path)

    def reset(self) -> None:
        self.deals.clear()
        self.companies.clear()
        self.requests.clear()
        self._faults.clear()

    # --- the server ---

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeHubSpot:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake HubSpot API did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    # --- endpoints ---

    async def _deal(self, request: Request) -> JSONResponse:
        early = await self._before(request)
        if early is not None:
            return early
        deal_id = request.path_params["deal_id"]
        deal = self.deals.get(deal_id)
        if deal is None:
            return _not_found(deal_id)
        body = _record(deal_id, deal["properties"], _asked(request, "properties"))
        if "companies" in _asked(request, "associations") and deal["company_ids"]:
            results = []
            for n, company_id in enumerate(deal["company_ids"]):
                # The first company is the primary one; HubSpot lists it under both labels.
                if n == 0:
                    results.append({"id": company_id, "type": "deal_to_company"})
                results.append({"id": company_id, "type": "deal_to_company_unlabeled"})
            body["associations"] = {"companies": {"results": results}}
        return JSONResponse(body)

    async def _company(self, request: Request) -> JSONResponse:
        early = await self._before(request)
        if early is not None:
            return early
        company_id = request.path_params["company_id"]
        company = self.companies.get(company_id)
        if company is None:
            return _not_found(company_id)
        return JSONResponse(_record(company_id, company, _asked(request, "properties")))

    async def _before(self, request: Request) -> JSONResponse | None:
        self.requests.append(
            Seen(
                request.method,
                request.url.path,
                dict(request.query_params),
                request.headers.get("authorization"),
            )
        )
        faults = self._faults.get(request.url.path)
        if faults:
            fault = faults.pop(0)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            return JSONResponse(
                _error(fault.status, "RATE_LIMITS" if fault.status == 429 else "UNAVAILABLE"),
                status_code=fault.status,
                headers=fault.headers,
            )
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                _error(
                    401,
                    "INVALID_AUTHENTICATION",
                    "Authentication credentials not found. This API supports OAuth 2.0 "
                    "authentication and you can find more details at "
                    "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                ),
                status_code=401,
            )
        return None


def _asked(request: Request, name: str) -> set[str]:
    return {part for part in request.query_params.get(name, "").split(",") if part}


def _record(object_id: str, properties: dict[str, Any], asked: set[str]) -> dict[str, Any]:
    stamp = "2027-01-12T09:30:00.000Z"
    # HubSpot returns the asked properties it has, and always these three.
    shown = {name: value for name, value in properties.items() if name in asked}
    shown.update({"createdate": stamp, "hs_lastmodifieddate": stamp, "hs_object_id": object_id})
    return {
        "id": object_id,
        "properties": shown,
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
    }


def _not_found(object_id: str) -> JSONResponse:
    body = _error(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")
    body["context"] = {"id": [object_id]}
    return JSONResponse(body, status_code=404)


def _error(status: int, category: str, message: str | None = None) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message or f"fake HubSpot answers {status}",
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }


# --- deliveries as HubSpot's Webhooks API sends them ---------------------------------------


PORTAL_ID = 24117398
APP_ID = 3251187


def deal_event(
    subscription_type: str = "deal.creation",
    *,
    object_id: int = 18344652431,
    event_id: int = 2841101001,
    subscription_id: int = 2417771,
    occurred_at: int = 1748874539000,
    property_name: str | None = None,
    property_value: str | None = None,
    portal_id: int = PORTAL_ID,
    attempt: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """One element of a Webhooks API body, with the fields HubSpot sends."""
    event: dict[str, Any] = {
        "objectId": object_id,
        "changeSource": "CRM_UI",
        "sourceId": "userId:58213094",
        "eventId": event_id,
        "subscriptionId": subscription_id,
        "portalId": portal_id,
        "appId": APP_ID,
        "occurredAt": occurred_at,
        "subscriptionType": subscription_type,
        "attemptNumber": attempt,
    }
    if property_name is not None:
        event["propertyName"] = property_name
        event["propertyValue"] = property_value
    event.update(extra)
    return event


def body_of(events: list[dict[str, Any]]) -> bytes:
    # HubSpot sends compact JSON; the signature covers these exact bytes.
    return json.dumps(events, separators=(",", ":")).encode()


def hubspot_delivery(
    body: bytes | list[dict[str, Any]],
    secret: str,
    *,
    url: str = PUBLIC_URL,
    received_at: datetime | None = None,
    signed_at: datetime | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> Delivery:
    """A delivery signed as HubSpot signs it (v3 and v1 headers), received `received_at`."""
    raw = body if isinstance(body, bytes) else body_of(body)
    received_at = received_at or datetime.now(UTC)
    signed_at = signed_at or received_at
    timestamp_ms = int(signed_at.timestamp() * 1000)
    sent = {
        **signed_headers(secret, url, raw, timestamp_ms, method=method),
        **(headers or {}),
    }
    return Delivery(
        method=method,
        url=url,
        headers={name.lower(): value for name, value in sent.items()},
        body=raw,
        client_ip="54.174.62.1",
        received_at=received_at,
    )


def unsigned_delivery(
    body: bytes, headers: dict[str, str], *, url: str = PUBLIC_URL, method: str = "POST"
) -> Delivery:
    return Delivery(
        method=method,
        url=url,
        headers={name.lower(): value for name, value in headers.items()},
        body=body,
        client_ip="54.174.62.1",
        received_at=datetime.now(UTC),
    )
