"""The forecast's success-plan signal, computed in SQL, agrees with the plan page's health
(service.plans.health, in Python) on generated plans, outcomes and measurements."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from service.playbooks import document as playbook_document
from tests import factories

FAR = date.today() + timedelta(days=200)
WINDOW = {"from": FAR.isoformat(), "to": FAR.isoformat(), "limit": 200}

quantity = st.integers(0, 200).map(lambda n: f"{n / 2:g}")  # whole and half units
outcome = st.fixed_dictionaries(
    {
        "baseline": quantity,
        "target": quantity,  # made to differ from the baseline below (the API requires it)
        "target_quarter": st.integers(1, 4),
        "status": st.sampled_from([None, "in_progress", "achieved", "missed"]),
        "measured": st.none() | st.tuples(quantity, st.integers(0, 400)),
    }
).filter(lambda item: item["baseline"] != item["target"])
plan = st.fixed_dictionaries(
    {
        "started_days_ago": st.integers(0, 400),
        "length_days": st.none() | st.integers(20, 500),
        "outcomes": st.lists(outcome, max_size=3),
    }
)


def _one(*, baseline, target, measured, started=100, quarter=4, status=None):
    outcome = {
        "baseline": baseline,
        "target": target,
        "target_quarter": quarter,
        "status": status,
        "measured": measured,
    }
    return {"started_days_ago": started, "length_days": None, "outcomes": [outcome]}


async def _every_health_listed(client, workspace):
    doc = playbook_document.default_document()
    doc["forecast"] = {"weights": {"plan_on_track": 1, "plan_at_risk": -5, "plan_off_track": -9}}
    response = await client.put("/v1/playbook", json=doc, headers=workspace.headers)
    assert response.status_code in (200, 201), response.text


async def _make(client, workspace, spec):
    account = await factories.create_account(client, workspace)
    starts_on = date.today() - timedelta(days=spec["started_days_ago"])
    body = {
        "starts_on": starts_on.isoformat(),
        "outcomes": [
            {
                "kpi": f"KPI {n}",
                "baseline": item["baseline"],
                "target": item["target"],
                "target_quarter": item["target_quarter"],
                **({"status": item["status"]} if item["status"] else {}),
            }
            for n, item in enumerate(spec["outcomes"])
        ],
    }
    if spec["length_days"] is not None:
        body["ends_on"] = (starts_on + timedelta(days=spec["length_days"])).isoformat()
    url = f"/v1/accounts/{account['id']}/plan"
    made = await client.put(url, json=body, headers=workspace.headers)
    assert made.status_code == 200, made.text
    for item, stored in zip(spec["outcomes"], made.json()["outcomes"], strict=True):
        if item["measured"] is None:
            continue
        value, days_ago = item["measured"]
        measured_on = date.today() - timedelta(days=min(days_ago, spec["started_days_ago"]))
        response = await client.post(
            f"{url}/outcomes/{stored['id']}/measurements",
            json={"value": value, "measured_on": measured_on.isoformat()},
            headers=workspace.headers,
        )
        assert response.status_code == 201, response.text
    contract = await client.post(
        "/v1/contracts",
        json={
            "account_id": account["id"],
            "starts_on": (FAR - timedelta(days=364)).isoformat(),
            "ends_on": FAR.isoformat(),
            "arr": "100.00",
        },
        headers=workspace.headers,
    )
    assert contract.status_code == 201, contract.text
    return account, contract.json()


@settings(
    max_examples=25,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # each example is ~10 requests
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=plan)
# Each side of each boundary: 100 days into a year, a Q4 target is expected 100/364 = 27.5% of
# the way; on track from 90% of that (24.7%), at risk from 60% (16.5%).
@example(spec=_one(baseline="0", target="100", measured=("25", 0)))  # on track
@example(spec=_one(baseline="0", target="100", measured=("24", 0)))  # at risk
@example(spec=_one(baseline="0", target="100", measured=("17", 0)))  # at risk
@example(spec=_one(baseline="0", target="100", measured=("16", 0)))  # off track
@example(spec=_one(baseline="100", target="0", measured=("83", 0)))  # reducing: at risk
@example(spec=_one(baseline="0", target="100", measured=None))  # past Q1, unmeasured: at risk
@example(spec=_one(baseline="0", target="100", measured=None, started=30))  # in Q1: on track
async def test_plan_health_signal_matches_the_plan_page(client, workspace, spec):
    await _every_health_listed(client, workspace)
    account, contract = await _make(client, workspace, spec)
    page = await client.get(f"/v1/accounts/{account['id']}/plan", headers=workspace.headers)
    assert page.status_code == 200, page.text
    listed = await client.get(
        "/v1/forecasts/renewals/accounts", params=WINDOW, headers=workspace.headers
    )
    row = next(i for i in listed.json()["items"] if i["contract_id"] == contract["id"])
    signal = next(s for s in row["signals"] if s["signal"] == "plan_health")
    assert signal["value"] == page.json()["health"], (page.json(), row["signals"])
    assert signal["effect"] == {"on_track": 1, "at_risk": -5, "off_track": -9}[signal["value"]]


async def test_an_account_without_a_plan_has_no_plan_signal(client, workspace):
    account = await factories.create_account(client, workspace)
    await client.post(
        "/v1/contracts",
        json={
            "account_id": account["id"],
            "starts_on": (FAR - timedelta(days=364)).isoformat(),
            "ends_on": FAR.isoformat(),
            "arr": "100.00",
        },
        headers=workspace.headers,
    )
    await _every_health_listed(client, workspace)
    listed = await client.get(
        "/v1/forecasts/renewals/accounts", params=WINDOW, headers=workspace.headers
    )
    (row,) = listed.json()["items"]
    assert "plan_health" not in {signal["signal"] for signal in row["signals"]}
