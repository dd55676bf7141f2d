"""Department quarterly operational plans and the cross-department alignment check (issue 8):
plans with goals, deliverables and dependencies, weekly updates, lifecycle-aware goals, the
misalignments leadership acts on, fiscal quarters, bad input, scopes and tenancy."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event

from service.alignment import dependencies
from service.kit.fiscal import FiscalQuarter
from tests import factories

PLANS = "/v1/plans/operational"
STAGES = ("QUALIFY", "ACQUIRE", "IMPLEMENT", "VALUE", "RENEW", "EXPAND")
# 2027-Q1 of a calendar fiscal year: January to March 2027; its middle is mid-February.
EARLY, LATE = "2027-01-20", "2027-03-01"


def _goal(name="Sell product X", stage="ACQUIRE", target=10, **fields):
    return {
        "name": name,
        "stage": stage,
        "metric": fields.pop("metric", "deals"),
        "target": target,
        "owner": fields.pop("owner", "Sam"),
        **fields,
    }


async def _create(client, ws, department, quarter="2027-Q1", expected=201, **body):
    response = await client.post(
        PLANS, json={"department": department, "quarter": quarter, **body}, headers=ws.headers
    )
    assert response.status_code == expected, response.text
    return response.json()


async def _send(client, ws, method, url, expected=200, **body):
    response = await client.request(method, url, json=body, headers=ws.headers)
    assert response.status_code == expected, response.text
    return response.json()


async def _alignment(client, ws, quarter="2027-Q1", as_of=LATE):
    response = await client.get(
        "/v1/alignment", params={"quarter": quarter, "as_of": as_of}, headers=ws.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def _kinds(alignment, kind):
    return [m for m in alignment["misalignments"] if m["kind"] == kind]


async def _launch_and_sell(client, ws):
    """The seed's example: Product launches X in Q1, Sales sells X in Q1."""
    product = await _create(client, ws, "product", deliverables=[{"name": "Launch product X"}])
    sales = await _create(client, ws, "sales", goals=[_goal()])
    launch = product["deliverables"][0]
    sell = sales["goals"][0]
    sales = await _send(
        client,
        ws,
        "POST",
        f"{PLANS}/{sales['id']}/dependencies",
        201,
        from_goal_id=sell["id"],
        needs_deliverable_id=launch["id"],
        note="cannot sell before launch",
    )
    return product, sales, launch, sell


# --- 1. operational plans ------------------------------------------------------------------


async def test_a_plan_holds_goals_deliverables_and_dependencies(client, workspace):
    product, sales, launch, sell = await _launch_and_sell(client, workspace)
    assert (sales["department"], sales["quarter"]) == ("sales", "2027-Q1")
    assert (sales["starts_on"], sales["ends_on"]) == ("2027-01-01", "2027-03-31")
    assert (sell["name"], sell["stage"], sell["target"], sell["owner"]) == (
        "Sell product X",
        "ACQUIRE",
        "10",
        "Sam",
    )
    assert launch["due_quarter"] == "2027-Q1" and launch["status"] == "planned"
    [dependency] = sales["dependencies"]
    assert dependency["from_kind"] == "goal" and dependency["from_id"] == sell["id"]
    assert (dependency["needs_kind"], dependency["needs_id"]) == ("deliverable", launch["id"])
    assert (dependency["needs_department"], dependency["needs_plan_id"]) == (
        "product",
        product["id"],
    )
    assert dependency["needs_name"] == "Launch product X"
    assert dependency["note"] == "cannot sell before launch"

    read = await _send(client, workspace, "GET", f"{PLANS}/{sales['id']}")
    assert read["goals"][0]["id"] == sell["id"] and read["dependencies"] == sales["dependencies"]
    patched = await _send(client, workspace, "PATCH", f"{PLANS}/{sales['id']}", summary="Q1 push")
    assert patched["summary"] == "Q1 push"

    added = await _send(
        client, workspace, "POST", f"{PLANS}/{sales['id']}/goals", 201, **_goal("Upsell", "EXPAND")
    )
    assert [goal["name"] for goal in added["goals"]] == ["Sell product X", "Upsell"]
    upsell = added["goals"][1]
    edited = await _send(
        client,
        workspace,
        "PATCH",
        f"{PLANS}/{sales['id']}/goals/{upsell['id']}",
        target="12.5",
        status="cancelled",
    )
    assert (edited["goals"][1]["target"], edited["goals"][1]["status"]) == ("12.5", "cancelled")
    removed = await _send(
        client,
        workspace,
        "DELETE",
        f"{PLANS}/{sales['id']}/dependencies/{dependency['id']}",
    )
    assert removed["dependencies"] == []


async def test_one_plan_per_department_and_quarter(client, workspace):
    first = await _create(client, workspace, "sales", "FY2027-Q1")
    assert first["quarter"] == "2027-Q1"  # both spellings name the same quarter
    again = await _create(client, workspace, "sales", "2027-Q1", expected=409)
    assert again["code"] == "conflict" and again["plan_id"] == first["id"]
    await _create(client, workspace, "sales", "2027-Q2")
    await _create(client, workspace, "product", "2027-Q1")


