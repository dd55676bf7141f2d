"""Handoff tasks: raised when the quarterback changes, accepted or rejected, audited."""

from datetime import date, timedelta

from tests import factories

OWNERS = {
    "sales": {"user_id": "sam", "name": "Sam"},
    "professional_services": {"user_id": "priya", "name": "Priya"},
}


async def _handoff_to_ps(client, ws, **handoff):
    account = await factories.create_account(client, ws, name="Acme", owners=OWNERS)
    await factories.walk(client, ws, account["id"], "ACQUIRE")
    response = await factories.transition(
        client, ws, account["id"], "IMPLEMENT", reason="closed won", handoff=handoff or None
    )
    assert response.status_code == 201, response.text
    return account, response.json()["handoff_task"]


async def _get(client, ws, task_id):
    return (await client.get(f"/v1/tasks/{task_id}", headers=ws.headers)).json()


async def test_handoff_raised_when_quarterback_changes(client, workspace):
    account, task = await _handoff_to_ps(
        client,
        workspace,
        notes="Champion is the VP Ops",
        links=["https://crm.example/deal/1"],
        risks=["tight go-live date"],
    )
    assert task["title"] == "Handoff: Acme from Sales to Professional Services"
    assert task["kind"] == "handoff"
    assert task["department"] == "professional_services"
    assert (task["from_department"], task["to_department"]) == ("sales", "professional_services")
    assert (task["from_stage"], task["to_stage"]) == ("ACQUIRE", "IMPLEMENT")
    assert task["account_id"] == account["id"]
    assert task["assignee_id"] == "priya"  # the account's owner in the receiving department
    assert task["handoff_status"] == "pending"
    assert task["context"] == {
        "notes": "Champion is the VP Ops",
        "links": ["https://crm.example/deal/1"],
        "risks": ["tight go-live date"],
    }
    assert any("kickoff" in item["text"].lower() for item in task["checklist"])
    due = date.fromisoformat(task["due_on"])
    assert due.weekday() < 5
    assert date.today() < due <= date.today() + timedelta(days=4)


async def test_no_handoff_when_quarterback_stays(client, workspace):
    account = await factories.create_account(client, workspace)
    results = await factories.walk(
        client, workspace, account["id"], "ACQUIRE", "IMPLEMENT", "VALUE", "EXPAND", "RENEW"
    )
    raised = [r["handoff_task"] is not None for r in results]
    # Marketing->Sales, Sales->PS, PS->CSM; then CSM stays quarterback.
    assert raised == [True, True, True, False, False]
    tasks = (
        await client.get(f"/v1/tasks?account_id={account['id']}", headers=workspace.headers)
    ).json()["items"]
    assert len(tasks) == 3


async def test_task_filters(client, workspace):
    account, task = await _handoff_to_ps(client, workspace)

    async def ids(query):
        response = await client.get(f"/v1/tasks?{query}", headers=workspace.headers)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["items"]]

    assert task["id"] in await ids("department=professional_services")
    assert task["id"] not in await ids("department=sales")
    assert task["id"] in await ids("status=open&status=in_progress")
    assert await ids("status=done") == []
    assert task["id"] in await ids("assignee=priya")
    assert task["id"] in await ids(f"account_id={account['id']}")
    assert task["id"] in await ids(f"due_before={date.today() + timedelta(days=10)}")
    assert task["id"] not in await ids(f"due_before={date.today()}")
    assert (await client.get("/v1/tasks?status=nope", headers=workspace.headers)).status_code == 422


async def test_status_changes_follow_the_state_machine(client, workspace):
    account = await factories.create_account(client, workspace)
    created = await client.post(
        "/v1/tasks",
        json={"account_id": account["id"], "title": "Call", "department": "csm"},
        headers=workspace.headers,
    )
    assert created.status_code == 201
    task_id = created.json()["id"]

    async def set_status(status):
        return await client.patch(
            f"/v1/tasks/{task_id}", json={"status": status}, headers=workspace.headers
        )

    assert (await set_status("in_progress")).status_code == 200
    assert (await set_status("done")).status_code == 200
    reopened = await set_status("open")
    assert reopened.status_code == 409
    assert reopened.json()["code"] == "task_status_not_allowed"
    assert reopened.json()["allowed_statuses"] == []
    assert (await set_status("bogus")).status_code == 422


async def test_pending_handoff_must_be_accepted_before_work(client, workspace):
    _, task = await _handoff_to_ps(client, workspace)
    early = await client.patch(
        f"/v1/tasks/{task['id']}", json={"status": "done"}, headers=workspace.headers
    )
    assert early.status_code == 409
    accepted = await client.post(
        f"/v1/tasks/{task['id']}/accept", json={"comment": "on it"}, headers=workspace.headers
    )
    assert accepted.status_code == 200
    assert accepted.json()["handoff_status"] == "accepted"
    assert accepted.json()["status"] == "in_progress"
    again = await client.post(f"/v1/tasks/{task['id']}/accept", headers=workspace.headers)
    assert again.status_code == 409


