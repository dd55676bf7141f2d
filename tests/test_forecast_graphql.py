"""`renewalForecast` and `renewalAccounts` in GraphQL: the same numbers as REST, the
forecast:read scope, and nothing from another workspace."""

from __future__ import annotations

from datetime import date, timedelta

from tests import factories

FAR = date.today() + timedelta(days=200)
WINDOW = {
    "from": (FAR - timedelta(days=10)).isoformat(),
    "to": (FAR + timedelta(days=10)).isoformat(),
}

FORECAST = """
query ($from: Date, $to: Date, $groupBy: [ForecastDimension!], $include: [ForecastView!]) {
  renewalForecast(from: $from, to: $to, groupBy: $groupBy, include: $include) {
    from to reportingCurrency groupBy
    rows { group { segment owner ownerName } count arr weightedArr nrr
           arrByCategory { atRisk bestCase } }
    totals { count arr weightedArr expectedChurn grr nrr expansionPipeline }
  }
}
"""

ACCOUNTS = """
query ($from: Date, $to: Date, $first: Int, $after: String, $owner: String) {
  renewalAccounts(from: $from, to: $to, sort: ARR, descending: true, first: $first,
                  after: $after, owner: $owner) {
    edges { cursor node { contractId accountName arr probability category
                          signals { signal value effect } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def gql(client, ws, query, variables):
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=ws.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _renewal(client, ws, arr, **account_fields):
    account = await factories.create_account(client, ws, **account_fields)
    response = await client.post(
        "/v1/contracts",
        json={
            "account_id": account["id"],
            "starts_on": (FAR - timedelta(days=364)).isoformat(),
            "ends_on": FAR.isoformat(),
            "arr": arr,
            "auto_renew": arr == "300.00",
        },
        headers=ws.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_renewal_forecast_matches_rest(client, workspace):
    owners = {"csm": {"user_id": "casey", "name": "Casey"}}
    await _renewal(client, workspace, "100.00", segment="high_touch", owners=owners)
    await _renewal(client, workspace, "300.00", segment="low_touch")
    reader = await factories.create_key(client, workspace, ["forecast:read"])

    body = await gql(
        client,
        reader,
        FORECAST,
        {**WINDOW, "groupBy": ["SEGMENT", "OWNER"], "include": ["EXPANSION"]},
    )
    assert "errors" not in body, body
    forecast = body["data"]["renewalForecast"]
    rest = await client.get(
        "/v1/forecasts/renewals",
        params={**WINDOW, "group_by": "segment,owner", "include": "expansion"},
        headers=reader.headers,
    )
    expected = rest.json()
    assert forecast["groupBy"] == ["SEGMENT", "OWNER"]
    assert forecast["totals"] == {
        "count": 2,
        "arr": expected["totals"]["arr"],
        "weightedArr": expected["totals"]["weighted_arr"],
        "expectedChurn": expected["totals"]["expected_churn"],
        "grr": expected["totals"]["grr"],
        "nrr": expected["totals"]["nrr"],
        "expansionPipeline": "0.0000",
    }
    assert forecast["totals"]["weightedArr"] == "230.0000"  # 100 x 0.5 + 300 x 0.6
    assert [
        (row["group"]["segment"], row["group"]["owner"], row["arr"]) for row in forecast["rows"]
    ] == [("high_touch", "casey", "100.00"), ("low_touch", None, "300.00")]
    assert forecast["rows"][1]["arrByCategory"]["bestCase"] == "300.00"


async def test_renewal_accounts_page_with_signals(client, workspace):
    made = [await _renewal(client, workspace, arr) for arr in ("100.00", "300.00", "200.00")]
    seen, after = [], None
    while True:
        body = await gql(client, workspace, ACCOUNTS, {**WINDOW, "first": 2, "after": after})
        assert "errors" not in body, body
        page = body["data"]["renewalAccounts"]
        seen += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert [node["contractId"] for node in seen] == [made[1]["id"], made[2]["id"], made[0]["id"]]
    top = seen[0]
    assert (top["probability"], top["category"]) == ("0.60", "best_case")
    assert {(s["signal"], s["value"], s["effect"]) for s in top["signals"]} == {
        ("base", None, 50),
        ("auto_renew", "true", 10),
    }


async def test_needs_the_forecast_scope(client, workspace):
    reader = await factories.create_key(client, workspace, ["read"])
    body = await gql(client, reader, FORECAST, WINDOW)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "permission_denied"
    body = await gql(client, reader, ACCOUNTS, WINDOW)
    assert body["errors"][0]["extensions"]["code"] == "permission_denied"


async def test_other_workspace_sees_nothing(client, workspace, other_workspace):
    await _renewal(client, workspace, "100.00", owners={"csm": {"user_id": "casey"}})
    body = await gql(client, other_workspace, FORECAST, WINDOW)
    assert body["data"]["renewalForecast"]["totals"]["count"] == 0
    assert body["data"]["renewalForecast"]["rows"] == []
    for owner in (None, "casey"):
        body = await gql(client, other_workspace, ACCOUNTS, {**WINDOW, "owner": owner})
        assert body["data"]["renewalAccounts"]["edges"] == []
    mine = await gql(client, workspace, ACCOUNTS, {**WINDOW, "owner": "casey"})
    assert len(mine["data"]["renewalAccounts"]["edges"]) == 1


async def test_bad_arguments_are_typed_errors(client, workspace):
    body = await gql(client, workspace, FORECAST, {"from": "2030-02-01", "to": "2030-01-01"})
    assert body["errors"][0]["extensions"]["code"] == "invalid_input"
    body = await gql(client, workspace, ACCOUNTS, {**WINDOW, "after": "garbage"})
    assert body["errors"][0]["extensions"]["code"] == "invalid_input"
