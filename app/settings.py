"""One typed settings object, read from DEEPREGIME_* environment variables."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
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
    # The markets answered for (operations.markets); unset: the shipped universe.
    universe_file: Path | None = None
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
    # A rendered /regime/today answer lives until the ledger moves on or the trading day
    # rolls over; after this long it is also re-rendered once in the background while
    # clients keep getting it (a safety net, not the freshness mechanism). 0: no cache.
    cache_ttl_s: float = Field(default=300.0, ge=0, le=86_400)
    # Data lagging the last closed NYSE session by more sessions is stale: served and
    # flagged (/regime/today "stale", /ready "degraded", the deepregime_data_stale gauge).
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

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item.strip(), strict=False)  # ValueError names the entry
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
    # Webhooks go to public addresses only; these networks (addresses or CIDR, e.g.
    # ["10.1.2.0/24"]) are opened besides: an internal receiver, a test's loopback one.
    webhook_allowed_networks: list[str] = Field(default_factory=list)
    # GET /regime/stream checks the ledger this often, and writes a keep-alive
    # comment after this long without an event (proxies drop silent connections).
    stream_poll_s: float = Field(default=0.75, gt=0, le=60)
    stream_keepalive_s: float = Field(default=15.0, gt=0, le=600)

    # --- serving at the limit (app.research, app.rate_limit, app.limits, cli.serve) ---

    # Uvicorn worker processes of `deepregime serve` (the image's default as well).
    workers: int = Field(default=1, ge=1, le=64)
    # Processes per serving worker that run backtests and history pages, so research
    # never holds the GIL of the event loop that answers /regime/today (0: in the
    # serving process's thread pool, without that isolation; for debugging).
    research_processes: int = Field(default=2, ge=0, le=64)
    # Research jobs waiting beyond the running ones; more answer 503 with Retry-After.
    research_queue: int = Field(default=16, ge=0, le=1000)
    # CPU priority of the research processes and the local Dask cluster's workers below
    # the serving ones (os.nice increment),
    # so a busy machine answers /regime/today first.
    research_nice: int = Field(default=10, ge=0, le=19)
    # A research job (one backtest or history page) taking longer is answered 503.
    research_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    # POST /backtest per client (its verified API key, else its address): a bucket of
    # `burst` requests refilled at `per_minute` (a key's own rate where it has one);
    # beyond it 429 with Retry-After. 0 disables.
    backtest_rate_per_minute: float = Field(default=60.0, ge=0, le=100_000)
    backtest_rate_burst: int = Field(default=10, ge=1, le=10_000)
    # Stored backtest runs are kept within all three bounds (oldest dropped first).
    backtest_keep_runs: int = Field(default=1000, ge=1, le=10_000_000)
    backtest_keep_mb: float = Field(default=256.0, gt=0, le=1_000_000)
    backtest_keep_days: float = Field(default=30.0, gt=0, le=36_500)
    # HTTP limits of the server (uvicorn, app.limits): request head size and the time to
    # send it from its first byte, the time to send a body, idle keep-alive, and the time
    # a new connection may stay silent. Open connections per worker process, in all and
    # per client address (except the proxies of FORWARDED_ALLOW_IPS): over a cap the
    # oldest idle one is closed; when none is idle, 503 (all) or 429 (one address).
    http_max_head_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    http_head_timeout_s: float = Field(default=10.0, gt=0, le=600)
    http_body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    http_keepalive_s: float = Field(default=5.0, gt=0, le=600)
    http_first_byte_timeout_s: float = Field(default=2.0, gt=0, le=600)
    http_max_connections: int = Field(default=1000, ge=1, le=100_000)
    http_max_connections_per_client: int = Field(default=64, ge=1, le=100_000)

    # --- research sweeps (operations.sweeps, research/) ---

    # Dask scheduler address (e.g. tcp://scheduler:8786) the sweeps run on; unset: a
    # local cluster of `dask_workers` processes started on first use.
    dask_scheduler: str | None = None
    dask_workers: int = Field(default=2, ge=1, le=256)
    # False: the local cluster's workers are threads of this process (tests, debugging).
    dask_processes: bool = True
    # A grid expanding to more variants is refused (422 naming body.grid).
    sweep_max_variants: int = Field(default=50_000, ge=1, le=10_000_000)
    # Variants per Dask task.
    sweep_chunk_variants: int = Field(default=500, ge=1, le=100_000)
    # How often the service looks for queued sweeps and for running ones whose process
    # stopped (no heartbeat for `sweep_stale_s`), which are queued again. 0: sweeps are
    # run only by `deepregime sweep`.
    sweep_poll_s: float = Field(default=5.0, ge=0, le=3600)
    sweep_stale_s: float = Field(default=60.0, gt=0, le=86_400)
    sweep_max_attempts: int = Field(default=3, ge=1, le=100)
    max_sweep_page_size: int = Field(default=500, ge=1, le=100_000)

    # --- access (operations.keys) ---

    # Quotas of a key that sets none: sweeps queued or running at once, variants queued
    # in the last 24 hours.
    key_max_concurrent_sweeps: int = Field(default=2, ge=0, le=10_000)
    key_max_variants_per_day: int = Field(default=200_000, ge=0, le=1_000_000_000)
    # The proxies whose X-Forwarded-For / X-Forwarded-Proto the server believes
    # (uvicorn's --forwarded-allow-ips, read from FORWARDED_ALLOW_IPS): unset, none, so
    # a client cannot choose the address its limits are kept under.
    forwarded_allow_ips: str = Field(
        default="", validation_alias=AliasChoices("FORWARDED_ALLOW_IPS", "forwarded_allow_ips")
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
