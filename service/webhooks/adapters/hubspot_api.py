"""HubSpot CRM v3 lookups for the webhook adapter: a deal, and the company it belongs to.

HubSpot's webhooks carry only ids, so the adapter reads the deal
(`GET /crm/v3/objects/deals/{dealId}?properties=…&associations=companies`) and its
company (`GET /crm/v3/objects/companies/{companyId}?properties=name,domain`) with the
source's private-app or OAuth token.

HubSpot gives a webhook 5 seconds, so every lookup is short and bounded: a per-request
timeout, at most `attempts` tries on 429/5xx/timeouts, waits capped by `max_wait` (a
`Retry-After` is honoured up to that cap), and a time budget for the whole lookup. A lookup that
still fails raises `HubSpotUnavailable`; the framework keeps the delivery's events as
failed and replays them later. Answers are cached for a few minutes per source.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from service.webhooks.adapters.base import MalformedDelivery, read_json

DEFAULT_API_BASE_URL = "https://api.hubapi.com"
DEAL_PROPERTIES = ("dealname", "amount", "closedate", "dealtype", "deal_currency_code")
COMPANY_PROPERTIES = ("name", "domain")

# In v3 association results the primary deal→company association is typed
# "deal_to_company"; other labels ("deal_to_company_unlabeled", custom ones) follow it.
_PRIMARY_DEAL_TO_COMPANY = "deal_to_company"


class HubSpotApiError(Exception):
    """HubSpot refused a lookup for good (bad token, missing scope, an unreadable answer).
    Retrying will not help until someone fixes the source. Never contains the token."""


class HubSpotUnavailable(HubSpotApiError):
    """HubSpot kept answering 429/5xx, or timing out, through the bounded retries.
    Worth replaying later."""


@dataclass(frozen=True)
class Deal:
    id: str
    properties: Mapping[str, str | None]
    company_ids: tuple[str, ...]  # the primary company first

    def prop(self, name: str) -> str | None:
        value = self.properties.get(name)
        return (value.strip() or None) if isinstance(value, str) else None


@dataclass(frozen=True)
class Company:
    id: str
    name: str | None
    domain: str | None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # tries in all, the first included
    timeout: float = 2.0  # seconds per request
    backoff: float = 0.2  # first wait after a 5xx or a timeout; doubles, with jitter
    max_wait: float = 1.5  # cap on one wait, Retry-After included
    budget: float = 3.0  # cap on one lookup's time, tries and waits together


class LookupCache:
    """A small LRU cache whose entries expire after `ttl` seconds."""

    def __init__(
        self, maxsize: int = 1024, ttl: float = 180.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.maxsize = maxsize
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str) -> tuple[bool, Any]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def put(self, key: str, value: Any) -> None:
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class HubSpotClient:
    """Reads deals and companies through `http` (the service's shared httpx client)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token: str,
        base_url: str | None = None,
        cache: LookupCache | None = None,
        cache_namespace: str = "",
        retry: RetryPolicy | None = None,
    ) -> None:
        self._http = http
        self._token = token
        self._base_url = (base_url or DEFAULT_API_BASE_URL).rstrip("/")
        self._cache = cache
        self._namespace = cache_namespace
        self._retry = retry or RetryPolicy()

    async def deal(self, deal_id: str) -> Deal | None:
        """The deal with its properties and associated company ids; None when HubSpot
        does not know it (deleted or merged away)."""
        body = await self._cached_get(
            f"deal:{deal_id}",
            f"/crm/v3/objects/deals/{quote(deal_id, safe='')}",
            {"properties": ",".join(DEAL_PROPERTIES), "associations": "companies"},
        )
        return None if body is None else _deal_from(body, deal_id)

    async def company(self, company_id: str) -> Company | None:
        body = await self._cached_get(
            f"company:{company_id}",
            # The id comes from HubSpot's answer: one path segment, whatever it holds.
            f"/crm/v3/objects/companies/{quote(company_id, safe='')}",
            {"properties": ",".join(COMPANY_PROPERTIES)},
        )
        return None if body is None else _company_from(body, company_id)

    async def _cached_get(
        self, key: str, path: str, params: dict[str, str]
    ) -> dict[str, Any] | None:
        cache_key = f"{self._namespace}:{key}"
        if self._cache is not None:
            hit, value = self._cache.get(cache_key)
            if hit:
                return value
        body = await self._get(path, params)
        # Only found records are cached: a 404 may be a record created a moment ago.
        if body is not None and self._cache is not None:
            self._cache.put(cache_key, body)
        return body

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        retry = self._retry
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        for attempt in range(1, retry.attempts + 1):
            left = retry.budget - (time.monotonic() - started)
            try:
                response = await self._http.get(
                    self._base_url + path,
                    params=params,
                    headers=headers,
                    timeout=max(0.05, min(retry.timeout, left)),
                )
            except httpx.TransportError as exc:  # timeouts, refused connections, resets
                failure = f"GET {path} failed ({type(exc).__name__})"
                wait = _backoff(retry, attempt)
            else:
                if response.status_code == 200:
                    return _json_object(response, path)
                if response.status_code == 404:
                    return None
                if response.status_code != 429 and response.status_code < 500:
                    raise _refusal(response, path)
                failure = f"HubSpot answered {response.status_code} to GET {path}"
                asked = _retry_after(response.headers.get("retry-after"))
                wait = _backoff(retry, attempt) if asked is None else asked
            wait = min(wait, retry.max_wait)
            if attempt == retry.attempts or time.monotonic() - started + wait >= retry.budget:
                break
            await asyncio.sleep(wait)
        raise HubSpotUnavailable(f"{failure}; gave up after {attempt} tries")


