"""Opportunities and contracts: what the CRM's deals become, and the terms that renew.

`record_deal_facts` runs inside an event's transaction (only flushes) and is idempotent by
construction: an opportunity is unique per (source, external id), a contract per opportunity
and per renewed term, and a replayed renewal or churn recognises the term it already closed
by its `closed_at`, which is the event's `occurred_at`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.accounts.models import Account
from service.db import tables
from service.db.types import utcnow, uuid7
from service.deals.models import Contract, Opportunity
from service.errors import Conflict, InvalidInput, NotFound
from service.kit.dates import local_today
from service.kit.pagination import decode_cursor, trim_page
from service.workspaces.models import Workspace

OPPORTUNITY_KINDS = ("new", "renewal", "expansion")
OPPORTUNITY_STATUSES = ("open", "won", "lost")
CONTRACT_STATUSES = ("active", "renewed", "churned", "expired")

# The kind an opportunity gets when the event that first names it does not say.
_DEFAULT_KIND = {
    "expansion_opportunity_created": "expansion",
    "renewal_window_opened": "renewal",
    "renewal_won": "renewal",
    "renewal_lost": "renewal",
}
_OPPORTUNITY_STATUS = {
    "closed_won": "won",
    "closed_lost": "lost",
    "renewal_won": "won",
    "renewal_lost": "lost",
}
# Events whose opportunity is most likely new: they try the INSERT before looking it up.
_NAMES_NEW_OPPORTUNITY = frozenset({"opportunity_created", "expansion_opportunity_created"})
# Built once: statement construction costs more than its cached compilation.
_INSERT_NEW_OPPORTUNITY = tables.insert_unless_present(
    Opportunity, ["workspace_id", "source", "external_id"]
)
# Events that change contracts even when they carry neither opportunity nor contract.
_CONTRACT_EVENTS = frozenset({"closed_won", "renewal_won", "renewal_lost", "churned"})
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_AMOUNT = Decimal(10) ** 14
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class DealFacts:
    """What an event did to the account's deals: the opportunity and contract it touched."""

    opportunity: Opportunity | None = None
    contract: Contract | None = None
    contract_created: bool = False


@dataclass(frozen=True)
class _OpportunityFacts:
    external_id: str
    changes: dict[str, Any]  # only the fields the event gave


@dataclass(frozen=True)
class _Term:
    starts_on: date
    ends_on: date
    arr: Decimal | None
    currency: str | None


# --- parsing: events arrive as parsed models or as stored JSON, so accept both -------------


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: {message}", errors=[{"field": field, "in": "body", "message": message}]
    )


def _amount(value: Any, field: str, *, allow_negative: bool = False) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float | bool):
        raise _invalid(field, "send amounts as decimal strings like '84000.00', never floats")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise _invalid(field, f"{value!r} is not a decimal amount") from None
    if not amount.is_finite() or abs(amount) >= _MAX_AMOUNT:
        raise _invalid(field, "an amount has at most 14 digits before the decimal point")
    if amount != amount.quantize(_CENT, rounding="ROUND_DOWN"):
        raise _invalid(field, "an amount has at most two decimal places")
    if amount < 0 and not allow_negative:
        raise _invalid(field, "must not be negative")
    return amount.quantize(_CENT)


