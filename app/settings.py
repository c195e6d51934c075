"""One typed settings object, read from DEEPREGIME_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.enums import Policy
from core.features import FEATURE_INPUT_SYMBOLS

PLACEHOLDER_SECRETS = {"changethis", "changeme", "secret", "password", "admin"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEEPREGIME_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    # A plain string so SQLite and PostgreSQL URLs both pass.
    database_url: str = "sqlite:///./var/deepregime.db"
    db_timeout_s: float = Field(default=3.0, gt=0, le=60)

    data_source: Literal["csv", "yfinance"] = "yfinance"
    data_path: Path = Path("../shared/data/market")
    symbols: list[str] = Field(default_factory=lambda: list(FEATURE_INPUT_SYMBOLS))
    yfinance_start: str = "1993-01-01"

    model_dir: Path = Path("models")
    rule_set: str = "published"
    default_policy: Policy = Policy.RULES

    # Admin routes answer 403 for every key while this is unset.
    api_key: SecretStr | None = None
    migrate_on_start: bool = False
    cors_origins: list[str] = Field(default_factory=list)
    max_backtest_strategies: int = Field(default=12, ge=1, le=100)
    max_page_size: int = Field(default=5000, ge=1, le=100_000)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)

    # Serving (`deepregime serve`, the container's command).
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Exposure mapping of the classifier under policy "model": core.policies presets.
    model_mapping: Literal["filter", "leveraged"] = "filter"
    # /regime/today answers are cached this long (also dropped on refresh/activation),
    # so data written by another process (CLI, ingest job) shows within this delay.
    cache_ttl_s: float = Field(default=5.0, ge=0, le=3600)
    # /ready reports "not ready" when the data lags the expected trading day by more.
    max_data_lag_days: int = Field(default=3, ge=0, le=10_000)
    # At start, wait this long for the database (and for a migration job to finish).
    startup_wait_s: float = Field(default=0.0, ge=0, le=600)

    # The daily cycle (operations.update). The command line waits this long for a
    # running update (or activation) to finish; the API answers 409 at once.
    update_lock_wait_s: float = Field(default=60.0, ge=0, le=3600)
    # `deepregime serve --schedule` / `deepregime schedule` run the update this many
    # minutes after each NYSE close (early closes included).
    schedule_delay_minutes: float = Field(default=30.0, ge=0, le=24 * 60)
    # The serving process runs the schedule itself (`deepregime serve --schedule`).
    schedule_updates: bool = False
    # How often a serving process asks the ledger for its newest publication id, so an
    # update run by another process or replica is served within this delay.
    publication_check_s: float = Field(default=1.0, ge=0, le=60)

    @field_validator("api_key")
    @classmethod
    def _refuse_placeholder_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < 16:
            raise ValueError(
                "DEEPREGIME_API_KEY must be at least 16 characters and not a placeholder"
            )
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    # --- webhooks and the regime stream (operations.notifications, app.routes_stream) ---

    # The background task sends due webhook events this often (0: no background task;
    # the update cycle still sends right after it publishes).
    webhook_poll_s: float = Field(default=5.0, ge=0, le=3600)
    # Per HTTP operation (connect, write, read) of one webhook send.
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Tries per event before it is marked failed.
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    # Retry n waits between half and all of min(cap, base * 2**(n-1)) seconds.
    webhook_backoff_base_s: float = Field(default=30.0, gt=0, le=86_400)
    webhook_backoff_cap_s: float = Field(default=6 * 3600.0, gt=0, le=7 * 86_400)
    # GET /regime/stream checks the ledger this often, and writes a keep-alive
    # comment after this long without an event (proxies drop silent connections).
    stream_poll_s: float = Field(default=0.75, gt=0, le=60)
    stream_keepalive_s: float = Field(default=15.0, gt=0, le=600)


@lru_cache
def get_settings() -> Settings:
    return Settings()
