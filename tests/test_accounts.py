"""Accounts over REST: create, read, update, filters, pagination, tenancy."""

import uuid

from tests import factories


async def test_create_and_read_account(client, workspace):
    created = await factories.create_account(
        client,
        workspace,
        name="Acme",
        domain="Acme.Example",
        segment="high_touch",
        arr="120000.50",
        currency="EUR",
        owners={"sales": {"user_id": "u1", "name": "Ann"}},
        external_ids={"hubspot": "123"},
    )
    assert created["stage"] == "QUALIFY"
    assert created["quarterback"] == "marketing"
    assert created["domain"] == "acme.example"
    assert created["arr"] == "120000.50"
    assert created["owners"] == {"sales": {"user_id": "u1", "name": "Ann"}}
    assert created["external_ids"] == {"hubspot": "123"}
    assert created["stage_entered_at"].endswith(("Z", "+00:00"))

    read = await client.get(f"/v1/accounts/{created['id']}", headers=workspace.headers)
    assert read.status_code == 200
    assert read.json() == created

    history = await client.get(
        f"/v1/accounts/{created['id']}/transitions", headers=workspace.headers
    )
    [first] = history.json()["items"]
    assert first["from_stage"] is None and first["to_stage"] == "QUALIFY"


async def test_money_stays_exact(client, workspace):
    created = await factories.create_account(client, workspace, arr="0.10")
    patched = await client.patch(
        f"/v1/accounts/{created['id']}", json={"arr": "1234567890.99"}, headers=workspace.headers
    )
    assert patched.json()["arr"] == "1234567890.99"
    too_precise = await client.post(
        "/v1/accounts", json={"name": "X", "arr": "1.005"}, headers=workspace.headers
    )
    assert too_precise.status_code == 422


async def test_validation_errors_are_problem_json_with_fields(client, workspace):
    response = await client.post(
        "/v1/accounts",
        json={"name": "", "segment": "huge", "currency": "euro", "bogus": 1},
        headers=workspace.headers,
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "validation_failed"
    assert {"name", "segment", "currency", "bogus"} <= {error["field"] for error in body["errors"]}


async def test_unknown_owner_department_and_stage_are_422(client, workspace):
    bad_owner = await client.post(
        "/v1/accounts",
        json={"name": "X", "owners": {"legal": {"user_id": "u"}}},
        headers=workspace.headers,
    )
    assert bad_owner.status_code == 422
    assert "legal" in bad_owner.json()["detail"]
    bad_stage = await client.post(
        "/v1/accounts", json={"name": "X", "stage": "NOPE"}, headers=workspace.headers
    )
    assert bad_stage.status_code == 422


async def test_external_ids_are_unique_per_source(client, workspace, other_workspace):
    first = await factories.create_account(client, workspace, external_ids={"hubspot": "9"})
    clash = await client.post(
        "/v1/accounts",
        json={"name": "Y", "external_ids": {"hubspot": "9"}},
        headers=workspace.headers,
    )
    assert clash.status_code == 409
    assert clash.json()["account_id"] == first["id"]
    # Same id in another source, or in another workspace, is fine.
    await factories.create_account(client, workspace, external_ids={"salesforce": "9"})
    await factories.create_account(client, other_workspace, external_ids={"hubspot": "9"})

    found = await client.get("/v1/accounts?external_id=hubspot:9", headers=workspace.headers)
    assert [a["id"] for a in found.json()["items"]] == [first["id"]]
    malformed = await client.get("/v1/accounts?external_id=hubspot", headers=workspace.headers)
    assert malformed.status_code == 422


async def test_update_owners_and_external_ids(client, workspace):
    account = await factories.create_account(
        client,
        workspace,
        owners={"sales": {"user_id": "u1"}, "csm": {"user_id": "u2"}},
        external_ids={"hubspot": "1"},
    )
    response = await client.patch(
        f"/v1/accounts/{account['id']}",
        json={
            "name": "Renamed",
            "owners": {"sales": None, "csm": {"user_id": "u3", "name": "Cy"}},
            "external_ids": {"hubspot": None, "pipedrive": "77"},
        },
        headers=workspace.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Renamed"
    assert body["owners"] == {"csm": {"user_id": "u3", "name": "Cy"}}
    assert body["external_ids"] == {"pipedrive": "77"}
    stage_patch = await client.patch(
        f"/v1/accounts/{account['id']}", json={"stage": "VALUE"}, headers=workspace.headers
    )
    assert stage_patch.status_code == 422  # stages move only through transitions


async def test_filters(client, workspace):
    a = await factories.create_account(
        client,
        workspace,
        name="Alpha Industries",
        segment="high_touch",
        owners={"csm": {"user_id": "carol"}},
    )
    b = await factories.create_account(client, workspace, name="Beta 100% Co", segment="low_touch")
    await factories.walk(client, workspace, b["id"], "ACQUIRE")

    async def ids(query: str) -> list[str]:
        response = await client.get(f"/v1/accounts?{query}", headers=workspace.headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids("stage=ACQUIRE") == [b["id"]]
    assert await ids("segment=high_touch") == [a["id"]]
    assert await ids("owner=carol") == [a["id"]]
    assert await ids("q=alpha") == [a["id"]]
    assert await ids("q=100%25") == [b["id"]]  # LIKE wildcards are matched literally
    assert await ids("q=_") == []


async def test_cursor_pagination_visits_every_account_once(client, workspace):
    created = [(await factories.create_account(client, workspace))["id"] for _ in range(7)]
    seen, cursor = [], None
    while True:
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(f"/v1/accounts?{query}", headers=workspace.headers)).json()
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created


async def test_page_size_and_cursor_limits(client, workspace):
    assert (
        await client.get("/v1/accounts?limit=201", headers=workspace.headers)
    ).status_code == 422
    bad_cursor = await client.get("/v1/accounts?cursor=%%%", headers=workspace.headers)
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["field"] == "cursor"


async def test_workspaces_see_nothing_of_each_other(client, workspace, other_workspace):
    mine = await factories.create_account(client, workspace, name="Mine")
    theirs = await factories.create_account(client, other_workspace, name="Theirs")
    listing = (await client.get("/v1/accounts", headers=workspace.headers)).json()["items"]
    assert [a["id"] for a in listing] == [mine["id"]]
    for method, path, body in (
        ("GET", f"/v1/accounts/{theirs['id']}", None),
        ("PATCH", f"/v1/accounts/{theirs['id']}", {"name": "hijacked"}),
        ("GET", f"/v1/accounts/{theirs['id']}/transitions", None),
        ("POST", f"/v1/accounts/{theirs['id']}/transitions", {"to_stage": "ACQUIRE"}),
    ):
        response = await client.request(method, path, json=body, headers=workspace.headers)
        assert response.status_code == 404, (method, path)
    still = await client.get(f"/v1/accounts/{theirs['id']}", headers=other_workspace.headers)
    assert still.json()["name"] == "Theirs" and still.json()["stage"] == "QUALIFY"


async def test_unknown_account_is_404_and_bad_id_is_422(client, workspace):
    missing = await client.get(f"/v1/accounts/{uuid.uuid4()}", headers=workspace.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    assert (await client.get("/v1/accounts/nope", headers=workspace.headers)).status_code == 422