def _currency(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise _invalid(field, "expected a 3-letter ISO 4217 currency code like USD")
    return value


def _date(value: Any, field: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _invalid(field, f"{value!r} is not a date like 2027-03-31") from None


def _check_term(starts_on: date, ends_on: date, field: str) -> None:
    if ends_on <= starts_on:
        raise _invalid(field, f"the end ({ends_on}) must be after the start ({starts_on})")


def _parse_opportunity(raw: dict[str, Any]) -> _OpportunityFacts:
    external_id = raw.get("external_id")
    if not external_id or not isinstance(external_id, str):
        raise _invalid("opportunity.external_id", "required")
    changes: dict[str, Any] = {}
    if raw.get("name") is not None:
        if len(str(raw["name"])) > 300:
            raise _invalid("opportunity.name", "at most 300 characters")
        changes["name"] = str(raw["name"])
    if raw.get("amount") is not None:
        changes["amount"] = _amount(raw["amount"], "opportunity.amount", allow_negative=True)
    if raw.get("currency") is not None:
        changes["currency"] = _currency(raw["currency"], "opportunity.currency")
    if raw.get("close_date") is not None:
        changes["close_date"] = _date(raw["close_date"], "opportunity.close_date")
    if raw.get("kind") is not None:
        if raw["kind"] not in OPPORTUNITY_KINDS:
            raise _invalid("opportunity.kind", f"one of {', '.join(OPPORTUNITY_KINDS)}")
        changes["kind"] = raw["kind"]
    return _OpportunityFacts(external_id=external_id, changes=changes)


def _parse_term(raw: dict[str, Any]) -> _Term:
    starts_on = _date(raw.get("start"), "contract.start")
    ends_on = _date(raw.get("end"), "contract.end")
    if starts_on is None or ends_on is None:
        raise _invalid("contract", "a contract needs start and end dates")
    _check_term(starts_on, ends_on, "contract.end")
    return _Term(
        starts_on=starts_on,
        ends_on=ends_on,
        arr=_amount(raw.get("arr"), "contract.arr"),
        currency=_currency(raw.get("currency"), "contract.currency"),
    )


def one_year_term(starts_on: date) -> date:
    """The last day of a one-year term: 2027-04-01 → 2028-03-31; 2028-02-29 → 2029-02-28."""
    try:
        anniversary = starts_on.replace(year=starts_on.year + 1)
    except ValueError:  # 29 February
        anniversary = date(starts_on.year + 1, 3, 1)
    return anniversary - timedelta(days=1)


# --- the event path ---------------------------------------------------------------------


async def record_deal_facts(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    source: str,
    event_type: str,
    opportunity: dict[str, Any] | None,
    contract: dict[str, Any] | None,
    occurred_at: datetime,
) -> DealFacts:
    """Create or update the opportunity and contract an event speaks of.

    Events without deal facts that change no contract return an empty DealFacts at no cost.
    """
    if opportunity is None and contract is None and event_type not in _CONTRACT_EVENTS:
        return DealFacts()
    if occurred_at.tzinfo is None:
        raise _invalid("occurred_at", "needs a time zone offset")
    facts = _parse_opportunity(opportunity) if opportunity is not None else None
    term = _parse_term(contract) if contract is not None else None
    account = await _account(session, workspace_id, account_id)
    now = utcnow()
    opp = None
    if facts is not None:
        opp = await _upsert_opportunity(session, account, source, facts, event_type, now)
        if event_type in _OPPORTUNITY_STATUS:
            opp.status = _OPPORTUNITY_STATUS[event_type]
    if event_type == "closed_won" and opp is not None and opp.kind == "renewal":
        # A CRM's "closed won" on a renewal deal renews the term; a new one would count twice.
        event_type = "renewal_won"
    if event_type == "closed_won":
        result = await _close_won(session, account, opp, term, occurred_at, now)
    elif event_type == "renewal_won":
        result = await _renew(session, account, opp, term, occurred_at, now)
    elif event_type in ("renewal_lost", "churned"):
        result = await _churn(session, account, opp, occurred_at, now)
    else:
        result = DealFacts(opportunity=opp)
    await session.flush()
    return result


async def _account(
    session: AsyncSession, workspace_id: uuid.UUID, account_id: uuid.UUID
) -> Account:
    account = await session.get(Account, account_id)
    if account is None or account.workspace_id != workspace_id:
        raise NotFound(f"account {account_id} not found")
    return account


async def _upsert_opportunity(
    session: AsyncSession,
    account: Account,
    source: str,
    facts: _OpportunityFacts,
    event_type: str,
    now: datetime,
) -> Opportunity:
    if event_type in _NAMES_NEW_OPPORTUNITY:
        created = await _insert_opportunity(session, account, source, facts, event_type, now)
        if created is not None:
            return created
    opp = await session.scalar(
        select(Opportunity).where(
            col(Opportunity.workspace_id) == account.workspace_id,
            col(Opportunity.source) == source,
            col(Opportunity.external_id) == facts.external_id,
        )
    )
    if opp is None:
        opp = Opportunity(
            workspace_id=account.workspace_id,
            account_id=account.id,
            source=source,
            external_id=facts.external_id,
            kind=_DEFAULT_KIND.get(event_type, "new"),
            status="open",
            currency=account.currency,
            created_at=now,
            updated_at=now,
        )
        session.add(opp)
    elif opp.account_id != account.id:
        raise Conflict(
            f"opportunity {source}:{facts.external_id} belongs to account {opp.account_id}, "
            f"not {account.id}; send the event for that account",
            account_id=str(opp.account_id),
        )
    for name, value in facts.changes.items():
        setattr(opp, name, value)
    opp.updated_at = now
    if opp.kind in ("renewal", "expansion") and opp.contract_id is None:
        renews = await latest_active_contract(
            session, workspace_id=account.workspace_id, account_id=account.id
        )
        opp.contract_id = renews.id if renews else None
    await session.flush()
    return opp


async def _insert_opportunity(
    session: AsyncSession,
    account: Account,
    source: str,
    facts: _OpportunityFacts,
    event_type: str,
    now: datetime,
) -> Opportunity | None:
    """The opportunity as `_upsert_opportunity` would create it, in one round trip; None if
    the CRM named it before (the unique constraint decides, so concurrent events are safe)."""
    kind = facts.changes.get("kind", _DEFAULT_KIND.get(event_type, "new"))
    renews = None
    if kind in ("renewal", "expansion"):
        renews = await latest_active_contract(
            session, workspace_id=account.workspace_id, account_id=account.id
        )
    row = {
        "id": uuid7(),
        "workspace_id": account.workspace_id,
        "account_id": account.id,
        "source": source,
        "external_id": facts.external_id,
        "name": None,
        "amount": None,
        "currency": account.currency,
        "close_date": None,
        "kind": kind,
        "status": "open",
        "contract_id": renews.id if renews else None,
        "created_at": now,
        "updated_at": now,
        **facts.changes,
    }
    dialect = session.get_bind().dialect.name
    created: Opportunity | None = await session.scalar(_INSERT_NEW_OPPORTUNITY[dialect], row)
    return created


async def _close_won(
    session: AsyncSession,
    account: Account,
    opp: Opportunity | None,
    term: _Term | None,
    occurred_at: datetime,
    now: datetime,
) -> DealFacts:
    if opp is not None:
        produced = await _contract_of_opportunity(session, opp)
        if produced is not None:
            return DealFacts(opportunity=opp, contract=produced)
    arr = term.arr if term and term.arr is not None else (opp.amount if opp else None)
    if arr is None:
        return DealFacts(opportunity=opp)
    if arr < 0:
        raise _invalid("opportunity.amount", "a won deal with a negative amount makes no contract")
    if term is not None:
        starts_on, ends_on = term.starts_on, term.ends_on
    else:
        starts_on = (opp.close_date if opp else None) or await _local_date(
            session, account.workspace_id, occurred_at
        )
        ends_on = one_year_term(starts_on)
    currency = (term.currency if term else None) or (opp.currency if opp else account.currency)
    same_term = await _same_term(session, account, starts_on, ends_on, opp)
    if same_term is not None:
        if opp is not None and same_term.opportunity_id is None:
            same_term.opportunity_id, same_term.updated_at = opp.id, now
        _link(opp, same_term)
        return DealFacts(opportunity=opp, contract=same_term)
    created = _new_contract(account, starts_on, ends_on, arr, currency, now, opp=opp)
    session.add(created)
    _link(opp, created)
    return DealFacts(opportunity=opp, contract=created, contract_created=True)


async def _renew(
    session: AsyncSession,
    account: Account,
    opp: Opportunity | None,
    term: _Term | None,
    occurred_at: datetime,
    now: datetime,
) -> DealFacts:
    if opp is not None:
        produced = await _contract_of_opportunity(session, opp)
        if produced is not None:
            return DealFacts(opportunity=opp, contract=produced)
    previous = await _term_in_question(session, account, opp)
    if previous is not None and previous.previous_contract_id is not None:
        before = await _contract_by_id(session, account.workspace_id, previous.previous_contract_id)
        if before is not None and before.status == "renewed" and before.closed_at == occurred_at:
            return DealFacts(opportunity=opp, contract=previous)  # this renewal, replayed
    opp_amount = opp.amount if opp is not None else None
    if term is not None and term.arr is not None:
        arr, currency = term.arr, term.currency
    elif opp is not None and opp_amount is not None:
        arr, currency = opp_amount, (term.currency if term else None) or opp.currency
    elif previous is not None:
        arr, currency = previous.arr, (term.currency if term else None) or previous.currency
    else:
        return DealFacts(opportunity=opp)
    if arr < 0:
        raise _invalid("opportunity.amount", "a renewal with a negative amount makes no contract")
    currency = currency or (previous.currency if previous else account.currency)
    if term is not None:
        starts_on, ends_on = term.starts_on, term.ends_on
    elif previous is not None:
        starts_on = previous.ends_on + timedelta(days=1)
        ends_on = one_year_term(starts_on)
    else:
        starts_on = (opp.close_date if opp else None) or await _local_date(
            session, account.workspace_id, occurred_at
        )
        ends_on = one_year_term(starts_on)
    if previous is not None:
        previous.status, previous.closed_at, previous.updated_at = "renewed", occurred_at, now
    created = _new_contract(
        account,
        starts_on,
        ends_on,
        arr,
        currency,
        now,
        opp=opp,
        previous=previous,
    )
    session.add(created)
    _link(opp, previous or created)
    return DealFacts(opportunity=opp, contract=created, contract_created=True)


async def _churn(
    session: AsyncSession,
    account: Account,
    opp: Opportunity | None,
    occurred_at: datetime,
    now: datetime,
) -> DealFacts:
    replayed = await session.scalar(
        select(Contract).where(
            col(Contract.workspace_id) == account.workspace_id,
            col(Contract.account_id) == account.id,
            col(Contract.status) == "churned",
            col(Contract.closed_at) == occurred_at,
        )
    )
    if replayed is not None:
        return DealFacts(opportunity=opp, contract=replayed)
    churned = await _term_in_question(session, account, opp)
    if churned is not None:
        churned.status, churned.closed_at, churned.updated_at = "churned", occurred_at, now
    return DealFacts(opportunity=opp, contract=churned)


def _new_contract(
    account: Account,
    starts_on: date,
    ends_on: date,
    arr: Decimal,
    currency: str,
    now: datetime,
    *,
    opp: Opportunity | None = None,
    previous: Contract | None = None,
) -> Contract:
    return Contract(
        workspace_id=account.workspace_id,
        account_id=account.id,
        starts_on=starts_on,
        ends_on=ends_on,
        arr=arr,
        currency=currency,
        auto_renew=previous.auto_renew if previous else False,
        status="active",
        opportunity_id=opp.id if opp else None,
        previous_contract_id=previous.id if previous else None,
        created_at=now,
        updated_at=now,
    )


def _link(opp: Opportunity | None, contract: Contract) -> None:
    """An opportunity not linked yet points to the contract it produced or renews."""
    if opp is not None and opp.contract_id is None:
        opp.contract_id = contract.id


async def _contract_of_opportunity(session: AsyncSession, opp: Opportunity) -> Contract | None:
    return await session.scalar(
        select(Contract).where(
            col(Contract.workspace_id) == opp.workspace_id,
            col(Contract.opportunity_id) == opp.id,
        )
    )


async def _contract_by_id(
    session: AsyncSession, workspace_id: uuid.UUID, contract_id: uuid.UUID
) -> Contract | None:
    return await session.scalar(
        select(Contract).where(
            col(Contract.workspace_id) == workspace_id, col(Contract.id) == contract_id
        )
    )


async def _same_term(
    session: AsyncSession, account: Account, starts_on: date, ends_on: date, opp: Opportunity | None
) -> Contract | None:
    """A contract of the account for exactly this term: the same deal, reported again.

    With an opportunity, only a contract not tied to another opportunity counts.
    """
    statement = select(Contract).where(
        col(Contract.workspace_id) == account.workspace_id,
        col(Contract.account_id) == account.id,
        col(Contract.starts_on) == starts_on,
        col(Contract.ends_on) == ends_on,
    )
    for contract in await session.scalars(statement.order_by(col(Contract.id))):
        if opp is None or contract.opportunity_id in (None, opp.id):
            return contract
    return None


async def _term_in_question(
    session: AsyncSession, account: Account, opp: Opportunity | None
) -> Contract | None:
    """The term a renewal or churn is about: the opportunity's contract, else the latest."""
    if opp is not None and opp.contract_id is not None:
        linked = await _contract_by_id(session, account.workspace_id, opp.contract_id)
        if linked is not None and linked.status == "active":
            return linked
    return await latest_active_contract(
        session, workspace_id=account.workspace_id, account_id=account.id
    )


async def _local_date(session: AsyncSession, workspace_id: uuid.UUID, moment: datetime) -> date:
    timezone = await session.scalar(
        select(col(Workspace.timezone)).where(col(Workspace.id) == workspace_id)
    )
    return local_today(moment, timezone or "UTC")


# --- reading -----------------------------------------------------------------------------


async def latest_active_contract(
    session: AsyncSession, *, workspace_id: uuid.UUID, account_id: uuid.UUID
) -> Contract | None:
    """The account's active term that ends last (the one up for renewal), if any."""
    return await session.scalar(
        select(Contract)
        .where(
            col(Contract.workspace_id) == workspace_id,
            col(Contract.account_id) == account_id,
            col(Contract.status) == "active",
        )
        .order_by(col(Contract.ends_on).desc(), col(Contract.id).desc())
        .limit(1)
    )


def _check_status(value: str | None, allowed: tuple[str, ...], place: str = "query") -> None:
    if value is not None and value not in allowed:
        raise InvalidInput(
            f"unknown status {value!r}; one of {', '.join(allowed)}",
            errors=[{"field": "status", "in": place, "message": "unknown status"}],
        )


async def list_opportunities(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[Opportunity], str | None]:
    _check_status(status, OPPORTUNITY_STATUSES)
    statement = select(Opportunity).where(col(Opportunity.workspace_id) == workspace_id)
    if account_id is not None:
        await _account(session, workspace_id, account_id)
        statement = statement.where(col(Opportunity.account_id) == account_id)
    if status is not None:
        statement = statement.where(col(Opportunity.status) == status)
    after = decode_cursor(cursor)
    if after is not None:
        statement = statement.where(col(Opportunity.id) > after)
    rows = list(
        (await session.scalars(statement.order_by(col(Opportunity.id)).limit(limit + 1))).all()
    )
    return trim_page(rows, limit, lambda row: row.id)


async def list_contracts(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID | None = None,
    status: str | None = None,
    renews_before: date | None = None,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[Contract], str | None]:
    """Contracts by id; `renews_before` keeps those ending before that date."""
    _check_status(status, CONTRACT_STATUSES)
    statement = select(Contract).where(col(Contract.workspace_id) == workspace_id)
    if account_id is not None:
        statement = statement.where(col(Contract.account_id) == account_id)
    if status is not None:
        statement = statement.where(col(Contract.status) == status)
    if renews_before is not None:
        statement = statement.where(col(Contract.ends_on) < renews_before)
    after = decode_cursor(cursor)
    if after is not None:
        statement = statement.where(col(Contract.id) > after)
    rows = list(
        (await session.scalars(statement.order_by(col(Contract.id)).limit(limit + 1))).all()
    )
    return trim_page(rows, limit, lambda row: row.id)


async def get_contract(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    contract_id: uuid.UUID,
    for_update: bool = False,
) -> Contract:
    statement = select(Contract).where(
        col(Contract.workspace_id) == workspace_id, col(Contract.id) == contract_id
    )
    if for_update:
        statement = statement.with_for_update()
    contract = await session.scalar(statement)
    if contract is None:
        raise NotFound(f"contract {contract_id} not found")
    return contract


# --- manual management --------------------------------------------------------------------


async def create_contract(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    starts_on: date,
    ends_on: date,
    arr: Decimal,
    currency: str | None = None,
    auto_renew: bool = False,
) -> Contract:
    """A contract entered by hand; the currency defaults to the account's."""
    _check_term(starts_on, ends_on, "ends_on")
    amount = _amount(arr, "arr")
    assert amount is not None
    currency = _currency(currency, "currency")
    account = await _account(session, workspace_id, account_id)
    now = utcnow()
    contract = _new_contract(account, starts_on, ends_on, amount, currency or account.currency, now)
    contract.auto_renew = auto_renew
    session.add(contract)
    await session.flush()
    return contract


_EDITABLE = frozenset({"starts_on", "ends_on", "arr", "currency", "auto_renew", "status"})


async def update_contract(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    contract_id: uuid.UUID,
    changes: dict[str, Any],
) -> Contract:
    """Change a contract's term, ARR, currency, auto-renewal or status (a correction by hand)."""
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))} of a contract")
    for name, value in changes.items():
        if value is None:
            raise InvalidInput(
                f"{name} cannot be null",
                errors=[{"field": name, "in": "body", "message": "cannot be null"}],
            )
    contract = await get_contract(
        session, workspace_id=workspace_id, contract_id=contract_id, for_update=True
    )
    if "arr" in changes:
        changes["arr"] = _amount(changes["arr"], "arr")
    if "currency" in changes:
        _currency(changes["currency"], "currency")
    _check_status(changes.get("status"), CONTRACT_STATUSES, place="body")
    _check_term(
        changes.get("starts_on", contract.starts_on),
        changes.get("ends_on", contract.ends_on),
        "ends_on",
    )
    now = utcnow()
    status = changes.get("status", contract.status)
    if status != contract.status:
        contract.closed_at = None if status == "active" else now
    for name, value in changes.items():
        setattr(contract, name, value)
    contract.updated_at = now
    await session.flush()
    return contract
