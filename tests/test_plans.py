"""Annual success plans: three key outcomes on a quarterly timeline, measured against the
calendar. Plans here start in 2020 and health is asked `as_of` fixed days, never today."""

import uuid
from datetime import date
from decimal import Decimal

import pytest

from service.errors import Conflict
from service.plans import service as plans_service
from tests import factories

OUTCOMES = [
    {
        "kpi": "Weekly active users",
        "baseline": 10,
        "target": 50,
        "unit": "users",
        "target_quarter": 2,
    },
    {"kpi": "Support tickets a month", "baseline": "200", "target": "100", "target_quarter": 4},
    {"kpi": "Teams onboarded", "baseline": 1, "target": 4, "target_quarter": 3},
]


def _plan_url(account_id):
    return f"/v1/accounts/{account_id}/plan"


def _measurements_url(account_id, outcome_id):
    return f"/v1/accounts/{account_id}/plan/outcomes/{outcome_id}/measurements"


async def _put(client, ws, account_id, expected=200, **body):
    response = await client.put(_plan_url(account_id), json=body, headers=ws.headers)
    assert response.status_code == expected, response.text
    return response.json()


async def _get(client, ws, account_id, expected=200, **params):
    response = await client.get(_plan_url(account_id), params=params, headers=ws.headers)
    assert response.status_code == expected, response.text
    return response.json()


async def _measure(client, ws, account_id, outcome_id, value, measured_on, expected=201):
    response = await client.post(
        _measurements_url(account_id, outcome_id),
        json={"value": value, "measured_on": measured_on},
        headers=ws.headers,
    )
    assert response.status_code == expected, response.text
    return response.json()


async def _account_with_plan(client, ws, outcomes=OUTCOMES, **body):
    account = await factories.create_account(client, ws, name="Acme")
    plan = await _put(client, ws, account["id"], starts_on="2020-01-01", outcomes=outcomes, **body)
    return account, plan


async def test_put_creates_the_first_year_with_the_default_timeline(client, workspace):
    account, plan = await _account_with_plan(client, workspace)
    assert plan["account_id"] == account["id"]
    assert (plan["contract_year"], plan["starts_on"], plan["ends_on"]) == (
        1,
        "2020-01-01",
        "2020-12-31",
    )
    assert [(item["quarter"], item["focus"]) for item in plan["timeline"]] == [
        (1, "onboarding"),
        (2, "value"),
        (3, "expansion"),
        (4, "renewal"),
    ]
    assert plan["touchpoints"] == [
        {"name": "Quarterly business review", "every_quarters": 1, "department": "csm"}
    ]
    assert [(due["quarter"], due["due_on"]) for due in plan["schedule"]] == [
        (1, "2020-03-31"),
        (2, "2020-06-30"),
        (3, "2020-09-30"),
        (4, "2020-12-31"),
    ]
    outcomes = plan["outcomes"]
    assert [o["position"] for o in outcomes] == [1, 2, 3]
    assert [o["kpi"] for o in outcomes] == [o["kpi"] for o in OUTCOMES]
    assert Decimal(outcomes[1]["baseline"]) == 200 and Decimal(outcomes[1]["target"]) == 100
    assert outcomes[0]["unit"] == "users"
    assert outcomes[0]["target_date"] == "2020-06-30"
    assert all(o["status"] == "not_started" for o in outcomes)
    assert all(o["latest_measurement"] is None and o["progress"] is None for o in outcomes)

    read = await _get(client, workspace, account["id"], as_of="2020-02-01")
    assert read["id"] == plan["id"]
    assert [o["id"] for o in read["outcomes"]] == [o["id"] for o in outcomes]
    assert read["as_of"] == "2020-02-01"
    assert read["health"] == "on_track"
    # Past the first quarter, an outcome nobody measured is at risk.
    late = await _get(client, workspace, account["id"], as_of="2020-04-01")
    assert late["health"] == "at_risk"
    assert {o["health"] for o in late["outcomes"]} == {"at_risk"}


