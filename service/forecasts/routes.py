"""`/v1/forecasts/renewals`: the renewal forecast as JSON or CSV, for spreadsheets and BI.

Reads carry an ETag of the exact body; a client sending it back in If-None-Match gets a 304
while nothing in the forecast changed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic_core import to_json

from service.forecasts import service as forecasts_service
from service.forecasts import snapshots as snapshots_service
from service.forecasts.schemas import (
    GroupBy,
    OverrideCreate,
    OverrideList,
    OverrideRead,
    RenewalAccountPage,
    RenewalChangePage,
    RenewalForecast,
    SnapshotAccuracy,
    SnapshotCreate,
    SnapshotPage,
    SnapshotRead,
    Sort,
)
from service.forecasts.settings import ALL_CATEGORIES
from service.kit.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from service.kit.routing import PrefixedRouter
from service.workspaces.auth import SessionDep, Writer, require
from service.workspaces.service import Principal

router = PrefixedRouter(prefix="/v1/forecasts", tags=["forecasts"])

ForecastReader = Annotated[Principal, Depends(require("forecast:read"))]
From = Annotated[
    date | None, Query(alias="from", description="First renewal date in the window; today.")
]
To = Annotated[date | None, Query(description="Last renewal date in the window; from + 365 days.")]
Owner = Annotated[
    str | None,
    Query(
        max_length=200,
        description="Only the renewals this user (the renewal owner's user_id) owns.",
    ),
]
Format = Annotated[
    Literal["json", "csv"] | None,
    Query(alias="format", description="csv, or send `Accept: text/csv`."),
]
CSV = "text/csv; charset=utf-8"
RETENTION_COLUMNS = (
    "expansion_count",
    "expansion_pipeline",
    "expected_renewed_arr",
    "grr",
    "nrr",
)
_CONTENT = {
    "content": {"text/csv": {"schema": {"type": "string"}}},
    "description": "JSON, or CSV with a header row.",
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _CONTENT,
    304: {"description": "Not modified: the If-None-Match ETag is still current."},
}


def _wants_csv(request: Request, format_: str | None) -> bool:
    if format_ is not None:
        return format_ == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


def _respond(
    request: Request, body: bytes, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    etag = _etag(body)
    headers = {
        "ETag": etag,
        "Vary": "Accept",
        "Cache-Control": "private, no-cache",
        **(headers or {}),
    }
    if _not_modified(request, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if media_type == CSV:
        return StreamingResponse(_chunks(body), media_type=media_type, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return out.getvalue().encode()


def _forecast_csv(forecast: RenewalForecast) -> bytes:
    dimensions: list[str] = []
    for dimension in forecast.group_by:
        dimensions += ["owner", "owner_name"] if dimension == "owner" else [dimension]
    sums = ["count", "arr", "weighted_arr", *(f"{c}_arr" for c in ALL_CATEGORIES)]
    retention = RETENTION_COLUMNS if "expansion" in forecast.include else ()
    rows = []
    for row in forecast.rows:
        by_category = row.arr_by_category.model_dump()
        rows.append(
            [
                *(row.group.get(dimension) for dimension in dimensions),
                row.count,
                row.arr,
                row.weighted_arr,
                *(by_category[category] for category in ALL_CATEGORIES),
                row.expected_churn,
                *(getattr(row, name) for name in retention),
            ]
        )
    return _csv([*dimensions, *sums, "expected_churn", *retention], rows)


def _accounts_csv(page: RenewalAccountPage) -> bytes:
    header = [
        "contract_id",
        "account_id",
        "account_name",
        "renewal_date",
        "status",
        "segment",
        "stage",
        "owner",
        "owner_name",
        "currency",
        "arr",
        "arr_reporting",
        "probability",
        "weighted_arr",
        "category",
        "signals",
    ]
    rows = []
    for item in page.items:
        values = item.model_dump()
        values["signals"] = "; ".join(
            signal.signal if signal.effect is None else f"{signal.signal} {signal.effect:+d}"
            for signal in item.signals
        )
        rows.append([values[name] for name in header])
    return _csv(header, rows)


@router.get(
    "/renewals",
    response_model=RenewalForecast,
    response_model_by_alias=True,
    responses=_RESPONSES,
)
async def renewal_forecast(
    request: Request,
    session: SessionDep,
    principal: ForecastReader,
    from_: From = None,
    to: To = None,
    group_by: Annotated[
        list[str] | None,
        Query(
            description="Dimensions, repeated or comma-separated: " + ", ".join(GroupBy.__args__)
        ),
    ] = None,
    include: Annotated[
        list[str] | None,
        Query(
            description="expansion: the net retention view (expansion pipeline closing in the "
            "window, expected renewed ARR, GRR and NRR per row and in the totals)."
        ),
    ] = None,
    owner: Owner = None,
    format_: Format = None,
) -> Response:
    """Renewals in the window grouped by quarter (fiscal), month, owner, segment, category,
    stage or currency: count, ARR, weighted ARR, ARR by category, expected churn, totals."""
    result = await forecasts_service.renewal_forecast(
        session,
        workspace_id=principal.workspace_id,
        starts_on=from_,
        ends_on=to,
        group_by=group_by or (),
        include=include or (),
        owner=owner,
    )
    if _wants_csv(request, format_):
        return _respond(request, _forecast_csv(RenewalForecast.model_validate(result)), CSV)
    # The service's dict already has the response's types and field order (tests compare the
    # bytes with RenewalForecast's own JSON); validating thousands of rows again only to
    # serialise them cost more than the rest of the request's Python.
    return _respond(request, to_json(result), "application/json")


@router.get(
    "/renewals/accounts",
    response_model=RenewalAccountPage,
    response_model_by_alias=True,
    responses=_RESPONSES,
)
async def renewal_accounts(
    request: Request,
    session: SessionDep,
    principal: ForecastReader,
    from_: From = None,
    to: To = None,
    sort: Sort = "renewal_date",
    order: Literal["asc", "desc"] = "asc",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    owner: Owner = None,
    format_: Format = None,
) -> Response:
    """Each renewal with its probability, category and the signals that set them. A CSV page
    carries the next page's cursor in the `Next-Cursor` header."""
    result = await forecasts_service.renewal_accounts(
        session,
        workspace_id=principal.workspace_id,
        starts_on=from_,
        ends_on=to,
        sort=sort,
        descending=order == "desc",
        limit=limit,
        cursor=cursor,
        owner=owner,
    )
    page = RenewalAccountPage.model_validate(result)
    if _wants_csv(request, format_):
        headers = {"Next-Cursor": page.next_cursor} if page.next_cursor else None
        return _respond(request, _accounts_csv(page), CSV, headers)
    return _respond(request, page.model_dump_json(by_alias=True).encode(), "application/json")