async def test_plans_are_listed_by_quarter_and_department_in_pages(client, workspace):
    for department in ("sales", "product", "marketing"):
        await _create(client, workspace, department, "2027-Q1")
    await _create(client, workspace, "sales", "2027-Q2")

    async def listed(**params):
        response = await client.get(PLANS, params=params, headers=workspace.headers)
        assert response.status_code == 200, response.text
        return response.json()

    q1 = await listed(quarter="FY2027-Q1")
    assert [plan["department"] for plan in q1["items"]] == ["sales", "product", "marketing"]
    sales = await listed(department="sales")
    assert [plan["quarter"] for plan in sales["items"]] == ["2027-Q1", "2027-Q2"]
    first = await listed(limit=3)
    second = await listed(limit=3, cursor=first["next_cursor"])
    assert len(first["items"]) == 3 and len(second["items"]) == 1
    assert second["next_cursor"] is None


async def test_quarters_follow_the_workspace_fiscal_year(client, workspace):
    response = await client.patch(
        "/v1/workspace", json={"fiscal_year_start_month": 2}, headers=workspace.headers
    )
    assert response.status_code == 200
    plan = await _create(client, workspace, "sales", "2027-Q1")
    # FY2027 is named by the year it ends in: February 2026 to January 2027.
    assert (plan["starts_on"], plan["ends_on"]) == ("2026-02-01", "2026-04-30")
    q4 = await _create(client, workspace, "sales", "2027-Q4")
    assert (q4["starts_on"], q4["ends_on"]) == ("2026-11-01", "2027-01-31")


async def test_bad_input_is_refused_with_a_reason(client, workspace):
    for quarter in ("2027-Q5", "Q1", "2027/1", "FY27-Q1"):
        body = await _create(client, workspace, "sales", quarter, expected=422)
        assert body["code"] == "invalid_input" and "2027-Q1" in body["detail"]
    body = await _create(client, workspace, "legal", expected=422)
    assert "unknown department 'legal'" in body["detail"] and "sales" in body["detail"]
    body = await _create(client, workspace, "sales", goals=[_goal(stage="WIN")], expected=422)
    assert body["errors"][0]["field"] == "goals.0.stage" and "ACQUIRE" in body["detail"]
    body = await _create(client, workspace, "sales", goals=[_goal(source="deals")], expected=422)
    assert "opportunities_created" in body["detail"]
    body = await _create(
        client, workspace, "sales", goals=[_goal(source="stage_entries:WIN")], expected=422
    )
    assert "unknown stage 'WIN'" in body["detail"]
    body = await _create(client, workspace, "sales", goals=[_goal(target=0)], expected=422)
    assert body["errors"][0]["field"] == "goals.0.target"
    body = await _create(
        client,
        workspace,
        "sales",
        "2027-Q2",
        deliverables=[{"name": "x", "due_quarter": "2027-Q1"}],
        expected=422,
    )
    assert "2027-Q2" in body["detail"]
    plan = await _create(client, workspace, "sales")
    body = await _send(
        client, workspace, "PATCH", f"{PLANS}/{plan['id']}", 422, department="product"
    )
    assert body["code"] == "validation_failed"
    response = await client.get("/v1/alignment?quarter=next", headers=workspace.headers)
    assert response.status_code == 422 and response.json()["errors"][0]["in"] == "query"
    response = await client.get(f"{PLANS}/not-a-uuid", headers=workspace.headers)
    assert response.status_code == 422


# --- dependencies: self, own department, loops, other workspaces -------------------------


async def test_dependencies_refuse_self_own_department_loops_and_duplicates(
    client, workspace, other_workspace
):
    product, sales, launch, sell = await _launch_and_sell(client, workspace)
    url = f"{PLANS}/{product['id']}/dependencies"

    body = await _send(
        client, workspace, "POST", url, 422, from_deliverable_id=launch["id"],
        needs_deliverable_id=launch["id"],
    )  # fmt: skip
    assert body["code"] == "self_dependency"
    own = await _send(
        client, workspace, "POST", f"{PLANS}/{product['id']}/goals", 201, **_goal("Ship", "VALUE")
    )
    body = await _send(
        client, workspace, "POST", url, 422, from_deliverable_id=launch["id"],
        needs_goal_id=own["goals"][0]["id"],
    )  # fmt: skip
    assert body["code"] == "same_department_dependency"
    # Product's launch needing Sales' goal would close the loop sell -> launch -> sell.
    body = await _send(
        client,
        workspace,
        "POST",
        url,
        422,
        from_deliverable_id=launch["id"],
        needs_goal_id=sell["id"],
    )
    assert body["code"] == "dependency_cycle" and "Sell product X" in body["detail"]
    # A longer loop: marketing needs sales, product needs marketing.
    marketing = await _create(client, workspace, "marketing", goals=[_goal("Pipeline", "QUALIFY")])
    campaign = marketing["goals"][0]
    await _send(
        client, workspace, "POST", f"{PLANS}/{marketing['id']}/dependencies", 201,
        from_goal_id=campaign["id"], needs_goal_id=sell["id"],
    )  # fmt: skip
    body = await _send(
        client, workspace, "POST", url, 422, from_deliverable_id=launch["id"],
        needs_goal_id=campaign["id"],
    )  # fmt: skip
    assert body["code"] == "dependency_cycle"
    body = await _send(
        client, workspace, "POST", f"{PLANS}/{sales['id']}/dependencies", 409,
        from_goal_id=sell["id"], needs_deliverable_id=launch["id"],
    )  # fmt: skip
    assert body["code"] == "conflict"
    body = await _send(client, workspace, "POST", url, 422, from_goal_id=sell["id"])
    assert body["code"] == "validation_failed"

    # Another workspace's ids are not found, in paths and in bodies.
    theirs = await _create(client, other_workspace, "product", deliverables=[{"name": "Theirs"}])
    body = await _send(
        client, workspace, "POST", f"{PLANS}/{sales['id']}/dependencies", 404,
        from_goal_id=sell["id"], needs_deliverable_id=theirs["deliverables"][0]["id"],
    )  # fmt: skip
    assert body["code"] == "not_found"
    body = await _send(
        client, other_workspace, "POST", f"{PLANS}/{theirs['id']}/dependencies", 404,
        from_deliverable_id=theirs["deliverables"][0]["id"], needs_goal_id=sell["id"],
    )  # fmt: skip
    assert body["code"] == "not_found"
    body = await _send(client, workspace, "POST", f"{PLANS}/{theirs['id']}/goals", 404, **_goal())
    assert body["code"] == "not_found"


