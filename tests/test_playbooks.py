"""Playbooks over REST: the default encodes the seeds, versions, validation, simulation."""

import copy

import yaml

from service.playbooks import document
from tests import factories

DEFAULT = document.default_document()


def _event(event_id, event_type, external_id="c-1", **fields):
    return {
        "id": event_id,
        "type": event_type,
        "occurred_at": "2027-01-12T09:30:00Z",
        "account": {"external_id": external_id, **fields.pop("account", {})},
        **fields,
    }


async def _send(client, ws, event, source="crm"):
    response = await client.post(f"/v1/events?source={source}", json=event, headers=ws.headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def _publish(client, ws, doc, **params):
    return await client.put(
        "/v1/playbook",
        content=yaml.safe_dump(doc),
        headers={**ws.headers, "content-type": "application/yaml"},
        params=params,
    )


async def _tasks(client, ws, account_id):
    response = await client.get(f"/v1/tasks?account_id={account_id}&limit=200", headers=ws.headers)
    return response.json()["items"]


async def _account(client, ws, external_id="c-1", source="crm"):
    response = await client.get(
        f"/v1/accounts?external_id={source}:{external_id}", headers=ws.headers
    )
    return response.json()["items"][0]


async def test_new_workspace_starts_with_default_playbook_v1(client, workspace):
    body = (await client.get("/v1/playbook", headers=workspace.headers)).json()
    assert body["version"] == 1
    assert body["document"] == DEFAULT
    text = await client.get("/v1/playbook?format=yaml", headers=workspace.headers)
    assert text.headers["content-type"].startswith("application/yaml")
    assert document.parse(text.text) == DEFAULT


async def test_default_playbook_walks_the_seed_lifecycle(client, workspace):
    owners = {
        "sales": {"user_id": "sam"},
        "professional_services": {"user_id": "priya"},
        "csm": {"user_id": "chris"},
    }
    first = await _send(
        client, workspace, _event("1", "opportunity_created", account={"name": "Acme"})
    )
    assert first["outcome"] == "applied" and first["rule"] == "Opportunity created"
    assert first["playbook_version"] == 1
    account = await _account(client, workspace)
    await client.patch(
        f"/v1/accounts/{account['id']}", json={"owners": owners}, headers=workspace.headers
    )
    await _send(client, workspace, _event("2", "closed_won"))
    await _send(client, workspace, _event("3", "go_live"))
    tasks = await _tasks(client, workspace, account["id"])
    titles = {task["title"] for task in tasks}
    assert "Handoff: Acme from Marketing to Sales" in titles
    assert "Handoff: Acme from Sales to Professional Services" in titles
    assert "Handoff: Acme from Professional Services to Customer Success" in titles
    assert "Post-production review for Acme" in titles
    marketing = [t for t in tasks if t["department"] == "marketing" and t["kind"] == "task"]
    assert marketing and "success story" in marketing[0]["title"]

    renewal = await _send(client, workspace, _event("4", "renewal_window_opened"))
    assert renewal["outcome"] == "applied"
    tasks = await _tasks(client, workspace, account["id"])
    prep = [t for t in tasks if t["title"] == "Prepare the renewal of Acme"]
    assert prep and prep[0]["department"] == "csm" and prep[0]["assignee_id"] == "chris"
    # The CSM stays quarterback of RENEW: no handoff for that move.
    assert not [t for t in tasks if t["kind"] == "handoff" and t["to_stage"] == "RENEW"]

    grown = await _send(client, workspace, _event("5", "renewal_won", data={"growth": True}))
    assert grown["rule"] == "Renewal won with growth"
    assert (await _account(client, workspace))["stage"] == "EXPAND"
    history = (
        await client.get(f"/v1/accounts/{account['id']}/transitions", headers=workspace.headers)
    ).json()["items"]
    assert [h["to_stage"] for h in history] == [
        "QUALIFY",
        "ACQUIRE",
        "IMPLEMENT",
        "VALUE",
        "RENEW",
        "EXPAND",
    ]
    assert all(h["playbook_version"] == 1 for h in history[1:])


async def test_late_closed_won_does_not_drag_a_live_account_back(client, workspace):
    await _send(client, workspace, _event("1", "opportunity_created", account={"name": "A"}))
    await _send(client, workspace, _event("2", "closed_won"))
    await _send(client, workspace, _event("3", "go_live"))
    late = await _send(client, workspace, _event("2b", "closed_won"))
    assert late["outcome"] == "ignored"
    assert "back" in late["reason"]
    assert (await _account(client, workspace))["stage"] == "VALUE"


async def test_closed_lost_nurtures(client, workspace):
    await _send(client, workspace, _event("1", "opportunity_created", account={"name": "Lo"}))
    lost = await _send(client, workspace, _event("2", "closed_lost"))
    assert lost["outcome"] == "applied"
    account = await _account(client, workspace)
    assert account["stage"] == "QUALIFY"
    tasks = await _tasks(client, workspace, account["id"])
    assert any(t["title"] == "Nurture Lo: closed lost" for t in tasks)


async def test_publish_validates_and_keeps_versions(client, workspace):
    doc = copy.deepcopy(DEFAULT)
    doc["name"] = "Version two"
    published = await _publish(client, workspace, doc, note="rename")
    assert published.status_code == 201, published.text
    assert published.json()["version"] == 2
    assert published.json()["note"] == "rename"
    assert (await client.get("/v1/playbook", headers=workspace.headers)).json()["version"] == 2
    versions = (await client.get("/v1/playbook/versions", headers=workspace.headers)).json()
    assert [v["version"] for v in versions["items"]] == [2, 1]
    old = await client.get("/v1/playbook/versions/1", headers=workspace.headers)
    assert old.json()["document"]["name"] == DEFAULT["name"]
    assert (
        await client.get("/v1/playbook/versions/9", headers=workspace.headers)
    ).status_code == 404

    as_json = await client.put("/v1/playbook", json=doc, headers=workspace.headers)
    assert as_json.status_code == 201 and as_json.json()["version"] == 3


async def test_invalid_playbook_is_422_with_pointers(client, workspace):
    doc = copy.deepcopy(DEFAULT)
    doc["rules"][0]["move_to"] = "MARS"
    doc["stages"][0]["quarterback"] = "legal"
    response = await _publish(client, workspace, doc)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_playbook"
    pointers = {error["pointer"] for error in body["errors"]}
    assert {"/rules/0/move_to", "/stages/0/quarterback"} <= pointers
    broken = await client.put(
        "/v1/playbook",
        content=b"name: [oops",
        headers={**workspace.headers, "content-type": "application/yaml"},
    )
    assert broken.status_code == 422
    valid = await client.post("/v1/playbook/validate", json=DEFAULT, headers=workspace.headers)
    assert valid.json() == {"valid": True}
    assert (await client.get("/v1/playbook", headers=workspace.headers)).json()["version"] == 1


async def test_publishing_needs_admin_and_stays_in_its_workspace(
    client, workspace, other_workspace
):
    writer = await factories.create_key(client, workspace, ["write"])
    assert (await _publish(client, writer, DEFAULT)).status_code == 403
    doc = copy.deepcopy(DEFAULT)
    doc["name"] = "Mine"
    await _publish(client, workspace, doc)
    theirs = (await client.get("/v1/playbook", headers=other_workspace.headers)).json()
    assert theirs["version"] == 1 and theirs["document"]["name"] == DEFAULT["name"]
    versions = (await client.get("/v1/playbook/versions", headers=other_workspace.headers)).json()
    assert [v["version"] for v in versions["items"]] == [1]


async def test_new_stage_model_drives_lifecycle_and_handoffs(client, workspace):
    doc = copy.deepcopy(DEFAULT)
    # Add an ONBOARD stage between IMPLEMENT and VALUE, led by the CSM, with its own checklist.
    implement = next(s for s in doc["stages"] if s["key"] == "IMPLEMENT")
    implement["next"] = ["ONBOARD", "CHURNED"]
    doc["stages"].insert(
        3,
        {
            "key": "ONBOARD",
            "name": "Onboard",
            "quarterback": "csm",
            "next": ["VALUE"],
            "handoff": {"checklist": ["Run the onboarding call"], "due_in_business_days": 1},
        },
    )
    value = next(s for s in doc["stages"] if s["key"] == "VALUE")
    value.pop("handoff")
    assert (await _publish(client, workspace, doc)).status_code == 201
    lifecycle = (await client.get("/v1/lifecycle", headers=workspace.headers)).json()
    assert [s["key"] for s in lifecycle["stages"]][:5] == [
        "QUALIFY",
        "ACQUIRE",
        "IMPLEMENT",
        "ONBOARD",
        "VALUE",
    ]
    account = await factories.create_account(client, workspace, name="Globex")
    results = await factories.walk(
        client, workspace, account["id"], "ACQUIRE", "IMPLEMENT", "ONBOARD"
    )
    handoff = results[-1]["handoff_task"]
    assert handoff["to_department"] == "csm"
    assert [item["text"] for item in handoff["checklist"]] == ["Run the onboarding call"]
    assert results[-1]["playbook_version"] == 2


async def test_an_account_an_event_creates_starts_at_the_playbook_first_stage(client, workspace):
    """The event path reads the first stage in its own lookup: a playbook that puts a LEAD
    stage first makes new accounts start there (and stay, as no rule leads out of it)."""
    doc = copy.deepcopy(DEFAULT)
    doc["stages"].insert(
        0, {"key": "LEAD", "name": "Lead", "quarterback": "marketing", "next": ["QUALIFY"]}
    )
    assert (await _publish(client, workspace, doc)).status_code == 201, "publish"
    created = await _send(
        client, workspace, _event("1", "opportunity_created", account={"name": "Initech"})
    )
    assert created["outcome"] == "ignored", created  # ACQUIRE is not next to LEAD
    account = await _account(client, workspace)
    assert account["stage"] == "LEAD"
    history = (
        await client.get(f"/v1/accounts/{account['id']}/transitions", headers=workspace.headers)
    ).json()["items"]
    assert history[0]["to_stage"] == "LEAD"
    assert history[0]["from_stage"] is None


async def test_dropping_a_stage_in_use_is_refused(client, workspace):
    account = await factories.create_account(client, workspace)
    await factories.walk(
        client, workspace, account["id"], "ACQUIRE", "IMPLEMENT", "VALUE", "EXPAND"
    )
    doc = copy.deepcopy(DEFAULT)
    doc["stages"] = [s for s in doc["stages"] if s["key"] != "EXPAND"]
    for stage in doc["stages"]:
        stage["next"] = [k for k in stage.get("next", []) if k != "EXPAND"]
        stage["back"] = [k for k in stage.get("back", []) if k != "EXPAND"]
    doc["rules"] = [r for r in doc["rules"] if r.get("move_to") != "EXPAND"]
    response = await _publish(client, workspace, doc)
    assert response.status_code == 409
    assert response.json()["stages_in_use"] == ["EXPAND"]


async def test_out_of_order_policy_apply_skipping(client, workspace):
    doc = copy.deepcopy(DEFAULT)
    doc["events"] = {"out_of_order": "apply_skipping"}
    await _publish(client, workspace, doc)
    await _send(client, workspace, _event("1", "opportunity_created", account={"name": "Skip"}))
    live = await _send(client, workspace, _event("2", "go_live"))
    assert live["outcome"] == "applied"
    account = await _account(client, workspace)
    assert account["stage"] == "VALUE"
    history = (
        await client.get(f"/v1/accounts/{account['id']}/transitions", headers=workspace.headers)
    ).json()["items"]
    assert history[-1]["skipped_stages"] == ["IMPLEMENT"]
    assert history[-1]["from_stage"] == "ACQUIRE"


async def test_rule_conditions_and_owner_role(client, workspace):
    doc = copy.deepcopy(DEFAULT)
    doc["rules"].insert(
        0,
        {
            "name": "Big deals get an exec sponsor",
            "on": "closed_won",
            "when": {"arr_min": "100000", "segment_in": ["high_touch"]},
            "move_to": "IMPLEMENT",
            "tasks": [
                {
                    "title": "Exec sponsor for {account.name} ({event.type})",
                    "owner_role": "sales",
                    "priority": "urgent",
                }
            ],
        },
    )
    await _publish(client, workspace, doc)
    big = await factories.create_account(
        client,
        workspace,
        name="Big",
        segment="high_touch",
        arr="250000",
        stage="ACQUIRE",
        owners={"sales": {"user_id": "sam", "name": "Sam"}},
        external_ids={"crm": "big"},
    )
    small = await factories.create_account(
        client,
        workspace,
        name="Small",
        segment="high_touch",
        arr="5000",
        stage="ACQUIRE",
        external_ids={"crm": "small"},
    )
    assert (await _send(client, workspace, _event("b", "closed_won", external_id="big")))[
        "rule"
    ] == "Big deals get an exec sponsor"
    assert (await _send(client, workspace, _event("s", "closed_won", external_id="small")))[
        "rule"
    ] == "Closed won"
    [sponsor] = [t for t in await _tasks(client, workspace, big["id"]) if t["kind"] == "task"]
    assert sponsor["title"] == "Exec sponsor for Big (closed_won)"
    assert (sponsor["department"], sponsor["assignee_id"], sponsor["priority"]) == (
        "sales",
        "sam",
        "urgent",
    )
    assert not [t for t in await _tasks(client, workspace, small["id"]) if t["kind"] == "task"]


async def test_simulation_writes_nothing(client, workspace):
    account = await factories.create_account(
        client, workspace, name="Sim", stage="IMPLEMENT", owners={"csm": {"user_id": "chris"}}
    )
    before = len(await _tasks(client, workspace, account["id"]))
    response = await client.post(
        "/v1/playbook/simulate",
        json={"event": _event("x", "go_live"), "account_id": account["id"]},
        headers=workspace.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["outcome"], body["from_stage"], body["to_stage"]) == (
        "applied",
        "IMPLEMENT",
        "VALUE",
    )
    assert body["handoff"]["department"] == "csm" and body["handoff"]["assignee_id"] == "chris"
    assert [t["department"] for t in body["tasks"]] == ["professional_services", "marketing"]
    assert len(await _tasks(client, workspace, account["id"])) == before
    assert (await client.get("/v1/events", headers=workspace.headers)).json()["items"] == []
    read = (await client.get(f"/v1/accounts/{account['id']}", headers=workspace.headers)).json()
    assert read["stage"] == "IMPLEMENT"


async def test_simulation_against_a_draft_and_a_described_account(client, workspace):
    draft = copy.deepcopy(DEFAULT)
    draft["events"] = {"out_of_order": "apply_skipping"}
    request = {
        "event": _event("x", "go_live"),
        "account": {"name": "Hypo", "stage": "ACQUIRE", "segment": "low_touch"},
    }
    published = await client.post("/v1/playbook/simulate", json=request, headers=workspace.headers)
    assert published.json()["outcome"] == "pending"
    drafted = await client.post(
        "/v1/playbook/simulate", json={**request, "playbook": draft}, headers=workspace.headers
    )
    body = drafted.json()
    assert (body["outcome"], body["skipped_stages"], body["draft"]) == (
        "applied",
        ["IMPLEMENT"],
        True,
    )
    invalid = copy.deepcopy(DEFAULT)
    invalid["rules"][0]["move_to"] = "MARS"
    bad = await client.post(
        "/v1/playbook/simulate", json={**request, "playbook": invalid}, headers=workspace.headers
    )
    assert bad.status_code == 422


async def test_a_described_account_owner_needs_a_user_id(client, workspace):
    """Owners of a described account are written as an account's are: a 422, not a 500."""
    request = {
        "event": _event("x", "go_live"),
        "account": {"stage": "IMPLEMENT", "owners": {"csm": {"name": "Chris"}}},
    }
    response = await client.post("/v1/playbook/simulate", json=request, headers=workspace.headers)
    assert response.status_code == 422, response.text
    assert "user_id" in response.text
    request["account"]["owners"] = {"csm": {"user_id": "chris", "name": "Chris"}}
    response = await client.post("/v1/playbook/simulate", json=request, headers=workspace.headers)
    assert response.status_code == 200, response.text
    assert response.json()["handoff"]["assignee_id"] == "chris"


async def test_renewal_quarterback_setting_follows_the_playbook_role(client, workspace):
    await client.patch(
        "/v1/workspace", json={"renewal_quarterback": "revops"}, headers=workspace.headers
    )
    doc = copy.deepcopy(DEFAULT)
    doc["name"] = "republished"
    await _publish(client, workspace, doc)
    stages = (await client.get("/v1/lifecycle", headers=workspace.headers)).json()["stages"]
    assert next(s for s in stages if s["key"] == "RENEW")["quarterback"] == "revops"


async def test_closed_won_scaffolds_the_success_plan_from_the_contract(client, workspace):
    await _send(client, workspace, _event("1", "opportunity_created", account={"name": "Plan"}))
    won = _event(
        "2",
        "closed_won",
        contract={"start": "2027-04-01", "end": "2028-03-31", "arr": "60000.00", "currency": "USD"},
    )
    assert (await _send(client, workspace, won))["outcome"] == "applied"
    account = await _account(client, workspace)
    plan = await client.get(f"/v1/accounts/{account['id']}/plan", headers=workspace.headers)
    assert plan.status_code == 200, plan.text
    body = plan.json()
    assert body["starts_on"] == "2027-04-01" and body["contract_year"] == 1
    assert [q["focus"] for q in body["timeline"]] == ["onboarding", "value", "expansion", "renewal"]
    assert body["touchpoints"][0]["name"] == "Business review"
    # A repeat of the same fact does not make a second plan.
    await _send(client, workspace, _event("2-again", "closed_won"))
    again = await client.get(f"/v1/accounts/{account['id']}/plan", headers=workspace.headers)
    assert again.json()["id"] == body["id"]