@router.post(
    "/renewals/{contract_id}/overrides",
    response_model=OverrideRead,
    status_code=status.HTTP_201_CREATED,
)
async def override_renewal(
    session: SessionDep, principal: Writer, contract_id: uuid.UUID, body: OverrideCreate
) -> object:
    """A CSM's call on a renewal's probability, with the reason; kept for the audit."""
    return await forecasts_service.override_probability(
        session,
        workspace_id=principal.workspace_id,
        contract_id=contract_id,
        probability=body.probability,
        reason=body.reason,
        author=body.author or principal.actor,
    )


@router.get("/renewals/{contract_id}/overrides", response_model=OverrideList)
async def list_renewal_overrides(
    session: SessionDep, principal: ForecastReader, contract_id: uuid.UUID
) -> object:
    items = await forecasts_service.list_overrides(
        session, workspace_id=principal.workspace_id, contract_id=contract_id
    )
    return {"items": items}


# --- history -------------------------------------------------------------------------------


@router.post(
    "/renewals/snapshots", response_model=SnapshotRead, status_code=status.HTTP_201_CREATED
)
async def take_snapshot(
    session: SessionDep, principal: Writer, body: SnapshotCreate | None = None
) -> object:
    """Snapshot the forecast now (the weekly time rule takes them on its own too)."""
    body = body or SnapshotCreate()
    snapshot = await snapshots_service.take_snapshot(
        session,
        workspace_id=principal.workspace_id,
        kind="manual",
        taken_by=principal.actor,
        starts_on=body.from_,
        ends_on=body.to,
    )
    return SnapshotRead.model_validate(snapshot, from_attributes=True)


@router.get("/renewals/snapshots", response_model=SnapshotPage, response_model_by_alias=True)
async def list_snapshots(
    session: SessionDep,
    principal: ForecastReader,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> object:
    """Snapshots, newest first."""
    items, next_cursor = await snapshots_service.list_snapshots(
        session, workspace_id=principal.workspace_id, limit=limit, cursor=cursor
    )
    return {
        "items": [SnapshotRead.model_validate(item, from_attributes=True) for item in items],
        "next_cursor": next_cursor,
    }


@router.get(
    "/renewals/changes",
    response_model=RenewalChangePage,
    response_model_by_alias=True,
    responses={404: {"description": "`since` or `until` is no snapshot of this workspace."}},
)
async def renewal_changes(
    session: SessionDep,
    principal: ForecastReader,
    since: Annotated[uuid.UUID, Query(description="The snapshot to compare from.")],
    until: Annotated[
        uuid.UUID | None, Query(description="The snapshot to compare to; the live forecast.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> object:
    """Each renewal that moved between two snapshots (or since one, to now): old and new
    category, probability and ARR, and the signals added, removed or changed."""
    return await snapshots_service.changes(
        session,
        workspace_id=principal.workspace_id,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get("/renewals/snapshots/{snapshot_id}", response_model=SnapshotRead)
async def get_snapshot(
    session: SessionDep, principal: ForecastReader, snapshot_id: uuid.UUID
) -> object:
    snapshot = await snapshots_service.get_snapshot(
        session, workspace_id=principal.workspace_id, snapshot_id=snapshot_id
    )
    return SnapshotRead.model_validate(snapshot, from_attributes=True)


@router.get("/renewals/snapshots/{snapshot_id}/accuracy", response_model=SnapshotAccuracy)
async def snapshot_accuracy(
    session: SessionDep, principal: ForecastReader, snapshot_id: uuid.UUID
) -> object:
    """How the snapshot's forecast compares with the renewals that have closed since."""
    return await snapshots_service.accuracy(
        session, workspace_id=principal.workspace_id, snapshot_id=snapshot_id
    )