async def test_two_halves_of_a_loop_added_at_once_cannot_both_succeed(client, workspace, db):
    """Each half alone is fine; added concurrently from two plans, the second waits for the
    first and then sees the loop (PostgreSQL: the workspace row; SQLite: BEGIN IMMEDIATE)."""
    product, sales, launch, sell = await _launch_and_sell(client, workspace)
    await _send(
        client, workspace, "DELETE",
        f"{PLANS}/{sales['id']}/dependencies/{sales['dependencies'][0]['id']}",
    )  # fmt: skip

    async def launch_needs_sell():
        async with db.sessionmaker() as session, session.begin():
            await dependencies.add_dependency(
                session,
                workspace_id=workspace.id,
                plan_id=uuid.UUID(product["id"]),
                from_deliverable_id=uuid.UUID(launch["id"]),
                needs_goal_id=uuid.UUID(sell["id"]),
            )

    async with db.sessionmaker() as session, session.begin():
        await dependencies.add_dependency(
            session,
            workspace_id=workspace.id,
            plan_id=uuid.UUID(sales["id"]),
            from_goal_id=uuid.UUID(sell["id"]),
            needs_deliverable_id=uuid.UUID(launch["id"]),
        )
        second = asyncio.create_task(launch_needs_sell())
        await asyncio.sleep(0.5)
        assert not second.done(), "the second half did not wait for the first"
    with pytest.raises(dependencies.DependencyCycle):
        await second
    read = await _send(client, workspace, "GET", f"{PLANS}/{product['id']}")
    assert read["dependencies"] == []


nodes = st.integers(min_value=0, max_value=7)


@given(edges=st.lists(st.tuples(nodes, nodes), max_size=20), start=nodes, target=nodes)
def test_loop_detection_agrees_with_the_transitive_closure(edges, start, target):
    ids = [uuid.UUID(int=n + 1) for n in range(8)]
    graph: dict[uuid.UUID, list[uuid.UUID]] = {}
    for a, b in edges:
        graph.setdefault(ids[a], []).append(ids[b])
    # Warshall's closure over the adjacency matrix: what is reachable in one step or more.
    closure = [[False] * 8 for _ in range(8)]
    for a, b in edges:
        closure[a][b] = True
    for k in range(8):
        for i in range(8):
            for j in range(8):
                closure[i][j] = closure[i][j] or (closure[i][k] and closure[k][j])
    assert dependencies.reaches(graph, ids[start], ids[target]) == closure[start][target]


# --- 2. weekly updates ---------------------------------------------------------------------


async def test_weekly_updates_show_latest_progress_against_target_and_trend(client, workspace):
    plan = await _create(
        client, workspace, "csm", goals=[_goal("Healthy accounts", "VALUE", target=40)]
    )
    goal = plan["goals"][0]
    url = f"{PLANS}/{plan['id']}/updates"
    assert goal["actual"] is None and goal["latest_update"] is None
    weeks = [
        ("2027-01-06", 8, "on_track"),
        ("2027-01-13", 14, "on_track"),
        ("2027-01-21", 12, "at_risk"),
    ]
    for week, value, status in weeks:
        body = {"week": week, "goals": [{"goal_id": goal["id"], "value": value, "status": status}]}
        await _send(client, workspace, "POST", url, 201, **body)
    read = await _send(client, workspace, "GET", f"{PLANS}/{plan['id']}?as_of=2027-01-25")
    goal = read["goals"][0]
    assert goal["actual"] == "12" and goal["progress"] == "0.3"
    # Stored as the Monday of the week; the latest first.
    assert goal["latest_update"]["week"] == "2027-01-18"
    assert goal["latest_update"]["status"] == "at_risk"
    assert goal["latest_update"]["author"] == "api_key:admin"
    assert [v["value"] for v in goal["trend"]["values"]] == ["8", "14", "12"]
    assert goal["trend"]["direction"] == "down"
    # 25 of 90 days passed: a steady pace would be at 40 * 0.2778.
    assert goal["expected_progress"] == "0.2778" and goal["behind_pace"] is False

    # The same goal and week again is a correction, not a new week.
    body = {
        "week": "2027-01-19",
        "author": "Casey",
        "goals": [{"goal_id": goal["id"], "value": 16, "status": "on_track", "comment": "fixed"}],
    }
    corrected = await _send(client, workspace, "POST", url, 201, **body)
    goal = corrected["goals"][0]
    assert [v["value"] for v in goal["trend"]["values"]] == ["8", "14", "16"]
    assert goal["trend"]["direction"] == "up"
    assert (goal["latest_update"]["comment"], goal["latest_update"]["author"]) == ("fixed", "Casey")