def _backoff(retry: RetryPolicy, attempt: int) -> float:
    base = retry.backoff * 2 ** (attempt - 1)
    return base * random.uniform(0.8, 1.2)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _json_object(response: httpx.Response, path: str) -> dict[str, Any]:
    try:
        # Read as strictly as a delivery: its text ends up in events, URLs and the database.
        body = read_json(response.content)
    except MalformedDelivery:
        body = None
    if not isinstance(body, dict):
        raise HubSpotApiError(
            f"HubSpot answered GET {path} with something that is not a JSON object"
        )
    return body


def _refusal(response: httpx.Response, path: str) -> HubSpotApiError:
    status = response.status_code
    if status in (401, 403):
        return HubSpotApiError(
            f"HubSpot refused the source's API token ({status}) for GET {path}: check the "
            "source's api_token and that it has the crm.objects.deals.read and "
            "crm.objects.companies.read scopes"
        )
    try:
        message = read_json(response.content).get("message")
    except (MalformedDelivery, AttributeError):
        message = None
    detail = f": {str(message)[:200]}" if message else ""
    return HubSpotApiError(f"HubSpot answered {status} to GET {path}{detail}")


def _deal_from(body: dict[str, Any], deal_id: str) -> Deal:
    properties = body.get("properties")
    if not isinstance(properties, dict):
        properties = {}
    associations = body.get("associations")
    companies = associations.get("companies") if isinstance(associations, dict) else None
    results = companies.get("results") if isinstance(companies, dict) else None
    primary: list[str] = []
    others: list[str] = []
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, dict) or result.get("id") in (None, ""):
            continue
        company_id = str(result["id"])
        target = primary if result.get("type") == _PRIMARY_DEAL_TO_COMPANY else others
        target.append(company_id)
    ordered = tuple(dict.fromkeys(primary + others))  # keeps the order, drops repeats
    return Deal(id=str(body.get("id") or deal_id), properties=properties, company_ids=ordered)


def _company_from(body: dict[str, Any], company_id: str) -> Company:
    properties = body.get("properties")
    if not isinstance(properties, dict):
        properties = {}

    def text(name: str) -> str | None:
        value = properties.get(name)
        return (value.strip() or None) if isinstance(value, str) else None

    return Company(id=str(body.get("id") or company_id), name=text("name"), domain=text("domain"))
