"""Settings: QB_ variables, URL normalisation, and clear failures."""

import pytest
from pydantic import ValidationError

from service.config import Settings, normalize_database_url


def test_defaults_to_embedded_sqlite(monkeypatch):
    monkeypatch.delenv("QB_DATABASE_URL", raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///./quarterback.db"
    assert settings.is_sqlite
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8000, "info")


def test_reads_qb_variables(monkeypatch):
    monkeypatch.setenv("QB_DATABASE_URL", "postgres://u:p@db:5432/qb")
    monkeypatch.setenv("QB_PORT", "9000")
    monkeypatch.setenv("QB_LOG_LEVEL", "WARNING")
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/qb"
    assert settings.port == 9000 and settings.log_level == "warning"


@pytest.mark.parametrize("url", ["mysql://x/y", "not a url", "oracle+cx://a/b"])
def test_unsupported_urls_are_refused(url):
    with pytest.raises(ValueError):
        normalize_database_url(url)
    with pytest.raises(ValidationError):
        Settings(database_url=url, _env_file=None)


def test_webhook_admission_follows_the_pool_unless_set(monkeypatch):
    """Unset, a process takes as many deliveries at once as its pool has connections (pool
    size plus overflow); set, the value is the limit."""
    for name in ("QB_WEBHOOK_MAX_IN_FLIGHT", "QB_DB_POOL_SIZE", "QB_DB_MAX_OVERFLOW"):
        monkeypatch.delenv(name, raising=False)
    assert Settings(_env_file=None).webhook_admission_limit == 8
    assert Settings(db_pool_size=6, _env_file=None).webhook_admission_limit == 6
    assert Settings(db_pool_size=6, db_max_overflow=4, _env_file=None).webhook_admission_limit == 10
    monkeypatch.setenv("QB_WEBHOOK_MAX_IN_FLIGHT", "20")
    assert Settings(db_pool_size=6, _env_file=None).webhook_admission_limit == 20
    with pytest.raises(ValidationError):
        Settings(webhook_max_in_flight=0, _env_file=None)
