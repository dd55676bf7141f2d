"""GraphQL at /graphql: same keys and scopes as REST, same service functions, typed errors,
connections, no N+1, limits, and nothing across workspaces."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import event

from service.accounts import service as accounts_service
from service.app import create_app
from service.config import Settings
from service.lifecycle import transitions
from service.plans import service as plans_service
from tests import factories

OWNERS = {
    "sales": {"user_id": "sam", "name": "Sam"},
    "professional_services": {"user_id": "priya", "name": "Priya"},
}


async def gql(
    client: httpx.AsyncClient,
    ws: factories.WorkspaceKey | None,
    query: str,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers=ws.headers if ws else {},
    )
    assert response.status_code == 200, response.text
    return response.json()


def codes(result: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in result.get("errors", [])]


async def _in_implement(client, ws, name="Acme"):
    account = await factories.create_account(
        client, ws, name=name, owners=OWNERS, external_ids={"hubspot": f"{name}-1"}
    )
    await factories.walk(client, ws, account["id"], "ACQUIRE", "IMPLEMENT")
    return account


# --- one app, one gate ---------------------------------------------------------------------


async def test_graphiql_is_served_to_browsers(client, workspace):
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_missing_or_unknown_key_is_not_authenticated(client, workspace):
    result = await gql(client, None, "{ accounts { totalCount } }")
    assert result["data"] is None
    assert codes(result) == ["not_authenticated"]
    bogus = factories.WorkspaceKey(workspace.id, "qb_not-a-key")
    assert codes(await gql(client, bogus, "{ workspace { name } }")) == ["not_authenticated"]


async def test_scopes_as_in_rest(client, workspace):
    reader = await factories.create_key(client, workspace, ["read"])
    assert (await gql(client, reader, "{ workspace { name } }"))["data"]["workspace"] == {
        "name": "Acme Workspace"
    }
    result = await gql(client, reader, 'mutation { createAccount(input: {name: "X"}) { id } }')
    assert codes(result) == ["permission_denied"]
    assert result["errors"][0]["extensions"]["required_scope"] == "write"
    listed = await client.get("/v1/accounts", headers=workspace.headers)
    assert listed.json()["items"] == []  # the refused mutation wrote nothing
    writer = await factories.create_key(client, workspace, ["write"])
    assert codes(await gql(client, writer, "{ webhookSources { id } }")) == ["permission_denied"]
    assert (await gql(client, workspace, "{ webhookSources { id } }"))["data"] == {
        "webhookSources": []
    }


# --- queries ---------------------------------------------------------------------------------


ACCOUNT_PAGE = """
query ($id: UUID!) {
  account(id: $id) {
    name stageKey stage { key quarterback { key name } }
    quarterback { department { key } owner { userId name } }
    owners { departmentKey userId name }
    externalIds { source externalId }
    transitions(last: 2) { fromStage toStage handoffTask { kind department { key } } }
    tasks(status: [OPEN]) { title assigneeId }
    successPlan { contractYear health outcomes { kpi } }
    opportunities { externalId status }
    contracts { arr status opportunity { externalId } }
    events { type outcome }
  }
}
"""


async def test_account_page_has_everything_that_belongs_to_it(client, workspace):
    account = await factories.create_account(client, workspace, name="Acme", owners=OWNERS)
    await factories.walk(client, workspace, account["id"], "ACQUIRE")
    won = await client.post(
        f"/v1/accounts/{account['id']}/events",
        json={
            "id": "won-1",
            "type": "closed_won",
            "occurred_at": "2027-04-01T00:00:00Z",
            "opportunity": {"external_id": "deal-1"},
            "contract": {"start": "2027-04-01", "end": "2028-03-31", "arr": "84000.00"},
        },
        headers=workspace.headers,
    )
    assert won.json()["outcome"] == "applied", won.json()
    result = await gql(client, workspace, ACCOUNT_PAGE, {"id": account["id"]})
    assert "errors" not in result, result
    page = result["data"]["account"]
    assert page["stageKey"] == "IMPLEMENT"
    assert page["stage"]["quarterback"]["key"] == "professional_services"
    assert page["quarterback"] == {
        "department": {"key": "professional_services"},
        "owner": {"userId": "priya", "name": "Priya"},
    }
    assert {o["departmentKey"] for o in page["owners"]} == {"sales", "professional_services"}
    # Newest first, capped at `last`.
    assert [(t["fromStage"], t["toStage"]) for t in page["transitions"]] == [
        ("ACQUIRE", "IMPLEMENT"),
        ("QUALIFY", "ACQUIRE"),
    ]
    handoff = page["transitions"][0]["handoffTask"]
    assert handoff == {"kind": "handoff", "department": {"key": "professional_services"}}
    assert {t["assigneeId"] for t in page["tasks"]} >= {"priya"}
    assert page["successPlan"]["contractYear"] == 1
    assert page["opportunities"] == [{"externalId": "deal-1", "status": "WON"}]
    assert page["contracts"] == [
        {"arr": "84000.00", "status": "ACTIVE", "opportunity": {"externalId": "deal-1"}}
    ]
    assert page["events"] == [{"type": "closed_won", "outcome": "APPLIED"}]


async def test_account_by_external_id(client, workspace):
    account = await factories.create_account(client, workspace, external_ids={"hubspot": "77"})
    query = "query ($ref: String!) { account(externalId: $ref) { id } }"
    found = await gql(client, workspace, query, {"ref": "hubspot:77"})
    assert found["data"]["account"] == {"id": account["id"]}
    assert (await gql(client, workspace, query, {"ref": "hubspot:78"}))["data"]["account"] is None
    both = await gql(
        client,
        workspace,
        '{ account(id: "' + account["id"] + '", externalId: "hubspot:77") { id } }',
    )
    assert codes(both) == ["invalid_input"]


ACCOUNTS = """
query ($first: Int, $after: String, $filter: AccountFilter, $orderBy: AccountOrder) {
  accounts(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { name arr } }
  }
}
"""


async def test_accounts_connection_pages_filters_and_orders(client, workspace):
    for name, arr, segment in (
        ("Delta", "400", "high_touch"),
        ("Alpha", "100", "low_touch"),
        ("Charlie", "300", "high_touch"),
        ("Bravo", "200", "high_touch"),
    ):
        await factories.create_account(client, workspace, name=name, arr=arr, segment=segment)

    async def names(**variables):
        result = await gql(client, workspace, ACCOUNTS, variables)
        assert "errors" not in result, result
        return result["data"]["accounts"]

    first = await names(first=2, orderBy={"field": "NAME"})
    assert [e["node"]["name"] for e in first["edges"]] == ["Alpha", "Bravo"]
    assert first["totalCount"] == 4
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await names(first=2, orderBy={"field": "NAME"}, after=first["pageInfo"]["endCursor"])
    assert [e["node"]["name"] for e in rest["edges"]] == ["Charlie", "Delta"]
    assert rest["pageInfo"]["hasNextPage"] is False

    by_arr = await names(first=3, orderBy={"field": "ARR", "direction": "DESC"})
    assert [e["node"]["arr"] for e in by_arr["edges"]] == ["400.00", "300.00", "200.00"]
    tail = await names(
        orderBy={"field": "ARR", "direction": "DESC"}, after=by_arr["edges"][1]["cursor"]
    )
    assert [e["node"]["arr"] for e in tail["edges"]] == ["200.00", "100.00"]

    created = await names()
    assert [e["node"]["name"] for e in created["edges"]] == ["Delta", "Alpha", "Charlie", "Bravo"]
    filtered = await names(filter={"segment": "HIGH_TOUCH", "search": "a"})
    assert filtered["totalCount"] == 3
    assert {e["node"]["name"] for e in filtered["edges"]} == {"Delta", "Charlie", "Bravo"}


async def test_page_size_is_capped_with_a_clear_error(client, workspace):
    result = await gql(client, workspace, ACCOUNTS, {"first": 101})
    assert codes(result) == ["invalid_input"]
    assert "between 1 and 100" in result["errors"][0]["message"]
    nested = await gql(
        client, workspace, "{ accounts { nodes { transitions(last: 500) { id } } } }"
    )
    assert "errors" not in nested  # no account, nothing to resolve
    await factories.create_account(client, workspace)
    nested = await gql(
        client, workspace, "{ accounts { nodes { transitions(last: 500) { id } } } }"
    )
    assert codes(nested) == ["invalid_input"]
    bad_cursor = await gql(client, workspace, ACCOUNTS, {"after": "%%%"})
    assert codes(bad_cursor) == ["invalid_input"]


async def test_handoff_queue_lists_open_handoffs_oldest_first(client, workspace):
    first = await _in_implement(client, workspace, "First")
    second = await _in_implement(client, workspace, "Second")
    query = """
    { handoffQueue(department: "professional_services") {
        nodes { title handoffStatus account { id }
                previousQuarterback { department { key } owner { userId } } } } }
    """
    queue = (await gql(client, workspace, query))["data"]["handoffQueue"]["nodes"]
    assert [node["account"]["id"] for node in queue] == [first["id"], second["id"]]
    assert queue[0]["handoffStatus"] == "PENDING"
    assert queue[0]["previousQuarterback"] == {
        "department": {"key": "sales"},
        "owner": {"userId": "sam"},
    }
    task_id = (
        await client.get(
            f"/v1/tasks?account_id={first['id']}&department=professional_services",
            headers=workspace.headers,
        )
    ).json()["items"][0]["id"]
    accepted = await gql(
        client,
        workspace,
        'mutation ($id: UUID!) { acceptHandoff(taskId: $id, comment: "on it") '
        "{ status handoffStatus } }",
        {"id": task_id},
    )
    assert accepted["data"]["acceptHandoff"] == {
        "status": "IN_PROGRESS",
        "handoffStatus": "ACCEPTED",
    }
    queue = (await gql(client, workspace, query))["data"]["handoffQueue"]["nodes"]
    assert [node["account"]["id"] for node in queue] == [second["id"]]


async def test_tasks_query_filters(client, workspace):
    account = await _in_implement(client, workspace)
    query = """query ($filter: TaskFilter) {
        tasks(filter: $filter) { nodes { department { key } } } }"""
    result = await gql(client, workspace, query, {"filter": {"accountId": account["id"]}})
    assert [n["department"]["key"] for n in result["data"]["tasks"]["nodes"]] == [
        "sales",
        "professional_services",
    ]
    result = await gql(
        client, workspace, query, {"filter": {"department": "sales", "status": ["DONE"]}}
    )
    assert result["data"]["tasks"]["nodes"] == []


# --- mutations ---------------------------------------------------------------------------------


async def test_create_and_update_account(client, workspace):
    created = await gql(
        client,
        workspace,
        """mutation { createAccount(input: {
            name: "Globex", domain: "globex.com", arr: "1200.50", segment: HIGH_TOUCH,
            owners: [{department: "sales", userId: "sam", name: "Sam"}],
            externalIds: [{source: "hubspot", externalId: "9"}]
        }) { id name arr segment stageKey owners { userId } externalIds { externalId } } }""",
    )
    assert "errors" not in created, created
    account = created["data"]["createAccount"]
    assert account["arr"] == "1200.50" and account["segment"] == "HIGH_TOUCH"
    assert account["stageKey"] == "QUALIFY"
    rest = (await client.get(f"/v1/accounts/{account['id']}", headers=workspace.headers)).json()
    assert rest["owners"] == {"sales": {"user_id": "sam", "name": "Sam"}}
    assert rest["external_ids"] == {"hubspot": "9"}

    updated = await gql(
        client,
        workspace,
        """mutation ($id: UUID!) { updateAccount(id: $id, input: {
            name: "Globex Corp", owners: [{department: "sales", userId: null}]
        }) { name domain owners { userId } } }""",
        {"id": account["id"]},
    )
    assert updated["data"]["updateAccount"] == {
        "name": "Globex Corp",
        "domain": "globex.com",
        "owners": [],
    }

    invalid = await gql(
        client,
        workspace,
        'mutation { createAccount(input: {name: "X", domain: "not a domain"}) { id } }',
    )
    assert codes(invalid) == ["invalid_input"]
    assert invalid["errors"][0]["extensions"]["errors"][0]["field"] == "input.domain"
    taken = await gql(
        client,
        workspace,
        'mutation { createAccount(input: {name: "Y", externalIds: [{source: "hubspot", '
        'externalId: "9"}]}) { id } }',
    )
    assert codes(taken) == ["conflict"]
    assert "hubspot:9" in taken["errors"][0]["message"]
    assert "Traceback" not in str(taken)


TRANSITION = """
mutation ($id: UUID!, $input: TransitionInput!) {
  transitionAccount(accountId: $id, input: $input) {
    __typename
    ... on TransitionSucceeded { transition { toStage } account { stageKey } handoffTask { title } }
    ... on TransitionNotAllowed { message currentStage allowedStages }
    ... on StageChanged { currentStage }
  }
}
"""


async def test_transition_results_are_typed(client, workspace):
    account = await factories.create_account(client, workspace, name="Acme")
    moved = await gql(
        client,
        workspace,
        TRANSITION,
        {"id": account["id"], "input": {"toStage": "ACQUIRE", "handoff": {"notes": "hot"}}},
    )
    result = moved["data"]["transitionAccount"]
    assert result["__typename"] == "TransitionSucceeded"
    assert result["account"] == {"stageKey": "ACQUIRE"}
    assert result["handoffTask"]["title"] == "Handoff: Acme from Marketing to Sales"

    refused = await gql(
        client, workspace, TRANSITION, {"id": account["id"], "input": {"toStage": "RENEW"}}
    )
    result = refused["data"]["transitionAccount"]
    assert result["__typename"] == "TransitionNotAllowed"
    assert result["currentStage"] == "ACQUIRE"
    assert "IMPLEMENT" in result["allowedStages"] and "RENEW" not in result["allowedStages"]

    stale = await gql(
        client,
        workspace,
        TRANSITION,
        {"id": account["id"], "input": {"toStage": "IMPLEMENT", "fromStage": "QUALIFY"}},
    )
    assert stale["data"]["transitionAccount"] == {
        "__typename": "StageChanged",
        "currentStage": "ACQUIRE",
    }
    unknown = await gql(
        client, workspace, TRANSITION, {"id": account["id"], "input": {"toStage": "NOPE"}}
    )
    assert codes(unknown) == ["invalid_input"]
    read = (await client.get(f"/v1/accounts/{account['id']}", headers=workspace.headers)).json()
    assert read["stage"] == "ACQUIRE"


async def test_task_mutations(client, workspace):
    account = await _in_implement(client, workspace)
    tasks = (
        await client.get(f"/v1/tasks?account_id={account['id']}", headers=workspace.headers)
    ).json()["items"]
    handoff = tasks[-1]
    early = await gql(
        client,
        workspace,
        "mutation ($id: UUID!) { completeTask(id: $id) { status } }",
        {"id": handoff["id"]},
    )
    assert codes(early) == ["conflict"]  # a pending handoff is accepted first
    item = handoff["checklist"][0]["id"]
    ticked = await gql(
        client,
        workspace,
        "mutation ($id: UUID!, $item: String!) { tickChecklistItem(taskId: $id, itemId: $item) "
        "{ checklist { id done } } }",
        {"id": handoff["id"], "item": item},
    )
    assert {"id": item, "done": True} in ticked["data"]["tickChecklistItem"]["checklist"]
    rejected = await gql(
        client,
        workspace,
        'mutation ($id: UUID!) { rejectHandoff(taskId: $id, reason: "no SOW") '
        "{ handoff { status handoffStatus } "
        "returnedTask { kind department { key } assigneeId } } }",
        {"id": handoff["id"]},
    )
    assert rejected["data"]["rejectHandoff"] == {
        "handoff": {"status": "CANCELLED", "handoffStatus": "REJECTED"},
        "returnedTask": {
            "kind": "handoff_rework",
            "department": {"key": "sales"},
            "assigneeId": "sam",
        },
    }
    closed = await gql(
        client,
        workspace,
        "mutation ($id: UUID!) { updateTask(id: $id, input: {status: OPEN}) { status } }",
        {"id": handoff["id"]},
    )
    assert codes(closed) == ["task_status_not_allowed"]
    assert closed["errors"][0]["extensions"]["allowed_statuses"] == []
    created = await client.post(
        "/v1/tasks",
        json={"account_id": account["id"], "title": "Send the SOW", "department": "sales"},
        headers=workspace.headers,
    )
    first = created.json()["id"]
    assigned = await gql(
        client,
        workspace,
        'mutation ($id: UUID!) { assignTask(id: $id, assigneeId: "ann", assigneeName: "Ann") '
        "{ assigneeId } }",
        {"id": first},
    )
    assert assigned["data"]["assignTask"] == {"assigneeId": "ann"}
    for mutation, status in (("startTask", "IN_PROGRESS"), ("cancelTask", "CANCELLED")):
        done = await gql(
            client,
            workspace,
            f"mutation ($id: UUID!) {{ {mutation}(id: $id) {{ status }} }}",
            {"id": first},
        )
        assert done["data"][mutation] == {"status": status}
    activity = await client.get(f"/v1/tasks/{first}/activity", headers=workspace.headers)
    assert [a["action"] for a in activity.json()["items"]] == [  # the same audit as REST
        "created",
        "updated",
        "updated",
        "updated",
    ]


async def test_plan_editing_and_measurements(client, workspace):
    account = await factories.create_account(client, workspace)
    put = await gql(
        client,
        workspace,
        """mutation ($id: UUID!) { putPlan(accountId: $id, input: {
            startsOn: "2027-01-01",
            outcomes: [{kpi: "Active users", baseline: "10", target: "110", targetQuarter: 2}]
        }) { contractYear endsOn outcomes { id kpi status } } }""",
        {"id": account["id"]},
    )
    assert "errors" not in put, put
    plan = put["data"]["putPlan"]
    assert plan["contractYear"] == 1 and plan["endsOn"] == "2027-12-31"
    outcome = plan["outcomes"][0]
    recorded = await gql(
        client,
        workspace,
        """mutation ($a: UUID!, $o: UUID!) {
            recordMeasurement(accountId: $a, outcomeId: $o, value: "60", measuredOn: "2027-02-01")
            { value } }""",
        {"a": account["id"], "o": outcome["id"]},
    )
    assert Decimal(recorded["data"]["recordMeasurement"]["value"]) == 60
    read = await gql(
        client,
        workspace,
        """query ($id: UUID!) { account(id: $id) { successPlan(asOf: "2027-02-15") {
            health outcomes { status progress latestMeasurement { value } measurements { value } }
        } } }""",
        {"id": account["id"]},
    )
    plan = read["data"]["account"]["successPlan"]
    assert plan["outcomes"][0]["status"] == "IN_PROGRESS"
    assert Decimal(plan["outcomes"][0]["progress"]) == Decimal("0.5")
    assert [Decimal(m["value"]) for m in plan["outcomes"][0]["measurements"]] == [60]
    too_many = await gql(
        client,
        workspace,
        """mutation ($id: UUID!, $o: OutcomeInput!) {
            putPlan(accountId: $id, input: {outcomes: [$o, $o, $o, $o]}) { id } }""",
        {
            "id": account["id"],
            "o": {"kpi": "k", "baseline": "0", "target": "1", "targetQuarter": 1},
        },
    )
    assert codes(too_many) == ["invalid_input"]


async def test_submit_event_applies_once(client, workspace):
    account = await factories.create_account(client, workspace, external_ids={"hubspot": "c1"})
    mutation = """mutation ($e: EventInput!) { submitEvent(event: $e, source: "hubspot") {
        duplicate event { outcome account { stageKey } transition { toStage } } } }"""
    event_input = {
        "id": "opp-1",
        "type": "opportunity_created",
        "occurredAt": "2027-01-01T00:00:00Z",
        "account": {"externalId": "c1"},
    }
    first = await gql(client, workspace, mutation, {"e": event_input})
    assert first["data"]["submitEvent"] == {
        "duplicate": False,
        "event": {
            "outcome": "APPLIED",
            "account": {"stageKey": "ACQUIRE"},
            "transition": {"toStage": "ACQUIRE"},
        },
    }
    again = await gql(client, workspace, mutation, {"e": event_input})
    assert again["data"]["submitEvent"]["duplicate"] is True
    bad = await gql(client, workspace, mutation, {"e": {**event_input, "type": "nonsense"}})
    assert codes(bad) == ["invalid_input"]
    events = await gql(
        client, workspace, "{ events(filter: {outcome: DUPLICATE}) { nodes { id } } }"
    )
    assert len(events["data"]["events"]["nodes"]) == 1
    assert account["id"]


async def test_simulate_and_publish_playbook(client, workspace):
    simulated = await gql(
        client,
        workspace,
        """mutation { simulatePlaybook(
            event: {id: "x", type: "closed_won", occurredAt: "2027-01-01T00:00:00Z"},
            account: {stage: "ACQUIRE"}
        ) { outcome fromStage toStage handoff { department } } }""",
    )
    assert simulated["data"]["simulatePlaybook"] == {
        "outcome": "applied",
        "fromStage": "ACQUIRE",
        "toStage": "IMPLEMENT",
        "handoff": {"department": "professional_services"},
    }
    current = await gql(client, workspace, "{ playbook { version document } }")
    document = current["data"]["playbook"]["document"]
    publish = (
        'mutation ($d: JSON!) { publishPlaybook(document: $d, note: "same") { version note } }'
    )
    writer = await factories.create_key(client, workspace, ["write"])
    assert codes(await gql(client, writer, publish, {"d": document})) == ["permission_denied"]
    published = await gql(client, workspace, publish, {"d": document})
    assert published["data"]["publishPlaybook"] == {"version": 2, "note": "same"}
    invalid = await gql(client, workspace, publish, {"d": {"name": 1}})
    assert codes(invalid) == ["invalid_playbook"]
    assert invalid["errors"][0]["extensions"]["errors"]
    versions = await gql(client, workspace, "{ playbookVersions { version } }")
    assert versions["data"]["playbookVersions"] == [{"version": 2}, {"version": 1}]


async def test_a_failed_mutation_leaves_nothing_and_siblings_commit(client, workspace):
    result = await gql(
        client,
        workspace,
        """mutation ($ref: [ExternalIdInput!]!) {
            ok: createAccount(input: {name: "Kept", externalIds: $ref}) { id }
            clash: createAccount(input: {name: "Dropped", externalIds: $ref}) { id }
        }""",
        {"ref": [{"source": "crm", "externalId": "1"}]},
    )
    assert result["data"] is None or result["data"].get("clash") is None
    assert codes(result) == ["conflict"]
    names = [
        a["name"]
        for a in (await client.get("/v1/accounts", headers=workspace.headers)).json()["items"]
    ]
    assert names == ["Kept"]


# --- safe to expose --------------------------------------------------------------------------


async def test_depth_and_alias_limits(client, workspace):
    deep = "{ accounts { nodes { " + "tasks { account { " * 5 + "name" + " } }" * 5 + " } } }"
    result = await gql(client, workspace, deep)
    assert codes(result) == ["query_too_deep"]
    aliases = "{ " + " ".join(f"a{i}: workspace {{ name }}" for i in range(16)) + " }"
    assert codes(await gql(client, workspace, aliases)) == ["too_many_aliases"]
    fifteen = "{ " + " ".join(f"a{i}: workspace {{ name }}" for i in range(15)) + " }"
    assert "errors" not in await gql(client, workspace, fifteen)
    unknown = await gql(client, workspace, "{ nope }")
    assert codes(unknown) == ["invalid_query"]


async def test_introspection_can_be_turned_off(db, workspace):
    introspect = {"query": "{ __schema { types { name } } }"}
    plain = {"query": "{ workspace { name } }"}
    for enabled in (True, False):
        settings = Settings(
            database_url=db.url, scheduler_enabled=False, graphql_introspection=enabled
        )
        app = create_app(settings, engine=db.engine)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                schema = await client.post("/graphql", json=introspect, headers=workspace.headers)
                query = await client.post("/graphql", json=plain, headers=workspace.headers)
                page = await client.get("/graphql", headers={"Accept": "text/html"})
        assert query.json() == {"data": {"workspace": {"name": "Acme Workspace"}}}
        if enabled:
            assert schema.json()["data"]["__schema"]["types"]
            assert "graphiql" in page.text.lower()
        else:
            assert codes(schema.json()) and set(codes(schema.json())) == {"introspection_disabled"}
            assert "graphiql" not in page.text.lower()


async def test_webhook_sources_never_show_secrets(client, workspace):
    created = await client.post(
        "/v1/webhook-sources",
        json={"kind": "standard", "name": "Billing", "api_token": "tok-123"},
        headers=workspace.headers,
    )
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    fields = await gql(client, workspace, '{ __type(name: "WebhookSource") { fields { name } } }')
    names = {field["name"] for field in fields["data"]["__type"]["fields"]}
    assert not {"secret", "previousSecret", "apiToken"} & names
    listed = await gql(
        client,
        workspace,
        "{ webhookSources { " + " ".join(sorted(names)) + " } }",
    )
    assert listed["data"]["webhookSources"][0]["hasApiToken"] is True
    assert secret not in str(listed) and "tok-123" not in str(listed)


# --- tenancy ---------------------------------------------------------------------------------


async def test_another_workspace_sees_and_changes_nothing(client, workspace, other_workspace):
    account = await _in_implement(client, workspace)
    task = (
        await client.get(f"/v1/tasks?account_id={account['id']}", headers=workspace.headers)
    ).json()["items"][-1]
    other = other_workspace
    seen = await gql(
        client,
        other,
        """query ($id: UUID!, $task: UUID!) {
            accounts { totalCount nodes { id } }
            account(id: $id) { id }
            byRef: account(externalId: "hubspot:Acme-1") { id }
            task(id: $task) { id }
            tasks { nodes { id } }
            handoffQueue(department: "professional_services") { nodes { id } }
            events { nodes { id } }
        }""",
        {"id": account["id"], "task": task["id"]},
    )
    assert seen["data"] == {
        "accounts": {"totalCount": 0, "nodes": []},
        "account": None,
        "byRef": None,
        "task": None,
        "tasks": {"nodes": []},
        "handoffQueue": {"nodes": []},
        "events": {"nodes": []},
    }
    for mutation, variables in (
        ('updateAccount(id: $id, input: {name: "Hijacked"}) { id }', {"id": account["id"]}),
        (
            'transitionAccount(accountId: $id, input: {toStage: "VALUE"}) { __typename }',
            {"id": account["id"]},
        ),
        ("acceptHandoff(taskId: $id) { id }", {"id": task["id"]}),
        ("completeTask(id: $id) { id }", {"id": task["id"]}),
        ('rejectHandoff(taskId: $id, reason: "no") { handoff { id } }', {"id": task["id"]}),
        ('putPlan(accountId: $id, input: {startsOn: "2027-01-01"}) { id }', {"id": account["id"]}),
    ):
        result = await gql(client, other, f"mutation ($id: UUID!) {{ {mutation} }}", variables)
        assert codes(result) == ["not_found"], (mutation, result)
    read = (await client.get(f"/v1/accounts/{account['id']}", headers=workspace.headers)).json()
    assert (read["name"], read["stage"]) == ("Acme", "IMPLEMENT")
    still = (await client.get(f"/v1/tasks/{task['id']}", headers=workspace.headers)).json()
    assert still["handoff_status"] == "pending"
    plan = await client.get(f"/v1/accounts/{account['id']}/plan", headers=workspace.headers)
    assert plan.status_code == 404


# --- no N+1 ------------------------------------------------------------------------------------

NESTED = """
query ($first: Int!) {
  accounts(first: $first) {
    nodes {
      name
      owners { userId }
      quarterback { department { name } owner { userId } }
      tasks(status: [OPEN, IN_PROGRESS]) { title previousQuarterback { owner { userId } } }
      successPlan(asOf: "2027-03-01") { health outcomes { kpi health latestMeasurement { value } } }
      transitions(last: 5) { toStage }
    }
  }
}
"""


async def _seed_accounts(db, workspace_id, count: int) -> None:
    async with db.sessionmaker() as session, session.begin():
        for index in range(count):
            view = await accounts_service.create_account(
                session,
                workspace_id=workspace_id,
                name=f"Account {index:03}",
                owners={
                    "sales": {"user_id": f"s{index}", "name": None},
                    "professional_services": {"user_id": f"p{index}", "name": None},
                },
            )
            for stage in ("ACQUIRE", "IMPLEMENT"):
                await transitions.transition_account(
                    session, workspace_id=workspace_id, account_id=view.account.id, to_stage=stage
                )
            plan = await plans_service.put_plan(
                session,
                workspace_id=workspace_id,
                account_id=view.account.id,
                starts_on=date(2027, 1, 1),
                outcomes=[
                    {"kpi": "Seats", "baseline": "0", "target": "100", "target_quarter": 2},
                    {"kpi": "NPS", "baseline": "10", "target": "40", "target_quarter": 4},
                ],
            )
            await plans_service.record_measurement(
                session,
                workspace_id=workspace_id,
                account_id=view.account.id,
                outcome_id=plan.outcomes[0].outcome.id,
                value=Decimal("30"),
                measured_on=date(2027, 2, 1),
            )


async def _statements(client, db, ws, first: int) -> tuple[int, dict[str, Any]]:
    executed: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        executed.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        result = await gql(client, ws, NESTED, {"first": first})
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert "errors" not in result, result
    return len(executed), result


async def test_nested_page_costs_the_same_statements_for_10_and_100_accounts(client, db, workspace):
    await _seed_accounts(db, workspace.id, 100)
    ten, small = await _statements(client, db, workspace, 10)
    hundred, large = await _statements(client, db, workspace, 100)
    assert len(small["data"]["accounts"]["nodes"]) == 10
    nodes = large["data"]["accounts"]["nodes"]
    assert len(nodes) == 100
    assert hundred == ten
    # begin, key, accounts, owners, stages, departments, tasks, transitions, plans, outcomes,
    # measurements: one statement per relation, whatever the page size.
    assert hundred <= 11, hundred
    last = nodes[-1]
    assert last["owners"] and last["quarterback"]["owner"] == {"userId": "p99"}
    assert [t["toStage"] for t in last["transitions"]] == ["IMPLEMENT", "ACQUIRE", "QUALIFY"]
    assert Decimal(last["successPlan"]["outcomes"][0]["latestMeasurement"]["value"]) == 30
    assert [t["previousQuarterback"]["owner"] for t in last["tasks"]] == [None, {"userId": "s99"}]


async def test_token_limit(client, workspace):
    huge = "{ " + " ".join(["workspace { name }"] * 1700) + " }"
    assert codes(await gql(client, workspace, huge)) == ["query_too_large"]


async def test_unexpected_errors_are_masked(client, workspace, monkeypatch, caplog):
    from service.workspaces import service as workspaces_service

    async def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(workspaces_service, "get_workspace", broken)
    result = await gql(client, workspace, "{ workspace { name } }")
    assert codes(result) == ["internal_error"]
    assert result["errors"][0]["message"] == "an unexpected error occurred"
    assert "secret internals" not in str(result) and "Traceback" not in str(result)
    assert "secret internals" in caplog.text  # logged for operators