async def test_weekly_update_bad_input(client, workspace, other_workspace):
    plan = await _create(client, workspace, "csm", goals=[_goal("Healthy", "VALUE")])
    goal_id = plan["goals"][0]["id"]
    url = f"{PLANS}/{plan['id']}/updates"

    async def refused(expected, **body):
        return await _send(client, workspace, "POST", url, expected, **body)

    body = await refused(
        422, week="2027-05-03", goals=[{"goal_id": goal_id, "value": 1, "status": "on_track"}]
    )
    assert "outside 2027-Q1" in body["detail"]
    body = await refused(422, week="2027-01-04", goals=[{"goal_id": goal_id, "status": "on_track"}])
    assert body["errors"][0]["field"] == "goals.0.value"
    body = await refused(
        422, week="2027-01-04", goals=[{"goal_id": goal_id, "value": 1, "status": "late"}]
    )
    assert body["code"] == "validation_failed"
    other = await _create(client, other_workspace, "csm", goals=[_goal("Theirs", "VALUE")])
    body = await refused(
        422,
        week="2027-01-04",
        goals=[{"goal_id": other["goals"][0]["id"], "value": 1, "status": "on_track"}],
    )
    assert "not on this plan" in body["detail"]
    await _send(
        client, workspace, "PATCH", f"{PLANS}/{plan['id']}/goals/{goal_id}", status="cancelled"
    )
    body = await refused(
        409, week="2027-01-04", goals=[{"goal_id": goal_id, "value": 1, "status": "on_track"}]
    )
    assert "cancelled" in body["detail"]


# --- 3. the alignment check ----------------------------------------------------------------


async def test_a_launch_moved_to_the_next_quarter_misaligns_the_goal_that_needs_it(
    client, workspace
):
    product, sales, launch, sell = await _launch_and_sell(client, workspace)
    assert _kinds(await _alignment(client, workspace, as_of=EARLY), "dependency_due_late") == []

    # Product moves the launch to Q2, as in the seed.
    await _send(
        client,
        workspace,
        "PATCH",
        f"{PLANS}/{product['id']}/deliverables/{launch['id']}",
        due_quarter="FY2027-Q2",
    )
    [late] = _kinds(await _alignment(client, workspace, as_of=EARLY), "dependency_due_late")
    assert late["severity"] == "high" and late["departments"] == ["product", "sales"]
    assert (late["plan_id"], late["goal_id"]) == (sales["id"], sell["id"])
    assert late["dependency_id"] == sales["dependencies"][0]["id"]
    assert "'Sell product X' is due in 2027-Q1" in late["message"]
    assert "'Launch product X', due only in 2027-Q2" in late["message"]
    assert "product should bring it into 2027-Q1" in late["message"]

    # Cancelled instead: a different problem with a different remedy.
    await _send(
        client,
        workspace,
        "PATCH",
        f"{PLANS}/{product['id']}/deliverables/{launch['id']}",
        status="cancelled",
    )
    alignment = await _alignment(client, workspace, as_of=EARLY)
    assert _kinds(alignment, "dependency_due_late") == []
    [cancelled] = _kinds(alignment, "dependency_cancelled")
    assert cancelled["severity"] == "high" and "was cancelled" in cancelled["message"]
    # Once Sales cancels its goal, nobody needs the launch any more.
    await _send(
        client, workspace, "PATCH", f"{PLANS}/{sales['id']}/goals/{sell['id']}", status="cancelled"
    )
    assert _kinds(await _alignment(client, workspace, as_of=EARLY), "dependency_cancelled") == []


async def test_stages_without_goals_and_quarterbacks_without_plans(client, workspace):
    alignment = await _alignment(client, workspace)
    assert alignment["plans"] == 0
    # In lifecycle order; CHURNED ends the lifecycle and needs no goal.
    assert [m["stage"] for m in _kinds(alignment, "stage_without_goal")] == list(STAGES)
    missing = {m["stage"]: m["departments"] for m in _kinds(alignment, "quarterback_without_plan")}
    assert missing == {
        "QUALIFY": ["marketing"],
        "ACQUIRE": ["sales"],
        "IMPLEMENT": ["professional_services"],
        "VALUE": ["csm"],
        "RENEW": ["csm"],
        "EXPAND": ["csm"],
    }

    await _create(client, workspace, "sales", goals=[_goal(stage="ACQUIRE")])
    await _create(client, workspace, "marketing", goals=[_goal("MQLs", "QUALIFY")])
    alignment = await _alignment(client, workspace)
    uncovered = {m["stage"]: m for m in _kinds(alignment, "stage_without_goal")}
    assert sorted(uncovered) == ["EXPAND", "IMPLEMENT", "RENEW", "VALUE"]
    assert uncovered["IMPLEMENT"]["severity"] == "medium"
    assert uncovered["IMPLEMENT"]["departments"][0] == "professional_services"
    assert "no department has a 2027-Q1 goal for IMPLEMENT" in uncovered["IMPLEMENT"]["message"]
    without_plan = {m["stage"] for m in _kinds(alignment, "quarterback_without_plan")}
    assert without_plan == {"IMPLEMENT", "VALUE", "RENEW", "EXPAND"}
    # A quarter is its own: Q2 has no plans at all.
    assert (await _alignment(client, workspace, "2027-Q2"))["plans"] == 0
    # RENEW's quarterback is the workspace's setting: with Sales renewing, Sales has a plan.
    response = await client.patch(
        "/v1/workspace", json={"renewal_quarterback": "sales"}, headers=workspace.headers
    )
    assert response.status_code == 200, response.text
    alignment = await _alignment(client, workspace)
    without_plan = {m["stage"] for m in _kinds(alignment, "quarterback_without_plan")}
    assert without_plan == {"IMPLEMENT", "VALUE", "EXPAND"}