async def test_reject_reopens_work_for_previous_quarterback(client, workspace):
    account, task = await _handoff_to_ps(client, workspace, notes="thin notes")
    no_reason = await client.post(
        f"/v1/tasks/{task['id']}/reject", json={"reason": " "}, headers=workspace.headers
    )
    assert no_reason.status_code == 422
    rejected = await client.post(
        f"/v1/tasks/{task['id']}/reject",
        json={"reason": "no statement of work attached"},
        headers=workspace.headers,
    )
    assert rejected.status_code == 200, rejected.text
    body = rejected.json()
    assert body["handoff"]["handoff_status"] == "rejected"
    assert body["handoff"]["status"] == "cancelled"
    returned = body["returned_task"]
    assert returned["kind"] == "handoff_rework"
    assert returned["department"] == "sales"
    assert returned["assignee_id"] == "sam"
    assert returned["parent_task_id"] == task["id"]
    assert returned["context"]["rejection_reason"] == "no statement of work attached"

    # Sales fixes it and finishes the rework: the handoff goes to PS again, with new notes.
    await client.patch(
        f"/v1/tasks/{returned['id']}",
        json={"status": "in_progress", "context": {"notes": "SOW attached"}},
        headers=workspace.headers,
    )
    done = await client.patch(
        f"/v1/tasks/{returned['id']}", json={"status": "done"}, headers=workspace.headers
    )
    assert done.status_code == 200
    pending = (
        await client.get(
            f"/v1/tasks?account_id={account['id']}&kind=handoff&status=open"
            "&department=professional_services",
            headers=workspace.headers,
        )
    ).json()["items"]
    [resubmitted] = pending
    assert resubmitted["parent_task_id"] == returned["id"]
    assert resubmitted["department"] == "professional_services"
    assert resubmitted["assignee_id"] == "priya"
    assert resubmitted["context"]["notes"] == "SOW attached"


async def test_checklist_assignee_due_date_and_audit(client, workspace):
    _, task = await _handoff_to_ps(client, workspace)
    await client.post(f"/v1/tasks/{task['id']}/accept", headers=workspace.headers)
    first_item = task["checklist"][0]["id"]
    ticked = await client.put(
        f"/v1/tasks/{task['id']}/checklist/{first_item}",
        json={"done": True},
        headers=workspace.headers,
    )
    assert ticked.status_code == 200
    assert ticked.json()["checklist"][0]["done"] is True
    missing = await client.put(
        f"/v1/tasks/{task['id']}/checklist/nope", json={"done": True}, headers=workspace.headers
    )
    assert missing.status_code == 404

    checklist = ticked.json()["checklist"] + [{"text": "Send welcome pack"}]
    patched = await client.patch(
        f"/v1/tasks/{task['id']}",
        json={
            "assignee_id": "pat",
            "assignee_name": "Pat",
            "due_on": "2030-01-15",
            "checklist": checklist,
        },
        headers=workspace.headers,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["assignee_id"] == "pat" and body["due_on"] == "2030-01-15"
    assert body["checklist"][-1]["text"] == "Send welcome pack"
    assert body["checklist"][-1]["id"]

    activity = (
        await client.get(f"/v1/tasks/{task['id']}/activity", headers=workspace.headers)
    ).json()["items"]
    assert [a["action"] for a in activity] == ["created", "accepted", "updated", "updated"]
    assert activity[1]["changes"]["handoff_status"] == ["pending", "accepted"]
    assert activity[3]["changes"]["assignee_id"] == ["priya", "pat"]
    assert activity[3]["changes"]["due_on"][1] == "2030-01-15"
    assert all(a["actor"] == "api_key:admin" for a in activity)


async def test_tasks_are_scoped_to_workspace(client, workspace, other_workspace):
    _, task = await _handoff_to_ps(client, workspace)
    for method, path, body in (
        ("GET", f"/v1/tasks/{task['id']}", None),
        ("PATCH", f"/v1/tasks/{task['id']}", {"status": "cancelled"}),
        ("POST", f"/v1/tasks/{task['id']}/accept", None),
        ("POST", f"/v1/tasks/{task['id']}/reject", {"reason": "x"}),
        ("GET", f"/v1/tasks/{task['id']}/activity", None),
    ):
        response = await client.request(method, path, json=body, headers=other_workspace.headers)
        assert response.status_code == 404, (method, path)
    listing = (await client.get("/v1/tasks", headers=other_workspace.headers)).json()
    assert listing["items"] == []
    assert (await _get(client, workspace, task["id"]))["handoff_status"] == "pending"
