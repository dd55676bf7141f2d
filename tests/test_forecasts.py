"""Renewal forecasts: probability and category from signals, grouped totals in exact money,
fiscal quarters, currencies, CSV and ETags, overrides, scopes and tenancy."""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import re
import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from service.deals.models import Opportunity
from service.forecasts.schemas import RenewalForecast
from service.forecasts.service import _decode_cursor, _encode_cursor
from service.forecasts.sqldates import WHOLE_WORKSPACE_WORK_MEM, plan_for_these_values
from service.playbooks import document as playbook_document
from service.tasks.models import Task
from tests import factories

FAR = date.today() + timedelta(days=200)  # renewal neither soon nor passed
WINDOW = {
    "from": (FAR - timedelta(days=10)).isoformat(),
    "to": (FAR + timedelta(days=10)).isoformat(),
}


@pytest.fixture
async def reader(client, workspace):
    return await factories.create_key(client, workspace, ["forecast:read"])


async def _contract(client, ws, account_id, arr, *, ends_on=FAR, **fields):
    body = {
        "account_id": account_id,
        "starts_on": (ends_on - timedelta(days=364)).isoformat(),
        "ends_on": ends_on.isoformat(),
        "arr": arr,
        **fields,
    }
    response = await client.post("/v1/contracts", json=body, headers=ws.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _renewal(client, ws, arr="1000.00", *, account=None, contract=None, **account_fields):
    account = account or await factories.create_account(client, ws, **account_fields)
    contract = await _contract(client, ws, account["id"], arr, **(contract or {}))
    return account, contract


async def _accounts(client, ws, **params):
    response = await client.get(
        "/v1/forecasts/renewals/accounts", params={**WINDOW, **params}, headers=ws.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _by_contract(client, ws):
    return {item["contract_id"]: item for item in (await _accounts(client, ws, limit=200))["items"]}


async def _forecast(client, ws, **params):
    response = await client.get(
        "/v1/forecasts/renewals", params={**WINDOW, **params}, headers=ws.headers
    )
    assert response.status_code == 200, response.text
    # The route serialises the service's dict directly: it must be the model's JSON, byte
    # for byte (field order, nulls, decimal places).
    canonical = RenewalForecast.model_validate_json(response.content)
    assert response.content == canonical.model_dump_json(by_alias=True).encode()
    body = response.json()
    for sums in (*body["rows"], body["totals"]):
        amounts = [
            sums["arr"],
            sums["weighted_arr"],
            sums["expected_churn"],
            *sums["arr_by_category"].values(),
        ]
        # Plain decimals with their places (100.00), never an exponent (1E+2).
        assert all(re.fullmatch(r"-?\d+\.\d+", amount) for amount in amounts), sums
    # Rows in the documented order: by each group value as text, nulls last.
    keys = [
        [(value is None, "" if value is None else str(value)) for value in row["group"].values()]
        for row in body["rows"]
    ]
    assert keys == sorted(keys) and len({repr(key) for key in keys}) == len(keys)
    return body


async def _publish_forecast(client, ws, forecast):
    doc = playbook_document.default_document()
    doc["forecast"] = forecast
    response = await client.put("/v1/playbook", json=doc, headers=ws.headers)
    assert response.status_code in (200, 201), response.text


def _effects(item):
    return {signal["signal"]: signal["effect"] for signal in item["signals"]}


async def test_probability_and_category_come_from_listed_signals(client, db, workspace):
    won_opp, plain = await _renewal(client, workspace, contract={"auto_renew": True})
    troubled, troubled_contract = await _renewal(client, workspace)
    expanding, expanding_contract = await _renewal(client, workspace, stage="EXPAND")
    plan = await client.put(
        f"/v1/accounts/{expanding['id']}/plan",
        json={
            "starts_on": (FAR - timedelta(days=364)).isoformat(),
            "outcomes": [
                {
                    "kpi": "Adoption",
                    "baseline": "0",
                    "target": "10",
                    "target_quarter": 2,
                    "status": "achieved",
                },
                {
                    "kpi": "Tickets",
                    "baseline": "10",
                    "target": "5",
                    "target_quarter": 3,
                    "status": "achieved",
                },
                {
                    "kpi": "NPS",
                    "baseline": "0",
                    "target": "50",
                    "target_quarter": 4,
                    "status": "missed",
                },
            ],
        },
        headers=workspace.headers,
    )
    assert plan.status_code == 200, plan.text
    for days_late in (1, 2, 3, 4):  # four overdue tasks; three count
        response = await client.post(
            "/v1/tasks",
            json={
                "account_id": troubled["id"],
                "title": f"Overdue {days_late}",
                "department": "csm",
                "due_on": (date.today() - timedelta(days=days_late)).isoformat(),
            },
            headers=workspace.headers,
        )
        assert response.status_code == 201, response.text
    async with db.sessionmaker() as session, session.begin():
        session.add(
            Task(
                workspace_id=workspace.id,
                account_id=uuid.UUID(troubled["id"]),
                kind="escalation",
                title="Escalation: stuck",
                department="professional_services",
            )
        )
        session.add(
            Opportunity(
                workspace_id=workspace.id,
                account_id=uuid.UUID(won_opp["id"]),
                source="crm",
                external_id="renew-1",
                currency="USD",
                kind="renewal",
                status="open",
                contract_id=uuid.UUID(plain["id"]),
            )
        )
        session.add(
            Opportunity(
                workspace_id=workspace.id,
                account_id=uuid.UUID(expanding["id"]),
                source="crm",
                external_id="renew-2",
                currency="USD",
                kind="renewal",
                status="won",
                contract_id=uuid.UUID(expanding_contract["id"]),
            )
        )

    rows = await _by_contract(client, workspace)
    first = rows[plain["id"]]
    assert _effects(first) == {"base": 50, "auto_renew": 10, "renewal_opportunity": 10}
    assert (first["probability"], first["category"]) == ("0.70", "best_case")

    second = rows[troubled_contract["id"]]
    assert _effects(second) == {"base": 50, "overdue_tasks": -15, "open_escalations": -15}
    assert next(s for s in second["signals"] if s["signal"] == "overdue_tasks")["value"] == 4
    assert (second["probability"], second["category"]) == ("0.20", "churn_risk")

    third = rows[expanding_contract["id"]]
    assert _effects(third) == {
        "base": 50,
        "outcomes_achieved": 10,
        "outcomes_missed": -10,
        "plan_health": -10,  # a missed outcome puts the plan off track
        "stage": 10,
        "renewal_opportunity": 40,
    }
    assert (third["probability"], third["category"]) == ("0.90", "commit")


async def test_decided_renewals_are_won_or_lost(client, workspace):
    _, renewed = await _renewal(client, workspace, "300.00")
    _, churned = await _renewal(client, workspace, "200.00")
    for contract, status in ((renewed, "renewed"), (churned, "churned")):
        response = await client.patch(
            f"/v1/contracts/{contract['id']}", json={"status": status}, headers=workspace.headers
        )
        assert response.status_code == 200, response.text
    rows = await _by_contract(client, workspace)
    assert (rows[renewed["id"]]["category"], rows[renewed["id"]]["probability"]) == ("won", "1.00")
    assert (rows[churned["id"]]["category"], rows[churned["id"]]["probability"]) == ("lost", "0.00")
    assert rows[churned["id"]]["signals"] == [
        {
            "signal": "contract_status",
            "value": "churned",
            "effect": None,
            "reason": None,
            "author": None,
            "at": None,
        }
    ]
    totals = (await _forecast(client, workspace))["totals"]
    assert totals["arr_by_category"]["won"] == "300.00"
    assert totals["arr_by_category"]["lost"] == "200.00"
    assert totals["expected_churn"] == "200.0000"
    assert totals["weighted_arr"] == "300.0000"


async def test_playbook_weights_and_thresholds_change_the_forecast(client, workspace):
    _, contract = await _renewal(client, workspace, contract={"auto_renew": True})
    await _publish_forecast(
        client,
        workspace,
        {
            "base_probability": 30,
            "weights": {"auto_renew": 25},
            "thresholds": {"commit": 55, "best_case": 50},
        },
    )
    row = (await _by_contract(client, workspace))[contract["id"]]
    assert _effects(row) == {"base": 30, "auto_renew": 25}
    assert (row["probability"], row["category"]) == ("0.55", "commit")

    doc = playbook_document.default_document()
    doc["forecast"] = {"thresholds": {"at_risk": 70}, "stage_weights": {"NOWHERE": 5}}
    refused = await client.put("/v1/playbook", json=doc, headers=workspace.headers)
    assert refused.status_code == 422
    assert {error["pointer"] for error in refused.json()["errors"]} == {
        "/forecast/thresholds",
        "/forecast/stage_weights/NOWHERE",
    }


async def test_manual_override_sets_probability_and_is_audited(client, workspace, reader):
    _, contract = await _renewal(client, workspace)
    url = f"/v1/forecasts/renewals/{contract['id']}/overrides"
    denied = await client.post(url, json={"probability": 90, "reason": "x"}, headers=reader.headers)
    assert denied.status_code == 403
    made = await client.post(
        url,
        json={"probability": 90, "reason": "Signed order form in hand", "author": "Casey (CSM)"},
        headers=workspace.headers,
    )
    assert made.status_code == 201, made.text
    row = (await _by_contract(client, workspace))[contract["id"]]
    assert (row["probability"], row["category"]) == ("0.90", "commit")
    override = next(s for s in row["signals"] if s["signal"] == "manual_override")
    assert override["value"] == 90
    assert (override["reason"], override["author"]) == ("Signed order form in hand", "Casey (CSM)")
    assert override["at"] is not None

    cleared = await client.post(
        url, json={"probability": None, "reason": "Back to the signals"}, headers=workspace.headers
    )
    assert cleared.status_code == 201
    row = (await _by_contract(client, workspace))[contract["id"]]
    assert (row["probability"], row["category"]) == ("0.50", "at_risk")
    assert "manual_override" not in _effects(row)

    history = await client.get(url, headers=reader.headers)
    assert [(item["probability"], item["author"]) for item in history.json()["items"]] == [
        (90, "Casey (CSM)"),
        (None, "api_key:admin"),
    ]
    bad = await client.post(
        url, json={"probability": 101, "reason": "x"}, headers=workspace.headers
    )
    assert bad.status_code == 422


async def test_grouped_totals_are_exact_decimals(client, workspace):
    await _renewal(client, workspace, "1000.01", segment="high_touch")
    await _renewal(client, workspace, "333.33", segment="high_touch", contract={"auto_renew": True})
    await _renewal(client, workspace, "0.07", segment="low_touch")
    body = await _forecast(client, workspace, group_by="segment,category")
    assert body["group_by"] == ["segment", "category"]
    rows = {(row["group"]["segment"], row["group"]["category"]): row for row in body["rows"]}
    assert rows[("high_touch", "at_risk")]["arr"] == "1000.01"
    assert rows[("high_touch", "best_case")]["weighted_arr"] == "199.9980"  # 333.33 x 0.60
    assert rows[("low_touch", "at_risk")]["weighted_arr"] == "0.0350"
    totals = body["totals"]
    assert totals["count"] == 3
    assert totals["arr"] == "1333.41"
    # 1000.01 x 0.5 + 333.33 x 0.6 + 0.07 x 0.5
    assert Decimal(totals["weighted_arr"]) == Decimal("500.005") + Decimal("199.998") + Decimal(
        "0.035"
    )
    assert totals["weighted_arr"] == "700.0380"
    assert Decimal(totals["expected_churn"]) == Decimal(totals["arr"]) - Decimal(
        totals["weighted_arr"]
    )
    assert totals["arr_by_category"] == {
        "commit": "0.00",
        "best_case": "333.33",
        "at_risk": "1000.08",
        "churn_risk": "0.00",
        "won": "0.00",
        "lost": "0.00",
    }


async def test_quarters_follow_the_fiscal_year(client, workspace):
    account = await factories.create_account(client, workspace)
    for ends_on in (date(2031, 1, 15), date(2031, 2, 1), date(2031, 4, 30), date(2031, 12, 31)):
        await _contract(client, workspace, account["id"], "100.00", ends_on=ends_on)
    params = {"from": "2031-01-01", "to": "2031-12-31", "group_by": "quarter"}

    body = await _forecast(client, workspace, **params)
    assert [(r["group"]["quarter"], r["count"]) for r in body["rows"]] == [
        ("FY2031-Q1", 2),
        ("FY2031-Q2", 1),
        ("FY2031-Q4", 1),
    ]
    patched = await client.patch(
        "/v1/workspace", json={"fiscal_year_start_month": 2}, headers=workspace.headers
    )
    assert patched.status_code == 200 and patched.json()["fiscal_year_start_month"] == 2
    body = await _forecast(client, workspace, **params)
    # February starts the year that ends next January, named by the year it ends in.
    assert [(r["group"]["quarter"], r["count"]) for r in body["rows"]] == [
        ("FY2031-Q4", 1),
        ("FY2032-Q1", 2),
        ("FY2032-Q4", 1),
    ]
    assert body["fiscal_year_start_month"] == 2
    months = await _forecast(client, workspace, **{**params, "group_by": "month"})
    assert [r["group"]["month"] for r in months["rows"]] == [
        "2031-01",
        "2031-02",
        "2031-04",
        "2031-12",
    ]
    bad = await client.patch(
        "/v1/workspace", json={"fiscal_year_start_month": 13}, headers=workspace.headers
    )
    assert bad.status_code == 422


async def test_group_by_owner_and_stage(client, workspace):
    owners = {"csm": {"user_id": "casey", "name": "Casey"}}
    await _renewal(client, workspace, "10.00", owners=owners, stage="RENEW")
    await _renewal(client, workspace, "20.00", owners=owners, stage="VALUE")
    await _renewal(client, workspace, "40.00", stage="VALUE")
    body = await _forecast(client, workspace, group_by=["owner", "stage"])
    assert [(r["group"], r["arr"]) for r in body["rows"]] == [
        ({"owner": "casey", "owner_name": "Casey", "stage": "RENEW"}, "10.00"),
        ({"owner": "casey", "owner_name": "Casey", "stage": "VALUE"}, "20.00"),
        ({"owner": None, "owner_name": None, "stage": "VALUE"}, "40.00"),
    ]


async def test_mixed_currencies_need_a_rate(client, workspace):
    await _renewal(client, workspace, "100.00")
    await _renewal(client, workspace, "100.00", contract={"currency": "EUR"})
    refused = await client.get("/v1/forecasts/renewals", params=WINDOW, headers=workspace.headers)
    assert refused.status_code == 422
    assert "EUR" in refused.json()["detail"]
    assert refused.json()["missing_rates"] == ["EUR"]
    listed = await client.get(
        "/v1/forecasts/renewals/accounts", params=WINDOW, headers=workspace.headers
    )
    assert listed.status_code == 422

    await _publish_forecast(client, workspace, {"rates": {"EUR": "1.083333"}})
    body = await _forecast(client, workspace, group_by="currency")
    by_currency = {row["group"]["currency"]: row for row in body["rows"]}
    assert Decimal(by_currency["EUR"]["arr"]) == Decimal("108.3333")
    assert Decimal(body["totals"]["arr"]) == Decimal("208.3333")
    assert body["reporting_currency"] == "USD"
    items = (await _accounts(client, workspace, sort="arr", order="desc"))["items"]
    assert [(item["currency"], item["arr"]) for item in items] == [
        ("EUR", "100.00"),
        ("USD", "100.00"),
    ]
    assert Decimal(items[0]["arr_reporting"]) == Decimal("108.3333")


async def test_account_list_sorts_and_pages(client, workspace):
    made = []
    for index, arr in enumerate(("300.00", "100.00", "200.00", "100.00")):
        _, contract = await _renewal(
            client,
            workspace,
            arr,
            contract={"ends_on": FAR + timedelta(days=index), "auto_renew": index == 1},
        )
        made.append(contract["id"])

    async def walk(**params):
        seen, cursor = [], None
        while True:
            page = await _accounts(
                client, workspace, limit=1, **params, **({"cursor": cursor} if cursor else {})
            )
            seen += [item["contract_id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    assert await walk(sort="renewal_date") == made
    assert await walk(sort="renewal_date", order="desc") == made[::-1]
    assert await walk(sort="arr", order="desc") == [made[0], made[2], made[3], made[1]]
    assert await walk(sort="arr") == [made[1], made[3], made[2], made[0]]
    assert (await walk(sort="probability", order="desc"))[0] == made[1]
    bad = await client.get(
        "/v1/forecasts/renewals/accounts",
        params={**WINDOW, "cursor": "not-a-cursor"},
        headers=workspace.headers,
    )
    assert bad.status_code == 422
    # An empty cursor (a client that sends `cursor=` with nothing in it) is the first page.
    for sort in ("renewal_date", "arr", "probability"):
        first = await _accounts(client, workspace, limit=2, sort=sort)
        empty = await _accounts(client, workspace, limit=2, sort=sort, cursor="")
        assert empty == first


async def test_csv_with_header_and_etag(client, workspace, reader):
    await _renewal(client, workspace, "1234.50", segment="high_touch")
    as_csv = await client.get(
        "/v1/forecasts/renewals",
        params={**WINDOW, "group_by": "segment"},
        headers={**reader.headers, "Accept": "text/csv"},
    )
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(as_csv.text)))
    assert table[0][:4] == ["segment", "count", "arr", "weighted_arr"]
    assert table[1][:4] == ["high_touch", "1", "1234.50", "617.2500"]
    accounts_csv = await client.get(
        "/v1/forecasts/renewals/accounts",
        params={**WINDOW, "format": "csv"},
        headers=reader.headers,
    )
    rows = list(csv.DictReader(io.StringIO(accounts_csv.text)))
    assert rows[0]["arr"] == "1234.50" and rows[0]["signals"] == "base +50"

    first = await client.get("/v1/forecasts/renewals", params=WINDOW, headers=reader.headers)
    etag = first.headers["etag"]
    again = await client.get(
        "/v1/forecasts/renewals", params=WINDOW, headers={**reader.headers, "If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b""
    await _renewal(client, workspace, "1.00")
    changed = await client.get(
        "/v1/forecasts/renewals", params=WINDOW, headers={**reader.headers, "If-None-Match": etag}
    )
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["totals"]["count"] == 2


async def test_forecast_needs_the_forecast_scope(client, workspace):
    reader = await factories.create_key(client, workspace, ["read"])
    response = await client.get("/v1/forecasts/renewals", headers=reader.headers)
    assert response.status_code == 403
    assert response.json()["required_scope"] == "forecast:read"


async def test_bad_parameters_are_422(client, workspace):
    for params in (
        {"group_by": "planet"},
        {"from": "2030-02-01", "to": "2030-01-01"},
        {"from": "2030-01-01", "to": "2040-01-01"},
    ):
        response = await client.get(
            "/v1/forecasts/renewals", params=params, headers=workspace.headers
        )
        assert response.status_code == 422, params
    response = await client.get(
        "/v1/forecasts/renewals/accounts", params={"sort": "name"}, headers=workspace.headers
    )
    assert response.status_code == 422


async def test_other_workspace_sees_nothing(client, workspace, other_workspace):
    _, contract = await _renewal(client, workspace, "500.00")
    other_forecast = await _forecast(client, other_workspace)
    assert other_forecast["totals"]["count"] == 0 and other_forecast["rows"] == []
    assert (await _accounts(client, other_workspace))["items"] == []
    url = f"/v1/forecasts/renewals/{contract['id']}/overrides"
    response = await client.post(
        url, json={"probability": 0, "reason": "sabotage"}, headers=other_workspace.headers
    )
    assert response.status_code == 404
    assert (await client.get(url, headers=other_workspace.headers)).status_code == 404
    row = (await _by_contract(client, workspace))[contract["id"]]
    assert row["probability"] == "0.50"


def _cents(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


_example_windows = itertools.count()
renewal_spec = st.fixed_dictionaries(
    {
        "segment": st.sampled_from(["high_touch", "mid_touch", "low_touch"]),
        "stage": st.sampled_from(["VALUE", "RENEW", "EXPAND", "IMPLEMENT"]),
        "owner": st.sampled_from([0, 1, 2, None]),
        "cents": st.integers(1, 10_000_000),
        "day": st.integers(-10, 10),
        "currency": st.sampled_from(["USD", "EUR", "GBP"]),
        "auto_renew": st.booleans(),
    }
)


@settings(
    max_examples=8,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # ~15 requests an example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(renewal_spec, min_size=1, max_size=6))
async def test_grouped_totals_match_the_account_list(client, workspace, specs):
    """Generated renewals: every grouping adds up to the per-account list, to the cent."""
    await _publish_forecast(client, workspace, {"rates": {"EUR": "1.1", "GBP": "1.270001"}})
    # Examples share the workspace: each one renews on its own day, in its own window.
    day = FAR + timedelta(days=400 + 30 * next(_example_windows))
    window = {
        "from": (day - timedelta(days=10)).isoformat(),
        "to": (day + timedelta(days=10)).isoformat(),
    }
    for spec in specs:
        owner = spec["owner"]
        account = await factories.create_account(
            client,
            workspace,
            segment=spec["segment"],
            stage=spec["stage"],
            owners={} if owner is None else {"csm": {"user_id": f"u{owner}", "name": f"U {owner}"}},
        )
        await _contract(
            client,
            workspace,
            account["id"],
            _cents(spec["cents"]),
            ends_on=day + timedelta(days=spec["day"]),
            currency=spec["currency"],
            auto_renew=spec["auto_renew"],
        )
    items = (await _accounts(client, workspace, limit=200, **window))["items"]
    assert len(items) == len(specs)
    arr = sum(Decimal(item["arr_reporting"]) for item in items)
    weighted = sum(Decimal(item["weighted_arr"]) for item in items)
    for group_by in ("quarter,owner,category", "segment,currency", "stage,month", ""):
        body = await _forecast(client, workspace, group_by=group_by, **window)
        assert Decimal(body["totals"]["arr"]) == arr
        assert Decimal(body["totals"]["weighted_arr"]) == weighted
        assert sum(Decimal(row["arr"]) for row in body["rows"]) == arr
        assert sum(Decimal(row["weighted_arr"]) for row in body["rows"]) == weighted
        assert sum(row["count"] for row in body["rows"]) == len(specs)
        for sums in (*body["rows"], body["totals"]):
            arr_of, weighted_of = Decimal(sums["arr"]), Decimal(sums["weighted_arr"])
            assert Decimal(sums["expected_churn"]) == arr_of - weighted_of
            by_category = {name: Decimal(v) for name, v in sums["arr_by_category"].items()}
            assert sum(by_category.values()) == arr_of
            if "category" in sums.get("group", {}):  # all of a category group's ARR is its own
                assert by_category[sums["group"]["category"]] == arr_of
    by_category = (await _forecast(client, workspace, group_by="category", **window))["rows"]
    for row in by_category:
        category = row["group"]["category"]
        expected = sum(
            Decimal(item["arr_reporting"]) for item in items if item["category"] == category
        )
        assert Decimal(row["arr_by_category"][category]) == expected == Decimal(row["arr"])
    for owner in {item["owner"] for item in items}:
        if owner is None:
            continue
        mine = [item for item in items if item["owner"] == owner]
        drilled = await _forecast(client, workspace, owner=owner, **window)
        assert drilled["totals"]["count"] == len(mine)
        assert Decimal(drilled["totals"]["weighted_arr"]) == sum(
            Decimal(item["weighted_arr"]) for item in mine
        )
        listed = await _accounts(client, workspace, owner=owner, **window)
        assert {item["contract_id"] for item in listed["items"]} == {
            item["contract_id"] for item in mine
        }


async def test_net_retention_view_adds_expansion_pipeline(client, db, workspace, other_workspace):
    owners = {"csm": {"user_id": "casey", "name": "Casey"}}
    first, _ = await _renewal(client, workspace, "1000.00", owners=owners)  # 50%
    second, _ = await _renewal(client, workspace, "500.00", contract={"auto_renew": True})  # 60%
    stranger = await factories.create_account(client, other_workspace)
    in_window = FAR
    async with db.sessionmaker() as session, session.begin():
        for n, (account, amount, status, close_date) in enumerate(
            [
                (first, "200.00", "open", in_window),  # x 50% = 100
                (second, "100.00", "won", in_window),  # in full
                (second, "50.00", "lost", in_window),  # not counted
                (first, "999.00", "open", FAR + timedelta(days=300)),  # outside the window
            ]
        ):
            session.add(
                Opportunity(
                    workspace_id=workspace.id,
                    account_id=uuid.UUID(account["id"]),
                    source="crm",
                    external_id=f"exp-{n}",
                    amount=Decimal(amount),
                    currency="USD",
                    close_date=close_date,
                    kind="expansion",
                    status=status,
                )
            )
        session.add(
            Opportunity(
                workspace_id=other_workspace.id,
                account_id=uuid.UUID(stranger["id"]),
                source="crm",
                external_id="exp-other",
                amount=Decimal("5000.00"),
                currency="USD",
                close_date=in_window,
                kind="expansion",
                status="open",
            )
        )
    plain = await _forecast(client, workspace)
    assert plain["totals"]["nrr"] is None and plain["include"] == []

    body = await _forecast(client, workspace, include="expansion", group_by="owner")
    totals = body["totals"]
    assert totals["arr"] == "1500.00"
    assert totals["expected_renewed_arr"] == "800.0000"  # 500 + 300
    assert (totals["expansion_count"], totals["expansion_pipeline"]) == (2, "200.0000")
    assert totals["grr"] == "0.533333"  # 800 / 1500
    assert totals["nrr"] == "0.666667"  # (800 + 200) / 1500
    rows = {row["group"]["owner"]: row for row in body["rows"]}
    assert (rows["casey"]["expansion_pipeline"], rows["casey"]["nrr"]) == ("100.0000", "0.600000")
    assert (rows[None]["expansion_pipeline"], rows[None]["grr"]) == ("100.0000", "0.600000")
    assert rows[None]["nrr"] == "0.800000"  # (300 + 100) / 500

    await _publish_forecast(client, workspace, {"expansion_weight": 100})
    weighted_fully = await _forecast(client, workspace, include="expansion")
    assert weighted_fully["totals"]["expansion_pipeline"] == "300.0000"

    as_csv = await client.get(
        "/v1/forecasts/renewals",
        params={**WINDOW, "include": "expansion", "format": "csv"},
        headers=workspace.headers,
    )
    header = next(csv.reader(io.StringIO(as_csv.text)))
    assert header[-3:] == ["expected_renewed_arr", "grr", "nrr"]

    theirs = await _forecast(client, other_workspace, include="expansion")
    assert theirs["totals"]["count"] == 0 and theirs["totals"]["nrr"] is None
    assert theirs["totals"]["expansion_pipeline"] == "2500.0000"  # theirs alone, x 50%
    bad = await client.get(
        "/v1/forecasts/renewals", params={"include": "churn"}, headers=workspace.headers
    )
    assert bad.status_code == 422


@given(
    value=st.one_of(st.dates(), st.integers(min_value=-(10**15), max_value=10**15)),
    contract_id=st.uuids(),
)
def test_account_page_cursors_are_the_json_pair_and_read_back(value, contract_id):
    """Cursors are base64 of the JSON pair [sort value, contract id]: the same text as before
    they were written by hand, so a cursor handed out by an older process still reads."""
    cursor = _encode_cursor(value, contract_id)
    plain = value.isoformat() if isinstance(value, date) else value
    as_json = json.dumps([plain, str(contract_id)])
    assert cursor == base64.urlsafe_b64encode(as_json.encode()).decode().rstrip("=")
    sort = "renewal_date" if isinstance(value, date) else "arr"
    assert _decode_cursor(cursor, sort) == (value, contract_id)


async def test_whole_workspace_statements_get_memory_for_the_transaction_only(db):
    """PostgreSQL: a custom plan and at least WHOLE_WORKSPACE_WORK_MEM for sorts and hashes,
    never lowering a larger setting, and gone when the transaction ends."""
    if db.dialect != "postgresql":
        pytest.skip("settings of PostgreSQL's")

    async def setting(session, name: str) -> str:
        return (await session.execute(text(f"SHOW {name}"))).scalar_one()

    async with db.sessionmaker() as session, session.begin():
        default = await setting(session, "work_mem")
    async with db.sessionmaker() as session:
        async with session.begin():
            await session.execute(text("SET LOCAL work_mem = '1MB'"))
            await plan_for_these_values(session)
            assert await setting(session, "work_mem") == WHOLE_WORKSPACE_WORK_MEM
            assert await setting(session, "plan_cache_mode") == "force_custom_plan"
        async with session.begin():
            assert await setting(session, "work_mem") == default
            await session.execute(text("SET LOCAL work_mem = '256MB'"))
            await plan_for_these_values(session)
            assert await setting(session, "work_mem") == "256MB"