async def test_goals_off_track_past_mid_quarter(client, workspace):
    goals = [
        _goal("Reported off track", "ACQUIRE", target=10),
        _goal("Behind pace", "ACQUIRE", target=100),
        _goal("On pace", "ACQUIRE", target=10),
        _goal("Done early", "ACQUIRE", target=10),
        _goal("No update yet", "ACQUIRE", target=10),
    ]
    plan = await _create(client, workspace, "sales", goals=goals)
    ids = [goal["id"] for goal in plan["goals"]]
    updates = [
        (ids[0], 9, "off_track"),
        (ids[1], 10, "on_track"),
        (ids[2], 8, "on_track"),
        (ids[3], 2, "done"),
    ]
    body = {
        "week": "2027-01-18",
        "goals": [{"goal_id": g, "value": v, "status": s, "comment": "c"} for g, v, s in updates],
    }
    await _send(client, workspace, "POST", f"{PLANS}/{plan['id']}/updates", 201, **body)

    early = await _alignment(client, workspace, as_of=EARLY)
    assert early["past_mid_quarter"] is False
    assert _kinds(early, "goal_off_track") == _kinds(early, "goal_behind_pace") == []

    late = await _alignment(client, workspace, as_of=LATE)
    assert late["past_mid_quarter"] is True
    [off] = _kinds(late, "goal_off_track")
    assert off["goal_id"] == ids[0] and off["severity"] == "high"
    assert off["departments"] == ["sales"] and off["stage"] == "ACQUIRE"
    assert "reported off track in the week of 2027-01-18 (c)" in off["message"]
    behind = {m["goal_id"]: m for m in _kinds(late, "goal_behind_pace")}
    # 60 of 90 days: 100 * 0.6667 expected, 10 recorded; no update at all is behind too.
    assert set(behind) == {ids[1], ids[4]}
    assert behind[ids[1]]["severity"] == "medium"
    assert "10 where a steady pace would have 66.67 by 2027-03-01" in behind[ids[1]]["message"]
    assert "no value yet" in behind[ids[4]]["message"]
    # Most severe first.
    severities = [m["severity"] for m in late["misalignments"]]
    assert severities == sorted(severities, key=["high", "medium", "low"].index)


async def test_alignment_reads_a_fixed_number_of_statements(client, workspace, db):
    """Not one query per plan, goal or dependency: 2 plans and 6 plans cost the same."""
    statements = []

    def count(*_args, **_kwargs):
        statements.append(1)

    async def measured():
        statements.clear()
        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        try:
            await _alignment(client, workspace)
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", count)
        return len(statements)

    await _launch_and_sell(client, workspace)
    goals = [_goal("a", "VALUE"), _goal("b", "RENEW", source="go_lives")]
    await _create(client, workspace, "marketing", goals=goals)
    small = await measured()
    for department in ("csm", "finance", "revops", "professional_services"):
        await _create(
            client,
            workspace,
            department,
            goals=[*goals, _goal("c", "EXPAND", source="stage_entries:EXPAND")],
        )
    assert await measured() == small


# --- 4. lifecycle-aware goals --------------------------------------------------------------


def _event(event_id, event_type, occurred_at, company):
    return {
        "id": event_id,
        "type": event_type,
        "occurred_at": occurred_at,
        "account": {"external_id": company, "name": company},
    }


async def test_goals_read_their_actual_from_lifecycle_events_of_the_quarter(client, workspace):
    deliveries = [
        ("o1", "opportunity_created", "2027-01-05T10:00:00Z", "c1"),
        ("o2", "opportunity_created", "2027-02-10T10:00:00Z", "c2"),
        ("o3", "opportunity_created", "2027-03-31T23:00:00Z", "c3"),
        ("o4", "opportunity_created", "2026-12-31T23:00:00Z", "c4"),  # Q4 of last year
        ("o5", "opportunity_created", "2027-04-01T00:00:00Z", "c5"),  # Q2
        ("w1", "closed_won", "2027-02-11T10:00:00Z", "c2"),
        ("g1", "go_live", "2027-03-01T10:00:00Z", "c2"),
    ]
    for event_id, event_type, occurred_at, company in deliveries:
        response = await client.post(
            "/v1/events?source=hubspot",
            json=_event(event_id, event_type, occurred_at, company),
            headers=workspace.headers,
        )
        assert response.status_code == 201, response.text
    # A repeated delivery is one event, not two.
    response = await client.post(
        "/v1/events?source=hubspot",
        json=_event("o2", "opportunity_created", "2027-02-10T10:00:00Z", "c2"),
        headers=workspace.headers,
    )
    assert response.json()["duplicate"] is True

    sales = await _create(
        client,
        workspace,
        "sales",
        goals=[
            _goal("Pipeline", "ACQUIRE", target=6, source="opportunities_created"),
            _goal("Wins", "ACQUIRE", target=2, source="closed_won"),
        ],
    )
    ps = await _create(
        client,
        workspace,
        "professional_services",
        goals=[_goal("Go-lives", "IMPLEMENT", target=4, source="go_lives")],
    )
    read = await _send(client, workspace, "GET", f"{PLANS}/{sales['id']}?as_of=2027-03-31")
    assert [(g["source"], g["actual"]) for g in read["goals"]] == [
        ("opportunities_created", "3"),
        ("closed_won", "1"),
    ]
    assert read["goals"][0]["progress"] == "0.5"
    # As of a day mid-quarter, only what had happened by then counts.
    read = await _send(client, workspace, "GET", f"{PLANS}/{sales['id']}?as_of=2027-02-10")
    assert read["goals"][0]["actual"] == "2"
    ps_read = await _send(client, workspace, "GET", f"{PLANS}/{ps['id']}?as_of=2027-03-31")
    assert ps_read["goals"][0]["actual"] == "1"

    # A weekly update of a source goal takes its value from the data; giving one is refused.
    goal_id = read["goals"][0]["id"]
    url = f"{PLANS}/{sales['id']}/updates"
    body = {
        "week": "2027-01-05",
        "goals": [{"goal_id": goal_id, "value": 50, "status": "on_track"}],
    }
    refused = await _send(client, workspace, "POST", url, 422, **body)
    assert "opportunities_created" in refused["detail"]
    body = {"week": "2027-01-05", "goals": [{"goal_id": goal_id, "status": "on_track"}]}
    updated = await _send(client, workspace, "POST", url, 201, **body)
    assert updated["goals"][0]["latest_update"]["value"] == "1"  # o1, by the end of that week

    # Past mid-quarter the pace check uses the lifecycle actual: 3 of 6 by March 1 is behind.
    behind = _kinds(await _alignment(client, workspace, as_of="2027-03-01"), "goal_behind_pace")
    assert read["goals"][0]["id"] in {m["goal_id"] for m in behind}


