"""Settings, read once from `QB_` environment variables (or a `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

SUPPORTED_DRIVERS = {"sqlite+aiosqlite", "postgresql+asyncpg"}
# Plain URLs as people paste them from their cloud console; we pick the async driver for them.
DRIVER_ALIASES = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
}


def normalize_database_url(value: str) -> str:
    """Return the URL with an async driver, or raise ValueError saying what to fix."""
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(
            f"{value!r} is not a database URL; expected e.g. "
            "sqlite+aiosqlite:///./quarterback.db or postgresql+asyncpg://user@host:5432/db"
        ) from None
    drivername = DRIVER_ALIASES.get(url.drivername, url.drivername)
    if drivername not in SUPPORTED_DRIVERS:
        raise ValueError(
            f"{url.drivername!r} is not supported; use "
            "sqlite+aiosqlite (embedded) and postgresql+asyncpg (production)"
        )
    return url.set(drivername=drivername).render_as_string(hide_password=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QB_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./quarterback.db",
        description="SQLAlchemy URL: sqlite+aiosqlite (embedded default) or postgresql+asyncpg.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    db_pool_size: int = Field(
        default=8,
        ge=1,
        le=100,
        description="PostgreSQL connections each worker keeps open (QB_DB_POOL_SIZE).",
    )
    db_max_overflow: int = Field(
        # Zero: a connection opened for a burst is closed again as soon as the pool has enough
        # idle ones, and the next burst opens it again. A new asyncpg connection costs several
        # milliseconds of this process's CPU (connect, SQLAlchemy's codec set-up) plus a backend
        # fork, so under steady load overflow churned about 3 % of deliveries and doubled their
        # p99 (bench/ingest.py, 8 senders: 64 ms with 4 + 4 overflow, 30-34 ms with 8 + 0).
        default=0,
        ge=0,
        le=100,
        description="Extra PostgreSQL connections a worker may open in a burst, closed again "
        "when returned (QB_DB_MAX_OVERFLOW).",
    )
    db_pool_timeout_seconds: float = Field(
        # A request that waits this long for a connection is answered 503 with Retry-After
        # (service/errors.py) rather than held until its client gives up.
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a request waits for a free PostgreSQL connection before it is "
        "answered 503 (QB_DB_POOL_TIMEOUT_SECONDS).",
    )
    public_url: str | None = Field(
        default=None, description="Public base URL, used in printed examples and links."
    )
    scheduler_enabled: bool = Field(
        default=True, description="Fire due timers inside `serve` (QB_SCHEDULER_ENABLED)."
    )
    scheduler_poll_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="Seconds between looks for due timers."
    )
    graphql_introspection: bool = Field(
        default=True,
        description="Answer GraphQL introspection (GraphiQL needs it); false in locked-down "
        "deployments (QB_GRAPHQL_INTROSPECTION).",
    )

    webhook_max_in_flight: int | None = Field(
        # Unset: the pool's connections (pool size + overflow). A delivery beyond them would
        # only wait for a connection, and on 2 cores (bench/ingest.py, 64 senders) a cap of 8
        # kept p99.9 at 360-410 ms where 16 gave 500-540 ms, with the same rate for 8 senders.
        # Refusals are answered in front of the app (service/webhooks/admission.py).
        default=None,
        ge=1,
        le=10_000,
        description="Webhook deliveries one process handles at once; more get 503 + "
        "Retry-After. Unset: the database pool's connections (QB_DB_POOL_SIZE + "
        "QB_DB_MAX_OVERFLOW).",
    )
    outbound_allow_private_networks: bool = Field(
        default=False,
        description="Allow subscription URLs on private or loopback addresses (local testing).",
    )
    outbound_poll_seconds: float = Field(
        default=2.0, gt=0, le=300, description="Seconds between looks at the outbox."
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def webhook_admission_limit(self) -> int:
        """Webhook deliveries one process takes at once (`webhook_max_in_flight` or the
        pool's connections)."""
        return self.webhook_max_in_flight or self.db_pool_size + self.db_max_overflow

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
