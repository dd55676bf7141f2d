"""Opportunities and contracts: what events make of them, and the contracts API."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from service.deals import service as deals
from service.errors import Conflict, InvalidInput, NotFound
from tests import factories

WON_AT = datetime(2027, 3, 28, 15, 2, 11, tzinfo=UTC)
DEAL = {
    "external_id": "deal-4242",
    "name": "Wayne - platform",
    "amount": "84000.00",
    "currency": "USD",
    "close_date": "2027-03-31",
}
TERM = {"start": "2027-04-01", "end": "2028-03-31", "arr": "84000.00", "currency": "USD"}


async def _facts(
    db,
    ws,
    account_id,
    event_type: str,
    *,
    opportunity: dict[str, Any] | None = None,
    contract: dict[str, Any] | None = None,
    occurred_at: datetime = WON_AT,
    source: str = "hubspot",
) -> deals.DealFacts:
    async with db.sessionmaker() as session, session.begin():
        return await deals.record_deal_facts(
            session,
            workspace_id=ws.id,
            account_id=uuid.UUID(str(account_id)),
            source=source,
            event_type=event_type,
            opportunity=opportunity,
            contract=contract,
            occurred_at=occurred_at,
        )


async def _contracts(client, ws, query: str = "") -> list[dict[str, Any]]:
    response = await client.get(f"/v1/contracts?{query}", headers=ws.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def _opportunities(client, ws, account_id) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/accounts/{account_id}/opportunities", headers=ws.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def _won_account(client, db, ws, **account):
    created = await factories.create_account(client, ws, **account)
    facts = await _facts(db, ws, created["id"], "closed_won", opportunity=DEAL, contract=TERM)
    assert facts.contract is not None
    return created, facts


# --- record_deal_facts, per event type -------------------------------------------------------


async def test_events_without_deal_facts_touch_nothing(client, db, workspace):
    account = await factories.create_account(client, workspace)
    for event_type in ("go_live", "renewal_window_opened", "stage_changed", "closed_lost"):
        facts = await _facts(db, workspace, account["id"], event_type)
        assert facts == deals.DealFacts()
    assert await _contracts(client, workspace) == []


async def test_opportunity_created_upserts_by_source_and_external_id(client, db, workspace):
    account = await factories.create_account(client, workspace, currency="EUR")
    first = await _facts(
        db, workspace, account["id"], "opportunity_created", opportunity={"external_id": "d-1"}
    )
    assert first.opportunity is not None
    assert (first.opportunity.kind, first.opportunity.status) == ("new", "open")
    assert first.opportunity.currency == "EUR"  # the account's when the deal names none
    assert first.opportunity.amount is None
    assert first.contract is None

    later = await _facts(
        db,
        workspace,
        account["id"],
        "stage_changed",
        opportunity={
            "external_id": "d-1",
            "name": "Bigger",
            "amount": "90000.10",
            "currency": "USD",
        },
    )
    assert later.opportunity is not None and later.opportunity.id == first.opportunity.id
    # Same external id from another source is another opportunity.
    await _facts(
        db,
        workspace,
        account["id"],
        "opportunity_created",
        opportunity={"external_id": "d-1"},
        source="salesforce",
    )

    items = await _opportunities(client, workspace, account["id"])
    assert [(o["source"], o["external_id"]) for o in items] == [
        ("hubspot", "d-1"),
        ("salesforce", "d-1"),
    ]
    assert items[0]["name"] == "Bigger"
    assert items[0]["amount"] == "90000.10"
    assert items[0]["currency"] == "USD"


async def test_expansion_opportunity_links_to_the_contract_it_expands(client, db, workspace):
    account, won = await _won_account(client, db, workspace)
    facts = await _facts(
        db,
        workspace,
        account["id"],
        "expansion_opportunity_created",
        opportunity={"external_id": "upsell-1", "amount": "12000.00"},
    )
    assert facts.opportunity is not None
    assert facts.opportunity.kind == "expansion"
    assert facts.opportunity.status == "open"
    assert won.contract is not None
    assert facts.opportunity.contract_id == won.contract.id
    assert facts.contract is None


async def test_closed_won_creates_the_contract_of_the_event(client, db, workspace):
    account = await factories.create_account(client, workspace)
    await _facts(db, workspace, account["id"], "opportunity_created", opportunity=DEAL)
    facts = await _facts(
        db,
        workspace,
        account["id"],
        "closed_won",
        opportunity={"external_id": "deal-4242"},
        contract=TERM,
    )
    assert facts.contract_created
    contract, opp = facts.contract, facts.opportunity
    assert contract is not None and opp is not None
    assert (contract.starts_on, contract.ends_on) == (date(2027, 4, 1), date(2028, 3, 31))
    assert contract.arr == Decimal("84000.00")
    assert (contract.currency, contract.status, contract.auto_renew) == ("USD", "active", False)
    assert contract.opportunity_id == opp.id
    assert (opp.status, opp.contract_id, opp.name) == ("won", contract.id, DEAL["name"])

    [listed] = await _contracts(client, workspace, f"account_id={account['id']}")
    assert listed["id"] == str(contract.id)
    assert listed["arr"] == "84000.00"
    assert listed["ends_on"] == "2028-03-31"


async def test_closed_won_without_contract_takes_the_term_from_the_opportunity(
    client, db, workspace
):
    account = await factories.create_account(client, workspace)
    facts = await _facts(db, workspace, account["id"], "closed_won", opportunity=DEAL)
    assert facts.contract is not None
    # starts on the close date, one year long, ARR = amount
    assert (facts.contract.starts_on, facts.contract.ends_on) == (
        date(2027, 3, 31),
        date(2028, 3, 30),
    )
    assert facts.contract.arr == Decimal("84000.00")


async def test_without_close_date_the_term_starts_on_the_events_local_date(client, db):
    auckland = await factories.create_workspace(
        db.sessionmaker, name="Kiwi", timezone="Pacific/Auckland"
    )
    account = await factories.create_account(client, auckland)
    facts = await _facts(
        db,
        auckland,
        account["id"],
        "closed_won",
        opportunity={"external_id": "d-9", "amount": "1000.00"},
        occurred_at=datetime(2028, 2, 28, 20, 0, tzinfo=UTC),  # 29 February in Auckland
    )
    assert facts.contract is not None
    assert (facts.contract.starts_on, facts.contract.ends_on) == (
        date(2028, 2, 29),
        date(2029, 2, 28),
    )


async def test_closed_won_without_an_amount_makes_no_contract(client, db, workspace):
    account = await factories.create_account(client, workspace)
    facts = await _facts(
        db, workspace, account["id"], "closed_won", opportunity={"external_id": "no-amount"}
    )
    assert facts.opportunity is not None and facts.opportunity.status == "won"
    assert facts.contract is None and not facts.contract_created
    assert await _contracts(client, workspace) == []
    # With neither opportunity nor contract there is nothing to make one from either.
    assert (await _facts(db, workspace, account["id"], "closed_won")).contract is None


async def test_closed_won_replayed_makes_one_contract(client, db, workspace):
    account, first = await _won_account(client, db, workspace)
    again = await _facts(
        db, workspace, account["id"], "closed_won", opportunity=DEAL, contract=TERM
    )
    assert first.contract is not None and again.contract is not None
    assert again.contract.id == first.contract.id
    assert not again.contract_created
    # Also when the replay carries only the opportunity, or only the contract.
    only_deal = await _facts(db, workspace, account["id"], "closed_won", opportunity=DEAL)
    only_term = await _facts(db, workspace, account["id"], "closed_won", contract=TERM)
    assert only_deal.contract is not None and only_deal.contract.id == first.contract.id
    assert only_term.contract is not None and only_term.contract.id == first.contract.id
    assert len(await _contracts(client, workspace)) == 1


async def test_closed_won_adopts_a_contract_entered_by_hand_for_the_same_term(
    client, db, workspace
):
    account = await factories.create_account(client, workspace)
    manual = await client.post(
        "/v1/contracts",
        json={
            "account_id": account["id"],
            "starts_on": TERM["start"],
            "ends_on": TERM["end"],
            "arr": "84000.00",
        },
        headers=workspace.headers,
    )
    assert manual.status_code == 201, manual.text
    facts = await _facts(
        db, workspace, account["id"], "closed_won", opportunity=DEAL, contract=TERM
    )
    assert facts.contract is not None and str(facts.contract.id) == manual.json()["id"]
    assert facts.opportunity is not None
    assert facts.contract.opportunity_id == facts.opportunity.id
    assert len(await _contracts(client, workspace)) == 1


async def test_closed_lost_marks_the_opportunity_lost(client, db, workspace):
    account = await factories.create_account(client, workspace)
    await _facts(db, workspace, account["id"], "opportunity_created", opportunity=DEAL)
    facts = await _facts(
        db, workspace, account["id"], "closed_lost", opportunity={"external_id": "deal-4242"}
    )
    assert facts.opportunity is not None and facts.opportunity.status == "lost"
    assert facts.contract is None
    [opp] = await _opportunities(client, workspace, account["id"])
    assert opp["status"] == "lost"
    lost = await client.get(
        f"/v1/accounts/{account['id']}/opportunities?status=lost", headers=workspace.headers
    )
    assert [o["id"] for o in lost.json()["items"]] == [opp["id"]]
    won = await client.get(
        f"/v1/accounts/{account['id']}/opportunities?status=won", headers=workspace.headers
    )
    assert won.json()["items"] == []


async def test_renewal_won_renews_the_term_into_a_linked_next_term(client, db, workspace):
    account, won = await _won_account(client, db, workspace)
    assert won.contract is not None
    renewed_at = datetime(2028, 2, 1, 10, 0, tzinfo=UTC)
    facts = await _facts(db, workspace, account["id"], "renewal_won", occurred_at=renewed_at)
    nxt = facts.contract
    assert nxt is not None and facts.contract_created
    assert nxt.previous_contract_id == won.contract.id
    assert (nxt.starts_on, nxt.ends_on) == (date(2028, 4, 1), date(2029, 3, 31))
    assert (nxt.arr, nxt.currency, nxt.status) == (Decimal("84000.00"), "USD", "active")

    old = (await client.get(f"/v1/contracts/{won.contract.id}", headers=workspace.headers)).json()
    assert old["status"] == "renewed"
    assert datetime.fromisoformat(old["closed_at"]) == renewed_at

    # The same renewal again (a replay) neither renews the new term nor adds a third.
    again = await _facts(db, workspace, account["id"], "renewal_won", occurred_at=renewed_at)
    assert again.contract is not None and again.contract.id == nxt.id
    assert not again.contract_created
    assert len(await _contracts(client, workspace)) == 2
    active = await _contracts(client, workspace, "status=active")
    assert [c["id"] for c in active] == [str(nxt.id)]

    async with db.sessionmaker() as session:
        latest = await deals.latest_active_contract(
            session, workspace_id=workspace.id, account_id=uuid.UUID(account["id"])
        )
    assert latest is not None and latest.id == nxt.id


async def test_renewal_won_with_growth_takes_the_renewal_opportunitys_amount(client, db, workspace):
    account, won = await _won_account(client, db, workspace)
    assert won.contract is not None
    opened = await _facts(
        db,
        workspace,
        account["id"],
        "renewal_window_opened",
        opportunity={"external_id": "renewal-2028"},
    )
    assert opened.opportunity is not None
    assert opened.opportunity.kind == "renewal"
    assert opened.opportunity.contract_id == won.contract.id  # the term it renews

    facts = await _facts(
        db,
        workspace,
        account["id"],
        "renewal_won",
        opportunity={"external_id": "renewal-2028", "amount": "92000.50"},
        occurred_at=datetime(2028, 3, 1, tzinfo=UTC),
    )
    assert facts.contract is not None and facts.opportunity is not None
    assert facts.contract.arr == Decimal("92000.50")
    assert facts.contract.opportunity_id == facts.opportunity.id
    assert facts.contract.previous_contract_id == won.contract.id
    assert facts.opportunity.status == "won"
    # Replayed with its opportunity: the term that opportunity produced, nothing new.
    again = await _facts(
        db,
        workspace,
        account["id"],
        "renewal_won",
        opportunity={"external_id": "renewal-2028"},
        occurred_at=datetime(2028, 3, 2, tzinfo=UTC),
    )
    assert again.contract is not None and again.contract.id == facts.contract.id
    assert len(await _contracts(client, workspace)) == 2


async def test_renewal_won_with_a_contract_uses_its_term(client, db, workspace):
    account, won = await _won_account(client, db, workspace)
    assert won.contract is not None
    facts = await _facts(
        db,
        workspace,
        account["id"],
        "renewal_won",
        contract={"start": "2028-04-01", "end": "2030-03-31", "arr": "150000.00"},
        occurred_at=datetime(2028, 3, 15, tzinfo=UTC),
    )
    assert facts.contract is not None
    assert (facts.contract.starts_on, facts.contract.ends_on) == (
        date(2028, 4, 1),
        date(2030, 3, 31),
    )
    assert facts.contract.arr == Decimal("150000.00")
    assert facts.contract.currency == "USD"
    assert facts.contract.previous_contract_id == won.contract.id


async def test_closed_won_on_a_renewal_opportunity_renews(client, db, workspace):
    account, won = await _won_account(client, db, workspace)
    assert won.contract is not None
    facts = await _facts(
        db,
        workspace,
        account["id"],
        "closed_won",
        opportunity={"external_id": "ren-1", "kind": "renewal", "amount": "88000.00"},
        occurred_at=datetime(2028, 3, 1, tzinfo=UTC),
    )
    assert facts.contract is not None
    assert facts.contract.previous_contract_id == won.contract.id
    assert [c["status"] for c in await _contracts(client, workspace)] == ["renewed", "active"]


async def test_churned_closes_the_latest_active_term_once(client, db, workspace):
    account, won = await _won_account(client, db, workspace)
    assert won.contract is not None
    older = await client.post(
        "/v1/contracts",
        json={
            "account_id": account["id"],
            "starts_on": "2026-06-01",
            "ends_on": "2027-05-31",
            "arr": "1000.00",
        },
        headers=workspace.headers,
    )
    assert older.status_code == 201, older.text
    churned_at = datetime(2028, 4, 2, tzinfo=UTC)
    facts = await _facts(db, workspace, account["id"], "churned", occurred_at=churned_at)
    assert facts.contract is not None and facts.contract.id == won.contract.id
    assert facts.contract.status == "churned"
    # The replay recognises its work and leaves the other active term alone.
    again = await _facts(db, workspace, account["id"], "churned", occurred_at=churned_at)
    assert again.contract is not None and again.contract.id == won.contract.id
    active = await _contracts(client, workspace, "status=active")
    assert [c["id"] for c in active] == [older.json()["id"]]


async def test_renewal_lost_churns_the_term_and_loses_the_opportunity(client, db, workspace):
    account, won = await _won_account(client, db, workspace)
    assert won.contract is not None
    facts = await _facts(
        db,
        workspace,
        account["id"],
        "renewal_lost",
        opportunity={"external_id": "renewal-x"},
        occurred_at=datetime(2028, 3, 1, tzinfo=UTC),
    )
    assert facts.opportunity is not None
    assert (facts.opportunity.kind, facts.opportunity.status) == ("renewal", "lost")
    assert facts.contract is not None and facts.contract.id == won.contract.id
    assert facts.contract.status == "churned"
    # Nothing left to churn: no contract, and no error.
    none_left = await _facts(
        db, workspace, account["id"], "churned", occurred_at=datetime(2028, 5, 1, tzinfo=UTC)
    )
    assert none_left.contract is None


async def test_money_is_exact_end_to_end(client, db, workspace):
    account = await factories.create_account(client, workspace)
    facts = await _facts(
        db,
        workspace,
        account["id"],
        "closed_won",
        opportunity={"external_id": "big", "amount": "99999999999999.99", "currency": "EUR"},
        contract={"start": "2027-01-01", "end": "2027-12-31"},
    )
    assert facts.contract is not None
    assert facts.contract.arr == Decimal("99999999999999.99")
    assert facts.contract.currency == "EUR"
    [listed] = await _contracts(client, workspace)
    assert listed["arr"] == "99999999999999.99"
    # Stored as integer cents: 0.10 + 0.20 comes back as exactly 0.30.
    for arr in ("0.10", "0.20"):
        created = await client.post(
            "/v1/contracts",
            json={
                "account_id": account["id"],
                "starts_on": "2027-01-01",
                "ends_on": "2027-12-31",
                "arr": arr,
            },
            headers=workspace.headers,
        )
        assert created.status_code == 201, created.text
    arrs = [Decimal(c["arr"]) for c in await _contracts(client, workspace)]
    assert sum(arrs[1:]) == Decimal("0.30")


@pytest.mark.parametrize(
    ("opportunity", "contract", "field"),
    [
        ({"external_id": "x", "currency": "usd"}, None, "opportunity.currency"),
        ({"external_id": "x", "amount": 84000.5}, None, "opportunity.amount"),
        ({"external_id": "x", "amount": "1.001"}, None, "opportunity.amount"),
        ({"external_id": "x", "amount": "1e20"}, None, "opportunity.amount"),
        ({"external_id": "x", "close_date": "31/03/2027"}, None, "opportunity.close_date"),
        ({"external_id": "x", "kind": "upsell"}, None, "opportunity.kind"),
        (None, {"start": "2027-04-01", "end": "2027-04-01", "arr": "1.00"}, "contract.end"),
        (None, {"start": "2027-04-01", "end": "2028-03-31", "arr": "-1.00"}, "contract.arr"),
        (
            None,
            {"start": "2027-04-01", "end": "2028-03-31", "currency": "EURO"},
            "contract.currency",
        ),
        ({"external_id": "x", "amount": "-5.00"}, None, "opportunity.amount"),
    ],
)
async def test_invalid_deal_facts_are_refused_with_the_field(
    client, db, workspace, opportunity, contract, field
):
    account = await factories.create_account(client, workspace)
    with pytest.raises(InvalidInput) as raised:
        await _facts(
            db, workspace, account["id"], "closed_won", opportunity=opportunity, contract=contract
        )
    assert raised.value.extra["errors"][0]["field"] == field
    assert await _contracts(client, workspace) == []


async def test_an_opportunity_stays_with_its_account(client, db, workspace):
    first = await factories.create_account(client, workspace)
    second = await factories.create_account(client, workspace)
    await _facts(db, workspace, first["id"], "opportunity_created", opportunity=DEAL)
    with pytest.raises(Conflict):
        await _facts(db, workspace, second["id"], "closed_won", opportunity=DEAL)


async def test_deal_facts_never_cross_workspaces(client, db, workspace, other_workspace):
    account, _ = await _won_account(client, db, workspace)
    with pytest.raises(NotFound):
        await _facts(db, other_workspace, account["id"], "closed_won", opportunity=DEAL)
    with pytest.raises(NotFound):
        await _facts(db, other_workspace, account["id"], "churned")
    assert [c["status"] for c in await _contracts(client, workspace)] == ["active"]


# --- the contracts API -------------------------------------------------------------------


async def test_create_read_and_update_a_contract(client, workspace):
    account = await factories.create_account(client, workspace, currency="EUR")
    created = await client.post(
        "/v1/contracts",
        json={
            "account_id": account["id"],
            "starts_on": "2027-01-01",
            "ends_on": "2027-12-31",
            "arr": "48000.50",
            "auto_renew": True,
        },
        headers=workspace.headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["currency"] == "EUR"  # the account's
    assert (body["arr"], body["auto_renew"], body["status"]) == ("48000.50", True, "active")
    assert body["opportunity_id"] is None and body["previous_contract_id"] is None
    assert body["closed_at"] is None

    read = await client.get(f"/v1/contracts/{body['id']}", headers=workspace.headers)
    assert read.status_code == 200 and read.json() == body

    patched = await client.patch(
        f"/v1/contracts/{body['id']}",
        json={"arr": "50000.00", "ends_on": "2028-01-31", "auto_renew": False},
        headers=workspace.headers,
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["arr"], patched.json()["ends_on"]) == ("50000.00", "2028-01-31")
    assert patched.json()["auto_renew"] is False

    expired = await client.patch(
        f"/v1/contracts/{body['id']}", json={"status": "expired"}, headers=workspace.headers
    )
    assert expired.status_code == 200
    assert expired.json()["status"] == "expired"
    assert expired.json()["closed_at"] is not None
    reopened = await client.patch(
        f"/v1/contracts/{body['id']}", json={"status": "active"}, headers=workspace.headers
    )
    assert reopened.json()["closed_at"] is None


async def test_list_contracts_filters_and_pages(client, workspace):
    first = await factories.create_account(client, workspace)
    second = await factories.create_account(client, workspace)
    ids = []
    for account, ends_on in ((first, "2027-06-30"), (first, "2028-06-30"), (second, "2027-09-30")):
        created = await client.post(
            "/v1/contracts",
            json={
                "account_id": account["id"],
                "starts_on": "2026-07-01",
                "ends_on": ends_on,
                "arr": "100.00",
            },
            headers=workspace.headers,
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    await client.patch(
        f"/v1/contracts/{ids[0]}", json={"status": "churned"}, headers=workspace.headers
    )

    async def listed(query):
        return [c["id"] for c in await _contracts(client, workspace, query)]

    assert await listed("") == ids
    assert await listed(f"account_id={first['id']}") == ids[:2]
    assert await listed("status=active") == ids[1:]
    assert await listed("renews_before=2027-10-01") == [ids[0], ids[2]]
    assert await listed("renews_before=2027-10-01&status=active") == [ids[2]]

    page = (await client.get("/v1/contracts?limit=2", headers=workspace.headers)).json()
    assert [c["id"] for c in page["items"]] == ids[:2]
    rest = (
        await client.get(
            f"/v1/contracts?limit=2&cursor={page['next_cursor']}", headers=workspace.headers
        )
    ).json()
    assert [c["id"] for c in rest["items"]] == ids[2:]
    assert rest["next_cursor"] is None


async def test_opportunities_page_by_id(client, db, workspace):
    account = await factories.create_account(client, workspace)
    for n in range(3):
        await _facts(
            db,
            workspace,
            account["id"],
            "opportunity_created",
            opportunity={"external_id": f"d{n}"},
        )
    url = f"/v1/accounts/{account['id']}/opportunities"
    page = (await client.get(f"{url}?limit=2", headers=workspace.headers)).json()
    rest = (
        await client.get(f"{url}?limit=2&cursor={page['next_cursor']}", headers=workspace.headers)
    ).json()
    external = [o["external_id"] for o in page["items"] + rest["items"]]
    assert external == ["d0", "d1", "d2"]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ends_on": "2027-01-01"}, "ends_on"),
        ({"starts_on": "2027-01-01", "ends_on": "2026-12-31"}, "ends_on"),
        ({"arr": "-1.00"}, "arr"),
        ({"arr": "1.005"}, "arr"),
        ({"currency": "usd"}, "currency"),
        ({"account_id": str(uuid.uuid4())}, "account_id"),
        ({"status": "cancelled"}, "status"),
        ({"arr": None}, "arr"),
    ],
)
async def test_contract_validation(client, workspace, changes, field):
    account = await factories.create_account(client, workspace)
    body = {
        "account_id": account["id"],
        "starts_on": "2027-01-01",
        "ends_on": "2027-12-31",
        "arr": "100.00",
    }
    created = await client.post("/v1/contracts", json=body, headers=workspace.headers)
    assert created.status_code == 201
    on_create = await client.post(
        "/v1/contracts", json={**body, **changes}, headers=workspace.headers
    )
    on_update = await client.patch(
        f"/v1/contracts/{created.json()['id']}", json=changes, headers=workspace.headers
    )
    checked = [on_update]
    if field == "account_id":
        assert on_create.status_code == 404  # another account's id; a contract cannot move
    else:
        checked.append(on_create)
    for response in checked:
        assert response.status_code == 422, (changes, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert field in [error["field"] for error in response.json()["errors"]], response.json()
    # Nothing changed.
    read = await client.get(f"/v1/contracts/{created.json()['id']}", headers=workspace.headers)
    assert read.json() == created.json()


async def test_list_queries_are_validated(client, workspace):
    account = await factories.create_account(client, workspace)
    for url in (
        "/v1/contracts?status=bogus",
        "/v1/contracts?renews_before=soon",
        "/v1/contracts?limit=201",
        "/v1/contracts?cursor=!!!",
        f"/v1/accounts/{account['id']}/opportunities?status=maybe",
    ):
        response = await client.get(url, headers=workspace.headers)
        assert response.status_code == 422, (url, response.text)


async def test_contracts_need_read_and_write_scopes(client, workspace):
    reader = await factories.create_key(client, workspace, ["read"])
    account = await factories.create_account(client, workspace)
    body = {
        "account_id": account["id"],
        "starts_on": "2027-01-01",
        "ends_on": "2027-12-31",
        "arr": "1.00",
    }
    assert (await client.get("/v1/contracts", headers=reader.headers)).status_code == 200
    denied = await client.post("/v1/contracts", json=body, headers=reader.headers)
    assert denied.status_code == 403
    assert (await client.get("/v1/contracts")).status_code == 401


async def test_contracts_never_cross_workspaces(client, db, workspace, other_workspace):
    account, won = await _won_account(client, db, workspace)
    assert won.contract is not None
    contract_url = f"/v1/contracts/{won.contract.id}"
    other = other_workspace.headers
    assert (await client.get(contract_url, headers=other)).status_code == 404
    patched = await client.patch(contract_url, json={"arr": "1.00"}, headers=other)
    assert patched.status_code == 404
    assert await _contracts(client, other_workspace) == []
    assert await _contracts(client, other_workspace, f"account_id={account['id']}") == []
    opportunities = await client.get(f"/v1/accounts/{account['id']}/opportunities", headers=other)
    assert opportunities.status_code == 404
    created = await client.post(
        "/v1/contracts",
        json={
            "account_id": account["id"],
            "starts_on": "2027-01-01",
            "ends_on": "2027-12-31",
            "arr": "1.00",
        },
        headers=other,
    )
    assert created.status_code == 404
    # The owner's contract is as it was.
    mine = (await client.get(contract_url, headers=workspace.headers)).json()
    assert mine["arr"] == "84000.00"
    assert len(await _contracts(client, workspace)) == 1


async def test_one_year_term():
    assert deals.one_year_term(date(2027, 4, 1)) == date(2028, 3, 31)
    assert deals.one_year_term(date(2028, 2, 29)) == date(2029, 2, 28)
    assert deals.one_year_term(date(2027, 1, 1)) == date(2027, 12, 31)