async def test_quarters_follow_the_time_zone_and_fiscal_year_for_lifecycle_data(client, workspace):
    response = await client.patch(
        "/v1/workspace",
        json={"fiscal_year_start_month": 4, "timezone": "America/New_York"},
        headers=workspace.headers,
    )
    assert response.status_code == 200, response.text
    # FY2027 starts 2026-04-01 (New York): 03:00 UTC on April 1 is still March 31 there.
    for event_id, occurred_at in (("a", "2026-04-01T03:00:00Z"), ("b", "2026-04-01T05:00:00Z")):
        response = await client.post(
            "/v1/events?source=hubspot",
            json=_event(event_id, "opportunity_created", occurred_at, f"co-{event_id}"),
            headers=workspace.headers,
        )
        assert response.status_code == 201, response.text
    plan = await _create(
        client, workspace, "sales", goals=[_goal(target=5, source="opportunities_created")]
    )
    assert plan["starts_on"] == "2026-04-01"
    read = await _send(client, workspace, "GET", f"{PLANS}/{plan['id']}?as_of=2026-06-30")
    assert read["goals"][0]["actual"] == "1"


async def test_stage_entry_goals_count_moves_into_the_stage(client, workspace):
    today = datetime.now(UTC).date()
    quarter = str(FiscalQuarter.containing(today, 1))
    for name in ("One", "Two"):
        account = await factories.create_account(client, workspace, name=name)
        await factories.walk(client, workspace, account["id"], "ACQUIRE", "IMPLEMENT")
    plan = await _create(
        client,
        workspace,
        "professional_services",
        quarter,
        goals=[
            _goal("Kick-offs", "IMPLEMENT", target=5, source="stage_entries:IMPLEMENT"),
            _goal("Qualified", "ACQUIRE", target=5, source="stage_entries:ACQUIRE"),
            _goal("Live", "VALUE", target=5, source="stage_entries:VALUE"),
        ],
    )
    assert [goal["actual"] for goal in plan["goals"]] == ["2", "2", "0"]
    # The previous quarter saw none of these moves.
    previous = FiscalQuarter.containing(
        FiscalQuarter.parse(quarter).starts_on(1) - timedelta(days=1), 1
    )
    old = await _create(
        client,
        workspace,
        "professional_services",
        str(previous),
        goals=[_goal("Kick-offs", "IMPLEMENT", target=5, source="stage_entries:IMPLEMENT")],
    )
    assert old["goals"][0]["actual"] == "0"


# --- scopes and tenancy --------------------------------------------------------------------


async def test_reading_needs_read_and_changing_needs_write(client, workspace):
    reader = await factories.create_key(client, workspace, ["read"])
    plan = await _create(client, workspace, "sales", goals=[_goal()])
    assert (await client.get(f"{PLANS}/{plan['id']}", headers=reader.headers)).status_code == 200
    assert (
        await client.get("/v1/alignment?quarter=2027-Q1", headers=reader.headers)
    ).status_code == 200
    denied = await client.post(
        PLANS, json={"department": "product", "quarter": "2027-Q1"}, headers=reader.headers
    )
    assert denied.status_code == 403 and denied.json()["required_scope"] == "write"
    denied = await client.patch(
        f"{PLANS}/{plan['id']}", json={"summary": "x"}, headers=reader.headers
    )
    assert denied.status_code == 403
    assert (await client.get(PLANS)).status_code == 401


async def test_a_workspace_never_sees_another_workspaces_plans(client, workspace, other_workspace):
    product, sales, launch, sell = await _launch_and_sell(client, workspace)
    await _send(
        client,
        workspace,
        "PATCH",
        f"{PLANS}/{product['id']}/deliverables/{launch['id']}",
        due_quarter="2027-Q2",
    )
    other = other_workspace
    for url in (f"{PLANS}/{sales['id']}", f"{PLANS}/{product['id']}"):
        response = await client.get(url, headers=other.headers)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    for method, url, body in (
        ("PATCH", f"{PLANS}/{sales['id']}", {"summary": "mine now"}),
        ("PATCH", f"{PLANS}/{product['id']}/deliverables/{launch['id']}", {"status": "done"}),
        ("PATCH", f"{PLANS}/{sales['id']}/goals/{sell['id']}", {"status": "cancelled"}),
        ("POST", f"{PLANS}/{sales['id']}/updates", {"week": "2027-01-04", "goals": [
            {"goal_id": sell["id"], "value": 1, "status": "on_track"}]}),
        ("DELETE", f"{PLANS}/{sales['id']}/dependencies/{sales['dependencies'][0]['id']}", None),
    ):  # fmt: skip
        response = await client.request(method, url, json=body, headers=other.headers)
        assert response.status_code == 404, (method, url, response.text)
    listed = await client.get(PLANS, headers=other.headers)
    assert listed.json()["items"] == []
    theirs = await _alignment(client, other)
    assert theirs["plans"] == 0 and _kinds(theirs, "dependency_due_late") == []
    # Their own plan for the same department and quarter is no conflict.
    await _create(client, other, "sales")
    mine = await _alignment(client, workspace)
    assert mine["plans"] == 2 and len(_kinds(mine, "dependency_due_late")) == 1
    unchanged = await _send(client, workspace, "GET", f"{PLANS}/{sales['id']}")
    assert unchanged["summary"] is None and unchanged["goals"][0]["status"] == "active"