async def test_put_with_own_timeline_touchpoints_and_dates(client, workspace):
    account = await factories.create_account(client, workspace)
    plan = await _put(
        client,
        workspace,
        account["id"],
        starts_on="2020-03-15",
        ends_on="2021-03-31",
        timeline=[
            {"quarter": 4, "focus": "renewal"},
            {"quarter": 1, "focus": "onboarding", "description": "Kickoff and training"},
        ],
        touchpoints=[{"name": "Exec sponsor call", "every_quarters": 2, "department": "sales"}],
    )
    assert plan["ends_on"] == "2021-03-31"
    assert [item["quarter"] for item in plan["timeline"]] == [1, 4]
    assert plan["outcomes"] == []
    assert plan["health"] == "on_track"
    assert [(due["quarter"], due["due_on"]) for due in plan["schedule"]] == [
        (2, "2020-09-14"),
        (4, "2021-03-31"),
    ]
    # Omitted parts stay; an empty list clears.
    again = await _put(client, workspace, account["id"], touchpoints=[])
    assert again["touchpoints"] == [] and again["schedule"] == []
    assert [item["quarter"] for item in again["timeline"]] == [1, 4]
    assert again["ends_on"] == "2021-03-31"


async def test_fourth_outcome_is_refused(client, workspace):
    account = await factories.create_account(client, workspace)
    four = [*OUTCOMES, {"kpi": "NPS", "baseline": 20, "target": 40, "target_quarter": 4}]
    body = await _put(client, workspace, account["id"], 422, starts_on="2020-01-01", outcomes=four)
    assert body["code"] == "invalid_input"
    assert "a success plan has at most three key outcomes" in body["detail"]
    assert body["errors"][0]["field"] == "outcomes"
    await _get(client, workspace, account["id"], 404)  # nothing was created

    _, plan = await _account_with_plan(client, workspace)
    kept = [{"id": o["id"], **src} for o, src in zip(plan["outcomes"], OUTCOMES, strict=True)]
    await _put(client, workspace, plan["account_id"], 422, outcomes=[*kept, four[3]])
    read = await _get(client, workspace, plan["account_id"])
    assert len(read["outcomes"]) == 3


async def test_put_keeps_outcomes_by_id_with_their_measurements(client, workspace):
    account, plan = await _account_with_plan(client, workspace)
    first, second, third = plan["outcomes"]
    await _measure(client, workspace, account["id"], first["id"], 30, "2020-02-01")
    await _measure(client, workspace, account["id"], third["id"], 2, "2020-02-01")

    replaced = await _put(
        client,
        workspace,
        account["id"],
        outcomes=[
            {"id": third["id"], **OUTCOMES[2], "status": "achieved"},
            {"id": first["id"], **OUTCOMES[0], "kpi": "Daily active users"},
            {"kpi": "NPS", "baseline": -5, "target": 30, "target_quarter": 4},
        ],
    )
    outcomes = replaced["outcomes"]
    assert [o["id"] for o in outcomes[:2]] == [third["id"], first["id"]]
    assert outcomes[2]["id"] not in {first["id"], second["id"], third["id"]}
    assert [o["position"] for o in outcomes] == [1, 2, 3]
    assert outcomes[0]["status"] == "achieved"
    assert outcomes[1]["kpi"] == "Daily active users"
    assert outcomes[1]["status"] == "in_progress"  # kept, since not given
    assert outcomes[2]["status"] == "not_started"
    assert Decimal(outcomes[2]["baseline"]) == -5

    items = (
        await client.get(_measurements_url(account["id"], first["id"]), headers=workspace.headers)
    ).json()["items"]
    assert [Decimal(m["value"]) for m in items] == [30]
    # The outcome left out is gone, with its measurements.
    response = await client.get(
        _measurements_url(account["id"], second["id"]), headers=workspace.headers
    )
    assert response.status_code == 404

    cleared = await _put(client, workspace, account["id"], outcomes=[])
    assert cleared["outcomes"] == []


