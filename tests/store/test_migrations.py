"""The migrations build exactly the tables in store/tables.py, on both databases."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from store.migrations import (
    alembic_config,
    current_revision,
    head_revision,
    schema_is_current,
    upgrade,
)
from store.tables import metadata


def test_upgraded_schema_matches_the_table_definitions(engine):
    assert schema_is_current(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    assert set(inspect(engine).get_table_names()) >= set(metadata.tables)


def test_downgrade_then_upgrade_round_trips(database_url, engine):
    command.downgrade(alembic_config(database_url), "0001")
    assert current_revision(engine) == "0001"
    assert not schema_is_current(engine)
    assert "regimes" not in inspect(engine).get_table_names()
    upgrade(database_url)
    assert current_revision(engine) == head_revision()