# --- 5. GraphQL ----------------------------------------------------------------------------

PLAN_FIELDS = """
  id department quarter startsOn endsOn
  goals { id name stage target status actual progress behindPace
          latestUpdate { week value status comment }
          trend { direction values { value } } updates(last: 2) { week value } }
  deliverables { id name dueQuarter status }
  dependencies { id fromName needsName needsDepartment needsDueQuarter
                 needsPlan { id department deliverables { name dueQuarter } } }
"""


async def gql(client, ws, query, **variables):
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=ws.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def _codes(result):
    return [error["extensions"]["code"] for error in result.get("errors", [])]


CREATE = f"""mutation($input: OperationalPlanInput!) {{
  createOperationalPlan(input: $input) {{ {PLAN_FIELDS} }} }}"""
ALIGNMENT = """query($quarter: String!, $asOf: Date) {
  alignment(quarter: $quarter, asOf: $asOf) {
    quarter startsOn pastMidQuarter plans
    misalignments { kind severity departments stage message goalId dependencyId } } }"""


async def test_graphql_plans_updates_and_alignment(client, workspace):
    product = await gql(
        client,
        workspace,
        CREATE,
        input={
            "department": "product",
            "quarter": "FY2027-Q1",
            "deliverables": [{"name": "Launch product X"}],
        },
    )
    product = product["data"]["createOperationalPlan"]
    launch = product["deliverables"][0]
    assert (product["quarter"], launch["dueQuarter"], launch["status"]) == (
        "2027-Q1",
        "2027-Q1",
        "PLANNED",
    )
    sales = await gql(
        client,
        workspace,
        CREATE,
        input={
            "department": "sales",
            "quarter": "2027-Q1",
            "goals": [
                {
                    "name": "Sell product X",
                    "stage": "ACQUIRE",
                    "metric": "deals",
                    "target": "10",
                    "owner": "Sam",
                }
            ],
        },
    )
    sales = sales["data"]["createOperationalPlan"]
    sell = sales["goals"][0]
    linked = await gql(
        client,
        workspace,
        f"""mutation($plan: UUID!, $input: OperationalDependencyInput!) {{
          addOperationalDependency(planId: $plan, input: $input) {{ {PLAN_FIELDS} }} }}""",
        plan=sales["id"],
        input={"fromGoalId": sell["id"], "needsDeliverableId": launch["id"]},
    )
    [dependency] = linked["data"]["addOperationalDependency"]["dependencies"]
    assert dependency["needsPlan"]["id"] == product["id"]
    assert dependency["needsPlan"]["deliverables"][0]["name"] == "Launch product X"

    moved = await gql(
        client,
        workspace,
        """mutation($plan: UUID!, $item: UUID!) {
          updateOperationalDeliverable(planId: $plan, deliverableId: $item,
                                       input: {dueQuarter: "2027-Q2"}) {
            deliverables { dueQuarter status } } }""",
        plan=product["id"],
        item=launch["id"],
    )
    assert moved["data"]["updateOperationalDeliverable"]["deliverables"] == [
        {"dueQuarter": "2027-Q2", "status": "PLANNED"}
    ]
    for week, value in (("2027-01-04", "3"), ("2027-01-11", "2")):
        recorded = await gql(
            client,
            workspace,
            f"""mutation($plan: UUID!, $input: OperationalUpdateInput!) {{
              recordOperationalUpdate(planId: $plan, input: $input) {{ {PLAN_FIELDS} }} }}""",
            plan=sales["id"],
            input={
                "week": week,
                "goals": [{"goalId": sell["id"], "value": value, "status": "OFF_TRACK"}],
            },
        )
    goal = recorded["data"]["recordOperationalUpdate"]["goals"][0]
    assert goal["actual"] == "2" and goal["progress"] == "0.2"
    assert goal["latestUpdate"]["status"] == "OFF_TRACK"
    assert goal["trend"]["direction"] == "down"
    assert [u["week"] for u in goal["updates"]] == ["2027-01-11", "2027-01-04"]

    result = await gql(client, workspace, ALIGNMENT, quarter="2027-Q1", asOf=LATE)
    alignment = result["data"]["alignment"]
    assert alignment["pastMidQuarter"] is True and alignment["plans"] == 2
    kinds = {m["kind"]: m for m in alignment["misalignments"]}
    assert kinds["dependency_due_late"]["departments"] == ["product", "sales"]
    assert kinds["dependency_due_late"]["severity"] == "HIGH"
    assert kinds["goal_off_track"]["goalId"] == sell["id"]
    # The same findings REST gives.
    rest = await _alignment(client, workspace)
    assert [m["message"] for m in rest["misalignments"]] == [
        m["message"] for m in alignment["misalignments"]
    ]

    listed = await gql(
        client,
        workspace,
        f"""query {{ operationalPlans(quarter: "2027-Q1", first: 1) {{
              pageInfo {{ hasNextPage endCursor }} nodes {{ {PLAN_FIELDS} }} }} }}""",
    )
    page = listed["data"]["operationalPlans"]
    assert page["pageInfo"]["hasNextPage"] is True
    assert [plan["department"] for plan in page["nodes"]] == ["product"]
    one = await gql(
        client,
        workspace,
        "query($id: UUID!) { operationalPlan(id: $id) { department goals { name } } }",
        id=sales["id"],
    )
    assert one["data"]["operationalPlan"] == {
        "department": "sales",
        "goals": [{"name": "Sell product X"}],
    }

    # Partial edits: what is left out stays.
    edited = await gql(
        client,
        workspace,
        """mutation($plan: UUID!, $goal: UUID!) {
          a: updateOperationalPlan(id: $plan, summary: "Q1 push") { summary }
          b: updateOperationalGoal(planId: $plan, goalId: $goal, input: {target: "20"}) {
            summary goals { name target status } } }""",
        plan=sales["id"],
        goal=sell["id"],
    )
    assert edited["data"]["a"] == {"summary": "Q1 push"}
    assert edited["data"]["b"] == {
        "summary": "Q1 push",
        "goals": [{"name": "Sell product X", "target": "20", "status": "ACTIVE"}],
    }


