"""Migration 0009: stored regimes keep each filter's reading as data (no column per
filter); rows stored before it are carried over, and back on downgrade. Both databases."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import DBAPIError

from store.migrations import alembic_config, upgrade
from store.repository import load_regimes
from store.tables import rule_sets

LEGACY = [
    # date, version, trend value/state, volatility value/state, credit value/state, votes
    (
        dt.date(2024, 1, 2),
        "published-0c1efb7f",
        1.07,
        "clear",
        1.04,
        "firing",
        None,
        "unavailable",
        1,
    ),
    (dt.date(2024, 1, 3), "published-0c1efb7f", 0.98, "firing", 0.9, "clear", -1.5, "firing", 2),
]


def _insert_legacy(connection) -> None:
    for day, version, tv, ts, vv, vs, cv, cs, votes in LEGACY:
        connection.execute(
            sa.text(
                "INSERT INTO regimes (date, rule_set_version, trend_value, trend_state, "
                "volatility_value, volatility_state, credit_value, credit_state, available, "
                "votes, regime, exposure, computed_at) VALUES (:d, :v, :tv, :ts, :vv, :vs, "
                ":cv, :cs, 2, :votes, 'caution', 0.5, :now)"
            ),
            {
                "d": day,
                "v": version,
                "tv": tv,
                "ts": ts,
                "vv": vv,
                "vs": vs,
                "cv": cv,
                "cs": cs,
                "votes": votes,
                "now": dt.datetime(2024, 1, 4, tzinfo=dt.UTC),
            },
        )


def test_legacy_rows_move_into_readings_and_back(database_url, engine):
    config = alembic_config(database_url)
    command.downgrade(config, "0008")
    with engine.begin() as connection:
        _insert_legacy(connection)
    upgrade(database_url)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("regimes")}
    assert "readings" in columns and "trend_value" not in columns
    with engine.connect() as connection:
        rows = load_regimes(connection, rule_set_version="published-0c1efb7f")
    assert rows.loc["2024-01-02", "trend_value"] == 1.07
    assert rows.loc["2024-01-02", "volatility_state"] == "firing"
    assert rows.loc["2024-01-02", "credit_state"] == "unavailable"
    assert rows.loc["2024-01-03", "credit_value"] == -1.5
    assert rows["votes"].tolist() == [1.0, 2.0]
    command.downgrade(config, "0008")
    with engine.connect() as connection:
        back = connection.execute(
            sa.text("SELECT trend_value, credit_state, votes FROM regimes ORDER BY date")
        ).all()
    assert [tuple(r) for r in back] == [(1.07, "unavailable", 1), (0.98, "firing", 2)]


def test_registered_rule_sets_cannot_be_changed_in_the_database(engine):
    row = {
        "name": "x",
        "fingerprint": "0" * 64,
        "definition": "{}",
        "registered_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    }
    with engine.begin() as connection:
        connection.execute(rule_sets.insert().values(**row))
    for statement in (
        rule_sets.update().values(definition='{"a": 1}'),
        rule_sets.delete(),
    ):
        with pytest.raises(DBAPIError, match="immutable"), engine.begin() as connection:
            connection.execute(statement)