async def test_measurements_move_health(client, workspace):
    account, plan = await _account_with_plan(client, workspace, outcomes=OUTCOMES[:1])
    outcome = plan["outcomes"][0]  # 10 → 50 weekly active users by the end of Q2 (2020-06-30)
    url = account["id"]

    measurement = await _measure(client, workspace, url, outcome["id"], "30", "2020-04-01")
    assert measurement["outcome_id"] == outcome["id"]
    assert Decimal(measurement["value"]) == 30
    assert measurement["measured_on"] == "2020-04-01"
    assert measurement["recorded_by"] == "api_key:admin"

    # Half way on 2020-04-01, when 91 of 181 days were expected: on track.
    read = await _get(client, workspace, url, as_of="2020-04-01")
    view = read["outcomes"][0]
    assert view["status"] == "in_progress"  # the first measurement started it
    assert Decimal(view["latest_value"]) == 30
    assert view["latest_measurement"]["id"] == measurement["id"]
    assert Decimal(view["progress"]) == Decimal("0.5")
    assert Decimal(view["expected_progress"]) == Decimal("0.5028")
    assert (view["health"], read["health"]) == ("on_track", "on_track")

    # Still half way when the quarter is over: off track.
    read = await _get(client, workspace, url, as_of="2020-06-30")
    assert (read["outcomes"][0]["health"], read["health"]) == ("off_track", "off_track")

    await _measure(client, workspace, url, outcome["id"], "40", "2020-06-15")
    read = await _get(client, workspace, url, as_of="2020-06-30")
    assert Decimal(read["outcomes"][0]["progress"]) == Decimal("0.75")
    assert read["health"] == "at_risk"

    await _measure(client, workspace, url, outcome["id"], "50", "2020-06-20")
    read = await _get(client, workspace, url, as_of="2020-06-30")
    assert read["health"] == "on_track"
    assert read["outcomes"][0]["health_reason"] == "target reached"

    # Looking back, later measurements do not count yet.
    read = await _get(client, workspace, url, as_of="2020-05-01")
    assert Decimal(read["outcomes"][0]["latest_value"]) == 30


async def test_reduce_target_and_worst_outcome_sets_plan_health(client, workspace):
    account, plan = await _account_with_plan(client, workspace, outcomes=OUTCOMES[:2])
    users, tickets = plan["outcomes"]
    await _measure(client, workspace, account["id"], users["id"], 50, "2020-06-01")
    await _measure(client, workspace, account["id"], tickets["id"], 150, "2020-07-01")
    read = await _get(client, workspace, account["id"], as_of="2020-07-01")
    users_view, tickets_view = read["outcomes"]
    assert users_view["health"] == "on_track"
    # 200 → 100 tickets by year end: at 150 on 2020-07-01 half way, 0.4986 expected.
    assert Decimal(tickets_view["progress"]) == Decimal("0.5")
    assert tickets_view["health"] == "on_track"
    await _measure(client, workspace, account["id"], tickets["id"], 230, "2020-07-01")
    read = await _get(client, workspace, account["id"], as_of="2020-07-01")
    assert read["outcomes"][1]["progress"] is not None
    assert Decimal(read["outcomes"][1]["progress"]) == 0
    assert read["outcomes"][1]["health"] == "off_track"
    assert read["health"] == "off_track"


async def test_kpi_numbers_are_exact_to_four_places(client, workspace):
    outcome = {"kpi": "Revenue", "baseline": "0.0001", "target": "98765432101.2345"}
    account, plan = await _account_with_plan(
        client, workspace, outcomes=[{**outcome, "target_quarter": 4}]
    )
    stored = plan["outcomes"][0]
    assert (stored["baseline"], stored["target"]) == ("0.0001", "98765432101.2345")
    value = await _measure(client, workspace, account["id"], stored["id"], "0.1234", "2020-01-02")
    assert value["value"] == "0.1234"
    await _measure(client, workspace, account["id"], stored["id"], "0.12345", "2020-01-02", 422)


async def test_measurements_list_pages(client, workspace):
    account, plan = await _account_with_plan(client, workspace, outcomes=OUTCOMES[:1])
    outcome_id = plan["outcomes"][0]["id"]
    for day, value in (("2020-01-10", 12), ("2020-01-05", 11), ("2020-01-20", 13)):
        await _measure(client, workspace, account["id"], outcome_id, value, day)
    url = _measurements_url(account["id"], outcome_id)
    first = (await client.get(url, params={"limit": 2}, headers=workspace.headers)).json()
    assert [Decimal(m["value"]) for m in first["items"]] == [12, 11]  # in recording order
    assert first["next_cursor"]
    rest = (
        await client.get(
            url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=workspace.headers
        )
    ).json()
    assert [Decimal(m["value"]) for m in rest["items"]] == [13]
    assert rest["next_cursor"] is None
    # The latest measurement is the one measured last, not the one recorded last.
    read = await _get(client, workspace, account["id"], as_of="2020-02-01")
    assert Decimal(read["outcomes"][0]["latest_value"]) == 13


