"""Core `Table` objects of the models, for prebuilt statements on hot paths.

`inspect(Model).local_table` is `Model.__table__`, which SQLModel does not declare for mypy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Table, bindparam, insert, inspect, select
from sqlalchemy.dialects import postgresql, sqlite

from service.accounts.models import Account, AccountExternalId, AccountOwner, StageTransition
from service.deals.models import Contract, Opportunity
from service.forecasts.models import (
    ForecastOverride,
    RenewalFact,
    RenewalFactsStale,
    RenewalFactsState,
)
from service.lifecycle.models import LifecycleEvent, Stage
from service.outbound.models import (
    DeliveryAttempt,
    OutboxMessage,
    Subscription,
    SubscriptionEventType,
)
from service.plans.models import Measurement, PlanOutcome, SuccessPlan
from service.tasks.models import Task, TaskActivity
from service.timers.models import Timer
from service.webhooks.models import WebhookRecordState
from service.workspaces.models import Workspace


def table_of(model: type) -> Table:
    table: object = inspect(model).local_table
    assert isinstance(table, Table)
    return table


def insert_every_column(table: Table, prefix: str, columns: Sequence[str] | None = None) -> Insert:
    """INSERT one row of `table`, each column (or each of `columns`; the others take their
    defaults) bound as `prefix` + its name: so that several such inserts can share one
    statement (as WITH clauses) without their parameters clashing."""
    chosen = [table.c[name] for name in columns] if columns is not None else list(table.c)
    return insert(table).values(
        {column.name: bindparam(prefix + column.name, type_=column.type) for column in chosen}
    )


def prefixed(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A row's values as `insert_every_column(table, prefix)` binds them."""
    return {prefix + name: value for name, value in row.items()}


def insert_unless_present(model: type, unique: Sequence[str]) -> dict[str, Any]:
    """Per dialect name, INSERT one row of `model` unless one with the same `unique` columns
    exists, loaded as the entity: the new row as a session object in one round trip, or no
    row (the unique constraint decides, so concurrent writers are safe).

    A Core INSERT … RETURNING under `from_statement` costs less CPU than the ORM's bulk
    INSERT path for a single row; build it once, at import."""
    table = table_of(model)
    return {
        module.dialect.name: select(model).from_statement(
            module.insert(table)
            .on_conflict_do_nothing(index_elements=list(unique))
            .returning(*table.c)
        )
        for module in (postgresql, sqlite)
    }


accounts = table_of(Account)
account_owners = table_of(AccountOwner)
account_external_ids = table_of(AccountExternalId)
stage_transitions = table_of(StageTransition)
opportunities = table_of(Opportunity)
contracts = table_of(Contract)
forecast_overrides = table_of(ForecastOverride)
renewal_facts = table_of(RenewalFact)
renewal_facts_state = table_of(RenewalFactsState)
renewal_facts_stale = table_of(RenewalFactsStale)
stages = table_of(Stage)
lifecycle_events = table_of(LifecycleEvent)
tasks = table_of(Task)
task_activities = table_of(TaskActivity)
timers = table_of(Timer)
workspaces = table_of(Workspace)
success_plans = table_of(SuccessPlan)
plan_outcomes = table_of(PlanOutcome)
plan_measurements = table_of(Measurement)
webhook_record_states = table_of(WebhookRecordState)
subscriptions = table_of(Subscription)
subscription_event_types = table_of(SubscriptionEventType)
outbox_messages = table_of(OutboxMessage)
delivery_attempts = table_of(DeliveryAttempt)
