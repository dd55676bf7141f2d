"""The lifecycle model seeded per workspace, and the RENEW quarterback setting."""

from tests import factories

EXPECTED_QUARTERBACKS = {
    "QUALIFY": "marketing",
    "ACQUIRE": "sales",
    "IMPLEMENT": "professional_services",
    "VALUE": "csm",
    "RENEW": "csm",
    "EXPAND": "csm",
    "CHURNED": "csm",
}


async def test_lifecycle_has_design_table(client, workspace):
    body = (await client.get("/v1/lifecycle", headers=workspace.headers)).json()
    stages = {stage["key"]: stage for stage in body["stages"]}
    assert [s["key"] for s in body["stages"]] == list(EXPECTED_QUARTERBACKS)
    assert {k: s["quarterback"] for k, s in stages.items()} == EXPECTED_QUARTERBACKS
    assert set(stages["ACQUIRE"]["supporting"]) == {"marketing", "csm", "finance", "product"}
    assert stages["QUALIFY"]["next_stages"] == ["ACQUIRE"]
    assert "IMPLEMENT" in stages["VALUE"]["backward_stages"]
    assert [d["key"] for d in body["departments"]] == [
        "marketing",
        "sales",
        "professional_services",
        "csm",
        "product",
        "finance",
        "revops",
    ]


async def test_renewal_quarterback_setting_drives_renew_handoff(client, workspace):
    account = await factories.create_account(client, workspace)
    await factories.walk(client, workspace, account["id"], "ACQUIRE", "IMPLEMENT", "VALUE")
    # CSM stays quarterback of RENEW by default: no handoff.
    renew = (await factories.walk(client, workspace, account["id"], "RENEW"))[0]
    assert renew["handoff_task"] is None

    patched = await client.patch(
        "/v1/workspace", json={"renewal_quarterback": "sales"}, headers=workspace.headers
    )
    assert patched.status_code == 200
    assert patched.json()["renewal_quarterback"] == "sales"
    lifecycle = (await client.get("/v1/lifecycle", headers=workspace.headers)).json()
    assert next(s for s in lifecycle["stages"] if s["key"] == "RENEW")["quarterback"] == "sales"

    other = await factories.create_account(client, workspace)
    await factories.walk(client, workspace, other["id"], "ACQUIRE", "IMPLEMENT", "VALUE")
    handoff = (await factories.walk(client, workspace, other["id"], "RENEW"))[0]["handoff_task"]
    assert handoff["from_department"] == "csm"
    assert handoff["to_department"] == "sales"


async def test_renewal_quarterback_must_be_known(client, workspace):
    response = await client.patch(
        "/v1/workspace", json={"renewal_quarterback": "finance"}, headers=workspace.headers
    )
    assert response.status_code == 422


async def test_workspace_settings_need_admin(client, workspace):
    writer = await factories.create_key(client, workspace, ["write"])
    response = await client.patch(
        "/v1/workspace", json={"renewal_quarterback": "sales"}, headers=writer.headers
    )
    assert response.status_code == 403