async def test_scaffold_is_idempotent_per_contract_year(client, db, workspace):
    account = await factories.create_account(client, workspace)
    account_id = uuid.UUID(account["id"])

    async def scaffold(starts_on, **options):
        async with db.sessionmaker() as session, session.begin():
            plan = await plans_service.scaffold_plan(
                session,
                workspace_id=workspace.id,
                account_id=account_id,
                starts_on=starts_on,
                **options,
            )
            return plan.id, plan.contract_year

    first = await scaffold(date(2020, 1, 1))
    assert first[1] == 1
    assert await scaffold(date(2020, 1, 1)) == first
    assert await scaffold(date(2020, 8, 1)) == first  # still in year 1
    second = await scaffold(date(2021, 1, 1), touchpoints=[])
    assert second[1] == 2 and second[0] != first[0]
    assert await scaffold(date(2021, 1, 1)) == second
    with pytest.raises(Conflict):
        await scaffold(date(2019, 6, 1))

    latest = await _get(client, workspace, account["id"], as_of="2021-02-01")
    assert (latest["contract_year"], latest["starts_on"], latest["touchpoints"]) == (
        2,
        "2021-01-01",
        [],
    )
    year_one = await _get(client, workspace, account["id"], year=1)
    assert year_one["id"] == str(first[0])
    assert len(year_one["timeline"]) == 4
    await _get(client, workspace, account["id"], 404, year=3)
    # PUT edits the latest year, or the one asked for.
    await _put(client, workspace, account["id"], outcomes=OUTCOMES[:1])
    assert len((await _get(client, workspace, account["id"], year=2))["outcomes"]) == 1
    assert (await _get(client, workspace, account["id"], year=1))["outcomes"] == []


async def test_moving_a_year_onto_another_is_a_conflict(client, db, workspace):
    account, _ = await _account_with_plan(client, workspace)
    async with db.sessionmaker() as session, session.begin():
        await plans_service.scaffold_plan(
            session,
            workspace_id=workspace.id,
            account_id=uuid.UUID(account["id"]),
            starts_on=date(2021, 1, 1),
        )
    response = await client.put(
        _plan_url(account["id"]), json={"starts_on": "2020-12-01"}, headers=workspace.headers
    )
    assert response.status_code == 409, response.text
    moved = await _put(client, workspace, account["id"], starts_on="2021-02-01")
    assert (moved["starts_on"], moved["ends_on"]) == ("2021-02-01", "2022-01-31")


async def test_tenancy(client, workspace, other_workspace):
    account, plan = await _account_with_plan(client, workspace)
    outcome_id = plan["outcomes"][0]["id"]
    other = other_workspace
    await _get(client, other, account["id"], 404)
    await _put(client, other, account["id"], 404, starts_on="2020-01-01", outcomes=[])
    await _measure(client, other, account["id"], outcome_id, 20, "2020-02-01", 404)
    response = await client.get(_measurements_url(account["id"], outcome_id), headers=other.headers)
    assert response.status_code == 404
    # The other workspace's own account cannot reach this outcome either.
    foreign = await factories.create_account(client, other)
    await _put(client, other, foreign["id"], starts_on="2020-01-01")
    await _measure(client, other, foreign["id"], outcome_id, 20, "2020-02-01", 404)

    read = await _get(client, workspace, account["id"])
    assert read["outcomes"] == plan["outcomes"]
    assert read["ends_on"] == "2020-12-31"


async def test_not_found(client, workspace):
    missing = str(uuid.uuid4())
    body = await _get(client, workspace, missing, 404)
    assert missing in body["detail"]
    await _put(client, workspace, missing, 404, starts_on="2020-01-01")

    account, plan = await _account_with_plan(client, workspace)
    await _measure(client, workspace, account["id"], missing, 1, "2020-01-02", 404)
    response = await client.get(
        _measurements_url(account["id"], missing), headers=workspace.headers
    )
    assert response.status_code == 404
    # An outcome of another account of the same workspace.
    other = await factories.create_account(client, workspace)
    outcome_id = plan["outcomes"][0]["id"]
    await _measure(client, workspace, other["id"], outcome_id, 1, "2020-01-02", 404)
    body = await _get(client, workspace, other["id"], 404)
    assert "starts_on" in body["detail"]


