"""SQLAlchemy tables (the Alembic migrations under migrations/ create them).

Dates are trading days (DATE); timestamps are UTC. Feature columns come from
core.features.FEATURE_COLUMNS so the list is defined once.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
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
    Column("trend_value", Float, nullable=True),
    Column("trend_state", String(16), nullable=True),
    Column("volatility_value", Float, nullable=True),
    Column("volatility_state", String(16), nullable=True),
    Column("credit_value", Float, nullable=True),
    Column("credit_state", String(16), nullable=True),
    Column("available", Integer, nullable=False),
    Column("votes", Integer, nullable=False),
    Column("regime", String(16), nullable=True),
    Column("exposure", Float, nullable=True),
    Column("computed_at", DateTime(timezone=True), nullable=False),
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
)

backtest_runs = Table(
    "backtest_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("request", JSON, nullable=False),
    Column("result", JSON, nullable=False),
    Column("duration_ms", Float, nullable=False),
)

# Held while an admin refresh runs, so only one runs at a time (SQLite and Postgres).
locks = Table(
    "locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
)
