"""Migration 0010 builds exactly the sweep tables of store/tables.py, on both databases."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect

from store.migrations import alembic_config, upgrade
from store.tables import metadata

SWEEP_TABLES = ("sweeps", "sweep_variants")


def _only_sweep_tables() -> MetaData:
    subset = MetaData(naming_convention=metadata.naming_convention)
    for name in SWEEP_TABLES:
        metadata.tables[name].to_metadata(subset)
    return subset


def _sweep_diffs(engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, parent: kind != "table" or name in SWEEP_TABLES,
            },
        )
        return compare_metadata(context, _only_sweep_tables())


def test_migrated_sweep_tables_match_their_definitions(engine) -> None:
    assert set(SWEEP_TABLES) <= set(inspect(engine).get_table_names())
    assert _sweep_diffs(engine) == []
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("sweep_variants")}
    assert "ix_sweep_variants_sweep_id_rank" in indexes


def test_downgrade_removes_the_sweep_tables_and_upgrade_restores_them(database_url, engine):
    command.downgrade(alembic_config(database_url), "0009")
    assert not set(SWEEP_TABLES) & set(inspect(engine).get_table_names())
    upgrade(database_url)
    assert _sweep_diffs(engine) == []