async def test_first_plan_needs_a_start(client, workspace):
    account = await factories.create_account(client, workspace)
    body = await _put(client, workspace, account["id"], 422, outcomes=OUTCOMES[:1])
    assert body["errors"][0]["field"] == "starts_on"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timeline": [{"quarter": -1, "focus": "onboarding"}]}, "timeline.0.quarter"),
        ({"timeline": [{"quarter": 5, "focus": "renewal"}]}, "timeline.0.quarter"),
        ({"timeline": [{"quarter": 1, "focus": ""}]}, "timeline.0.focus"),
        ({"outcomes": [{**OUTCOMES[0], "target_quarter": 5}]}, "outcomes.0.target_quarter"),
        ({"outcomes": [{**OUTCOMES[0], "target_quarter": 0}]}, "outcomes.0.target_quarter"),
        ({"outcomes": [{**OUTCOMES[0], "status": "done"}]}, "outcomes.0.status"),
        ({"outcomes": [{**OUTCOMES[0], "baseline": "1.00001"}]}, "outcomes.0.baseline"),
        ({"outcomes": [{**OUTCOMES[0], "target": "NaN"}]}, "outcomes.0.target"),
        (
            {"touchpoints": [{"name": "QBR", "every_quarters": 0, "department": "csm"}]},
            "touchpoints.0.every_quarters",
        ),
        ({"starts_on": "2020-13-01"}, "starts_on"),
        ({"starts_on": "next monday"}, "starts_on"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_bodies(client, workspace, body, field):
    account = await factories.create_account(client, workspace)
    response = await _put(
        client, workspace, account["id"], 422, **{"starts_on": "2020-01-01", **body}
    )
    assert response["code"] == "validation_failed"
    assert field in [error["field"] for error in response["errors"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"touchpoints": [{"name": "QBR", "every_quarters": 1, "department": "legal"}]},
            "touchpoints.0.department",
        ),
        ({"outcomes": [{**OUTCOMES[0], "target": 10}]}, "outcomes.0.target"),
        ({"outcomes": [{**OUTCOMES[0], "id": str(uuid.uuid4())}]}, "outcomes.0.id"),
        ({"ends_on": "2019-12-31"}, "ends_on"),
        ({"ends_on": "2023-01-01"}, "ends_on"),
        ({"starts_on": "1066-10-14"}, "starts_on"),
    ],
)
async def test_rule_breaking_bodies(client, workspace, body, field):
    account = await factories.create_account(client, workspace)
    response = await _put(
        client, workspace, account["id"], 422, **{"starts_on": "2020-01-01", **body}
    )
    assert response["code"] == "invalid_input"
    assert response["errors"][0]["field"] == field
    await _get(client, workspace, account["id"], 404)


async def test_bad_measurements(client, workspace):
    account, plan = await _account_with_plan(client, workspace)
    url = _measurements_url(account["id"], plan["outcomes"][0]["id"])
    for body in (
        {"value": 1, "measured_on": "2020-02-30"},
        {"value": "lots", "measured_on": "2020-02-01"},
        {"measured_on": "2020-02-01"},
        {"value": 1, "measured_on": "2020-02-01", "by": "me"},
    ):
        response = await client.post(url, json=body, headers=workspace.headers)
        assert response.status_code == 422, body
    response = await client.get(url, headers=workspace.headers)
    assert response.json()["items"] == []


async def test_reading_needs_read_and_writing_needs_write(client, workspace):
    account, plan = await _account_with_plan(client, workspace)
    reader = await factories.create_key(client, workspace, ["read"])
    await _get(client, reader, account["id"])
    response = await client.put(_plan_url(account["id"]), json={}, headers=reader.headers)
    assert response.status_code == 403
    await _measure(client, reader, account["id"], plan["outcomes"][0]["id"], 1, "2020-01-02", 403)
