"""Salesforce as the tests see it: outbound messages built the way Salesforce writes them,
an in-memory StateStore, and a real HTTP listener on 127.0.0.1 wrapping the adapter."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.webhooks.adapters.base import (
    Acknowledgement,
    AdapterContext,
    Delivery,
    MalformedDelivery,
    SourceConfig,
    VerificationFailed,
)

# The headers Salesforce sends with an outbound message (SOAPAction is empty).
SALESFORCE_HEADERS = {
    "content-type": "text/xml; charset=utf-8",
    "soapaction": '""',
    "user-agent": "Jakarta Commons-HttpClient/3.1",
}
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def with_checksum(id15: str) -> str:
    """The 18-character form, computed here independently of the adapter."""
    out = id15
    for block in (id15[0:5], id15[5:10], id15[10:15]):
        out += _ALPHABET[sum(1 << i for i, c in enumerate(block) if c.isupper())]
    return out


def sfid(prefix: str, number: int) -> str:
    """A well-formed 18-character id with the given key prefix (006 opportunity, 001 …)."""
    return with_checksum(f"{prefix}Dn0{number:09d}")


ORG_15 = "00D5g000004XyZ1"
ORG_18 = "00D5g000004XyZ1EAK"  # hand-checked: blocks 00D5g → E, 00000 → A, 4XyZ1 → K
ACTION_ID = "04k5g000000TqRxAAK"


@dataclass(frozen=True)
class SObject:
    notification_id: str
    type: str  # "Opportunity", "Account", …; "" for a deleted record (no sObject)
    fields: Mapping[str, str | None]


def outbound_message(
    notifications: list[SObject],
    *,
    organization_id: str = ORG_18,
    action_id: str = ACTION_ID,
) -> bytes:
    """A SOAP outbound message as Salesforce writes it (namespaces and layout of captures)."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        " <soapenv:Body>\n"
        '  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">\n'
        f"   <OrganizationId>{organization_id}</OrganizationId>\n"
        f"   <ActionId>{action_id}</ActionId>\n"
        '   <SessionId xsi:nil="true"/>\n'
        "   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/61.0/"
        f"{organization_id[:15]}</EnterpriseUrl>\n"
        "   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/61.0/"
        f"{organization_id[:15]}</PartnerUrl>\n"
    ]
    for item in notifications:
        parts.append(f"   <Notification>\n    <Id>{item.notification_id}</Id>\n")
        if item.type:
            parts.append(
                f"    <sObject xsi:type={quoteattr('sf:' + item.type)} "
                'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">\n'
            )
            # sf:Id first, then alphabetical, as observed in captures.
            names = sorted(item.fields, key=lambda name: (name != "Id", name))
            for name in names:
                value = item.fields[name]
                if value is None:
                    parts.append(f'     <sf:{name} xsi:nil="true"/>\n')
                else:
                    parts.append(f"     <sf:{name}>{escape(value)}</sf:{name}>\n")
            parts.append("    </sObject>\n")
        parts.append("   </Notification>\n")
    parts.append("  </notifications>\n </soapenv:Body>\n</soapenv:Envelope>\n")
    return "".join(parts).encode()


def opportunity(notification_id: str, **fields: str | None) -> SObject:
    return SObject(notification_id, "Opportunity", fields)


class MemoryState:
    """The StateStore, in memory; counts writes so tests can see that nothing changed."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.puts = 0

    async def get(self, key: str) -> dict[str, Any] | None:
        value = self.data.get(key)
        return None if value is None else _copy(value)

    async def put(self, key: str, state: dict[str, Any]) -> None:
        self.puts += 1
        self.data[key] = _copy(state)


def _copy(value: Any) -> Any:
    # A JSON round trip in spirit: stored state must not share objects with the caller.
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def source_config(**mapping: Any) -> SourceConfig:
    return SourceConfig(
        id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        kind="salesforce",
        secrets=("unused-by-salesforce",),
        mapping={"organization_id": ORG_15, **mapping},
    )


def delivery(body: bytes, *, client_ip: str | None = "13.108.0.10") -> Delivery:
    return Delivery(
        method="POST",
        url="https://qb.example/webhooks/5f0c7d0e-salesforce",
        headers=dict(SALESFORCE_HEADERS),
        body=body,
        client_ip=client_ip,
        received_at=datetime(2027, 3, 28, 15, 0, tzinfo=UTC),
    )


# --- a real listener ---------------------------------------------------------------------


@dataclass
class Listener:
    url: str
    state: MemoryState
    seen: list[list[Any]] = field(default_factory=list)  # the Mapped lists, per request


def _app(adapter: Any, source: SourceConfig, listener: Listener) -> Starlette:
    """What the ingestion endpoint does with an adapter, in miniature."""

    async def receive(request: Request) -> Response:
        body = await request.body()
        incoming = Delivery(
            method=request.method,
            url=str(request.url),
            headers={key.lower(): value for key, value in request.headers.items()},
            body=body,
            client_ip=request.client.host if request.client else None,
            received_at=datetime.now(UTC),
        )
        answer: Acknowledgement | None
        try:
            adapter.verify(incoming, source)
            async with httpx.AsyncClient() as http:
                context = AdapterContext(http=http, state=listener.state, now=datetime.now(UTC))
                results = await adapter.map(incoming, source, context)
        except VerificationFailed as error:
            answer = adapter.reject(401, str(error))
        except MalformedDelivery as error:
            answer = adapter.reject(400, str(error))
        else:
            listener.seen.append(results)
            answer = adapter.acknowledge(results)
        assert answer is not None
        return Response(answer.body, status_code=answer.status, media_type=answer.media_type)

    return Starlette(routes=[Route("/webhooks/{source_id}", receive, methods=["POST"])])


@contextmanager
def running_listener(adapter: Any, source: SourceConfig) -> Iterator[Listener]:
    """Serve the adapter with uvicorn on a free port of 127.0.0.1, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    listener = Listener(url=f"http://127.0.0.1:{port}/webhooks/{source.id}", state=MemoryState())
    config = uvicorn.Config(
        _app(adapter, source, listener), log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the listener did not start")
        time.sleep(0.01)
    try:
        yield listener
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
