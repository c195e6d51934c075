"""SQLAlchemy tables (the Alembic migrations under migrations/ create them).

Dates are trading days (DATE); timestamps are UTC. Feature columns come from
core.features.FEATURE_COLUMNS so the list is defined once.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from core.features import FEATURE_COLUMNS

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

prices = Table(
    "prices",
    metadata,
    Column("symbol", String(32), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("open", Float, nullable=True),
    Column("high", Float, nullable=True),
    Column("low", Float, nullable=True),
    Column("close", Float, nullable=True),
    Column("adj_close", Float, nullable=False),  # total-return close; index level for indices
    Column("volume", BigInteger, nullable=True),
    Column("source", String(16), nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

ingest_runs = Table(
    "ingest_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("target", Text, nullable=False),  # file path or symbol fetched
    Column("symbol", String(32), nullable=True),
    Column("status", String(16), nullable=False),  # success | unchanged | rejected
    Column("rows_read", Integer, nullable=False, default=0),
    Column("rows_inserted", Integer, nullable=False, default=0),
    Column("rows_updated", Integer, nullable=False, default=0),
    Column("rows_quarantined", Integer, nullable=False, default=0),
    Column("fingerprint", String(64), nullable=True),  # sha256 of the file read
    Column("message", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("ingest_runs.id", ondelete="CASCADE"), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("date", Date, nullable=True),
    Column("line", Integer, nullable=True),
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=True),
)

features = Table(
    "features",
    metadata,
    Column("date", Date, primary_key=True),
    Column("feature_set_version", Integer, primary_key=True),
    *(Column(name, Float, nullable=True) for name in FEATURE_COLUMNS),
    Column("computed_at", DateTime(timezone=True), nullable=False),
)

regimes = Table(
    "regimes",
    metadata,
    Column("date", Date, primary_key=True),
    Column("rule_set_version", String(64), primary_key=True),
    # Each filter's reading, {filter: [value or null, state]}: a new filter needs no column.
    Column("readings", JSON, nullable=False),
    Column("available", Integer, nullable=False),
    Column("votes", Float, nullable=False),  # weighted votes, or a continuous rule set's score
    Column("regime", String(16), nullable=True),
    Column("exposure", Float, nullable=True),
    Column("computed_at", DateTime(timezone=True), nullable=False),
)

# Rule sets registered by name (core.rulesets.RuleSetDefinition); immutable (triggers).
rule_sets = Table(
    "rule_sets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # sha256 of ``definition``
    Column("definition", Text, nullable=False),  # canonical JSON
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("card", JSON, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

# Append-only: the latest row names the active model (history kept for audit).
model_activations = Table(
    "model_activations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(64), ForeignKey("model_versions.version"), nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False),
)

model_outputs = Table(
    "model_outputs",
    metadata,
    Column("date", Date, primary_key=True),
    Column("model_version", String(64), primary_key=True),
    Column("regime", Integer, nullable=True),  # 0 calm, 1 distressed
    Column("p_distressed", Float, nullable=True),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    # True: the day is on or before the model's in-sample cut-off; NULL: not recorded.
    Column("in_sample", Boolean, nullable=True),
)

# A version's walk-forward out-of-sample history (models/<version>/walk_forward.csv),
# loaded on activation: for each day up to the version's in-sample cut-off, the output
# of a refit trained only on data up to ``fold_cutoff`` (before the day).
model_walk_forward = Table(
    "model_walk_forward",
    metadata,
    Column("date", Date, primary_key=True),
    Column("model_version", String(64), primary_key=True),
    Column("regime", Integer, nullable=False),  # 0 calm, 1 distressed
    Column("p_distressed", Float, nullable=False),
    Column("fold_cutoff", Date, nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
)

backtest_runs = Table(
    "backtest_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("request", JSON, nullable=False),
    Column("result", JSON, nullable=False),
    Column("duration_ms", Float, nullable=False),
    # A client's Idempotency-Key: a retried POST finds this run instead of storing another.
    Column("idempotency_key", String(255), unique=True),
    Column("request_sha256", String(64)),  # of the canonical request, to refuse a reused key
    Column("size_bytes", Integer, nullable=False, server_default="0"),  # request + result JSON
    # Covers retention's count, size sum and oldest-first walk without reading the
    # (large) JSON rows.
    Index("ix_backtest_runs_retention", "created_at", "id", "size_bytes"),
)

# Per-client token buckets of the rate limit on POST /backtest (store.rate_limits),
# shared by every worker and replica.
# API keys (operations.keys): only the sha256 of each key is kept. Quotas left NULL
# take the service's defaults (app.settings).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # read | research | admin
    Column("label", String(200), nullable=True),
    Column("max_concurrent_sweeps", Integer, nullable=True),
    Column("max_variants_per_day", Integer, nullable=True),
    Column("backtests_per_minute", Float, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

rate_limit_buckets = Table(
    "rate_limit_buckets",
    metadata,
    Column("client", String(64), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", Float, nullable=False),  # wall-clock seconds (POSIX)
    Column("granted", Boolean, nullable=False),  # whether the last take got a token
)

# --- the daily cycle ----------------------------------------------------------------

# One row per `deepregime update` (CLI, admin refresh or scheduler): what it did and how.
update_runs = Table(
    "update_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trigger", String(16), nullable=False),  # cli | api | schedule
    Column("source", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # running | published | unchanged | held | failed
    Column("summary", JSON, nullable=True),
    Column("message", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

# The publication ledger: append-only (database triggers refuse UPDATE and DELETE).
# ``body`` is the exact JSON answer published; ``body_sha256`` its digest.
publications = Table(
    "publications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Date, nullable=False, index=True),
    Column("policy", String(32), nullable=False),  # rules | ensemble | model:filter | ...
    Column("rule_set_version", String(64), nullable=False),
    Column("model_version", String(64), nullable=True),
    Column("data_fingerprint", String(64), nullable=False),
    Column("run_id", Integer, ForeignKey("update_runs.id"), nullable=True),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("body", Text, nullable=False),
    Column("body_sha256", String(64), nullable=False),
)

# Changes to stored prices of days already stored: applied (rescaling or accepted)
# or held (refused until `--accept-revisions`).
price_revisions = Table(
    "price_revisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("update_runs.id"), nullable=True),
    Column("symbol", String(32), nullable=False),
    Column("first_date", Date, nullable=False),
    Column("last_date", Date, nullable=False),
    Column("days", Integer, nullable=False),
    Column("old_adj_close", Float, nullable=True),  # on first_date
    Column("new_adj_close", Float, nullable=True),
    Column("factor", Float, nullable=True),  # new / old, for a rescaling
    Column("max_change", Float, nullable=False),  # largest relative change of a day
    Column("kind", String(16), nullable=False),  # rescale | correction
    Column("status", String(16), nullable=False),  # applied | accepted | held
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", String(128), nullable=False),  # whsec_<base64>, Standard Webhooks
    Column("description", Text, nullable=True),
    Column("policy", String(32), nullable=True),  # events of this policy; NULL: the default
    Column("active", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Durable outbox: one row per (event, subscription), written in the publishing
# transaction and delivered at least once, with retries and backoff.
webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),  # webhook-id header, stable across retries
    Column("subscription_id", String(36), ForeignKey("webhook_subscriptions.id"), nullable=False),
    Column("publication_id", Integer, ForeignKey("publications.id"), nullable=True),
    Column("event_type", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer, ForeignKey("webhook_outbox.id"), nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Float, nullable=False),
)

# --- research: sweeps as jobs (operations.sweeps) ------------------------------------

# One row per sweep: its request, where it stands, and its summary once done. A
# running sweep refreshes ``heartbeat_at``; one whose heartbeat stops (its process
# ended) is queued again and rerun from the start.
sweeps = Table(
    "sweeps",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(120), nullable=True),
    Column("status", String(16), nullable=False),  # queued | running | done | failed | cancelled
    Column("request", JSON, nullable=False),
    Column("variants", Integer, nullable=False),
    Column("done_variants", Integer, nullable=False, server_default="0"),
    Column("cancel_requested", Boolean, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("summary", JSON, nullable=True),
    Column("message", Text, nullable=True),  # why it failed, or was queued again
    Column("scheduler", String(255), nullable=True),  # where it ran: a Dask address or local
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # The api_keys.id (or "admin" for DEEPREGIME_API_KEY) that queued it; NULL before keys.
    Column("owner", String(36), nullable=True, index=True),
)

# Every variant of a finished sweep: rank 1 is the best by the sweep's objective.
sweep_variants = Table(
    "sweep_variants",
    metadata,
    Column("sweep_id", String(36), ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True),
    Column("variant", Integer, primary_key=True),
    Column("rank", Integer, nullable=False),
    Column("objective", Float, nullable=True),
    Column("parameters", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Index("ix_sweep_variants_sweep_id_rank", "sweep_id", "rank"),
)
