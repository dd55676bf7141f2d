"""API keys: bearer authentication, scopes, listing, creation and revocation."""

from sqlalchemy import select

from service.workspaces.models import ApiKey
from tests import factories


async def test_requests_without_a_key_get_401_problem(client, workspace):
    response = await client.get("/v1/accounts")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "not_authenticated"


async def test_unknown_key_and_wrong_scheme_get_401(client, workspace):
    for header in ("Bearer qb_nope", "Basic abc", "Bearer "):
        response = await client.get("/v1/accounts", headers={"Authorization": header})
        assert response.status_code == 401, header


async def test_scopes_are_enforced(client, workspace):
    reader = await factories.create_key(client, workspace, ["read"])
    writer = await factories.create_key(client, workspace, ["write"])
    forecaster = await factories.create_key(client, workspace, ["forecast:read"])

    assert (await client.get("/v1/accounts", headers=reader.headers)).status_code == 200
    denied = await client.post("/v1/accounts", json={"name": "X"}, headers=reader.headers)
    assert denied.status_code == 403
    assert denied.json()["required_scope"] == "write"

    assert (
        await client.post("/v1/accounts", json={"name": "X"}, headers=writer.headers)
    ).status_code == 201
    assert (await client.get("/v1/api-keys", headers=writer.headers)).status_code == 403
    assert (await client.get("/v1/accounts", headers=forecaster.headers)).status_code == 403


async def test_keys_are_stored_hashed_and_listed_without_secret(client, db, workspace):
    created = await factories.create_key(client, workspace, ["read"])
    async with db.sessionmaker() as session:
        stored = (await session.scalars(select(ApiKey.key_hash))).all()
    assert created.key not in stored
    listing = (await client.get("/v1/api-keys", headers=workspace.headers)).json()["items"]
    assert len(listing) == 2
    assert all("key" not in item and "key_hash" not in item for item in listing)
    assert {tuple(item["scopes"]) for item in listing} == {("admin",), ("read",)}


async def test_revoked_key_stops_working(client, workspace):
    created = await factories.create_key(client, workspace, ["read"])
    listing = (await client.get("/v1/api-keys", headers=workspace.headers)).json()["items"]
    key_id = next(item["id"] for item in listing if item["scopes"] == ["read"])
    revoked = await client.delete(f"/v1/api-keys/{key_id}", headers=workspace.headers)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert (await client.get("/v1/accounts", headers=created.headers)).status_code == 401


async def test_unknown_scope_is_422(client, workspace):
    response = await client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["root"]}, headers=workspace.headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].startswith("scopes")


async def test_a_key_cannot_revoke_another_workspaces_key(client, workspace, other_workspace):
    listing = (await client.get("/v1/api-keys", headers=other_workspace.headers)).json()["items"]
    response = await client.delete(f"/v1/api-keys/{listing[0]['id']}", headers=workspace.headers)
    assert response.status_code == 404
    assert (await client.get("/v1/accounts", headers=other_workspace.headers)).status_code == 200