async def test_graphql_errors_are_typed(client, workspace):
    bad = await gql(client, workspace, CREATE, input={"department": "sales", "quarter": "Q1"})
    assert _codes(bad) == ["invalid_input"] and "2027-Q1" in bad["errors"][0]["message"]
    bad = await gql(client, workspace, ALIGNMENT, quarter="2027-Q9")
    assert _codes(bad) == ["invalid_input"]
    product, sales, launch, sell = await _launch_and_sell(client, workspace)
    loop = await gql(
        client,
        workspace,
        """mutation($plan: UUID!, $input: OperationalDependencyInput!) {
          addOperationalDependency(planId: $plan, input: $input) { id } }""",
        plan=product["id"],
        input={"fromDeliverableId": launch["id"], "needsGoalId": sell["id"]},
    )
    assert _codes(loop) == ["dependency_cycle"]
    reader = await factories.create_key(client, workspace, ["read"])
    denied = await gql(
        client,
        reader,
        'mutation($id: UUID!) { updateOperationalPlan(id: $id, summary: "x") { id } }',
        id=sales["id"],
    )
    assert _codes(denied) == ["permission_denied"]


async def test_graphql_never_crosses_workspaces(client, workspace, other_workspace):
    _product, sales, _launch, sell = await _launch_and_sell(client, workspace)
    other = other_workspace
    one = await gql(
        client, other, "query($id: UUID!) { operationalPlan(id: $id) { id } }", id=sales["id"]
    )
    assert one == {"data": {"operationalPlan": None}}
    listed = await gql(client, other, "{ operationalPlans { nodes { id } } }")
    assert listed["data"]["operationalPlans"]["nodes"] == []
    alignment = await gql(client, other, ALIGNMENT, quarter="2027-Q1")
    assert alignment["data"]["alignment"]["plans"] == 0
    for mutation, variables in (
        (
            'mutation($plan: UUID!) { updateOperationalPlan(id: $plan, summary: "x") { id } }',
            {"plan": sales["id"]},
        ),
        (
            """mutation($plan: UUID!, $goal: UUID!) { recordOperationalUpdate(planId: $plan,
                 input: {week: "2027-01-04", goals: [{goalId: $goal, value: "1",
                 status: ON_TRACK}]}) { id } }""",
            {"plan": sales["id"], "goal": sell["id"]},
        ),
    ):
        result = await gql(client, other, mutation, **variables)
        assert _codes(result) == ["not_found"], result
    mine = await gql(
        client,
        workspace,
        "query($id: UUID!) { operationalPlan(id: $id) { summary } }",
        id=sales["id"],
    )
    assert mine["data"]["operationalPlan"] == {"summary": None}


async def test_graphql_nested_plans_load_in_batches(client, workspace, db):
    """`dependencies { needsPlan { … } }` over a page of plans: the same statements for
    two dependencies as for six (dataloaders, not a query per dependency)."""
    statements = []

    def count(*_args, **_kwargs):
        statements.append(1)

    query = f"{{ operationalPlans(first: 50) {{ nodes {{ {PLAN_FIELDS} }} }} }}"

    async def measured():
        statements.clear()
        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        try:
            result = await gql(client, workspace, query)
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", count)
        assert "errors" not in result, result
        return len(statements)

    product = await _create(
        client, workspace, "product", deliverables=[{"name": f"D{i}"} for i in range(6)]
    )
    goals = [_goal(f"G{i}", source="opportunities_created") for i in range(3)]
    sales = await _create(client, workspace, "sales", goals=goals)
    marketing = await _create(client, workspace, "marketing", goals=goals)

    async def link(plan, index):
        await _send(
            client, workspace, "POST", f"{PLANS}/{plan['id']}/dependencies", 201,
            from_goal_id=plan["goals"][index]["id"],
            needs_deliverable_id=product["deliverables"][index]["id"],
        )  # fmt: skip

    await link(sales, 0)
    await link(marketing, 0)
    small = await measured()
    for index in (1, 2):
        await link(sales, index)
        await link(marketing, index)
    assert await measured() == small
