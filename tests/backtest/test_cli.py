"""``deepregime backtest`` against a migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from app.settings import get_settings
from backtest.schemas import BacktestResult
from cli import backtest as backtest_cli
from core.features import compute_features
from store.repository import upsert, utcnow, write_features
from store.tables import prices
from tests.conftest import make_closes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    """A command group holding only the backtest command, pointed at the test database."""
    monkeypatch.setenv("DEEPREGIME_DATABASE_URL", database_url)
    get_settings.cache_clear()
    app = typer.Typer()
    backtest_cli.register(app)

    @app.callback()
    def _root() -> None:  # keeps "backtest" as a named subcommand
        pass

    yield app
    get_settings.cache_clear()


def store_market(engine: Engine, with_dff: bool = True) -> None:
    closes = make_closes(n_days=400, seed=3)
    if with_dff:
        closes["DFF"] = pd.Series(4.5, index=closes["SPY"].index)
    now = utcnow()
    rows = [
        {
            "symbol": symbol,
            "date": day.date(),
            "adj_close": float(value),
            "source": "csv",
            "ingested_at": now,
        }
        for symbol, series in closes.items()
        for day, value in series.items()
    ]
    with engine.begin() as connection:
        upsert(connection, prices, rows)
        write_features(connection, table=compute_features(closes))


def invoke(app: typer.Typer, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["backtest", *args])


def test_default_preset_prints_the_published_comparison(cli: typer.Typer, engine: Engine) -> None:
    store_market(engine)
    outcome = invoke(cli)
    assert outcome.exit_code == 0, outcome.output
    assert "Reproduction: three-filter framework" in outcome.output
    assert "Combined (3 filters)" in outcome.output and "-52.4%" in outcome.output
    assert "Backtested 5 strategies over" in outcome.output


def test_json_output_follows_the_result_schema_and_plots_are_written(
    cli: typer.Typer, engine: Engine, tmp_path: Path
) -> None:
    store_market(engine)
    outcome = invoke(cli, "--json", "--plots", str(tmp_path / "plots"))
    assert outcome.exit_code == 0, outcome.output
    payload = outcome.stdout[: outcome.stdout.rindex("}") + 1]
    result = BacktestResult.model_validate(json.loads(payload))
    assert [s.name for s in result.strategies][0] == "Buy & hold"
    for name in ("equity.png", "drawdowns.png", "regimes.png"):
        path = tmp_path / "plots" / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert f"wrote {path}" in outcome.output


def test_config_file_in_yaml_runs_any_strategies(
    cli: typer.Typer, engine: Engine, tmp_path: Path
) -> None:
    store_market(engine)
    config = tmp_path / "request.yaml"
    config.write_text(
        "strategies:\n"
        "  - kind: rules\n"
        "    preset: platform\n"
        "  - kind: vol_target\n"
        "    base: {kind: buy_and_hold}\n"
        "    target_volatility: 0.12\n"
        "cost_bps: 5\n"
        "cash_yield: true\n"
    )
    outcome = invoke(cli, "--config", str(config), "--json")
    assert outcome.exit_code == 0, outcome.output
    result = BacktestResult.model_validate_json(outcome.stdout)
    assert [s.name for s in result.strategies] == ["Rules (platform)", "Buy & hold @ 12% vol"]
    assert result.conventions.cost_bps == 5.0 and result.conventions.cash_yield
    assert all(s.metrics.sharpe_excess is not None for s in result.strategies)


@pytest.mark.parametrize(
    ("content", "suffix", "expected"),
    [
        ("strategies:\n  - kind: rules\n    credit: {window: 1}\n", ".yaml", ("credit.window",)),
        ('{"strategies": [{"kind": "buy_and_hold"}], "lag": 0}', ".json", ("'lag'",)),
        ("strategies: [kind: rules\n", ".yaml", ("request.yaml", "line 2")),
        ('{"strategies": [}', ".json", ("request.json", "line 1")),
    ],
    ids=["bad-window", "lag-0", "broken-yaml", "broken-json"],
)
def test_bad_config_fails_with_one_line_naming_the_problem(
    cli: typer.Typer,
    engine: Engine,
    tmp_path: Path,
    content: str,
    suffix: str,
    expected: tuple[str, ...],
) -> None:
    config = tmp_path / f"request{suffix}"
    config.write_text(content)
    outcome = invoke(cli, "--config", str(config))
    assert outcome.exit_code == 1
    assert outcome.output.count("\n") == 1 and outcome.output.startswith("error: ")
    assert all(part in outcome.output for part in expected), outcome.output


def test_model_strategy_without_a_model_fails_clearly(
    cli: typer.Typer, engine: Engine, tmp_path: Path
) -> None:
    store_market(engine)
    config = tmp_path / "model.json"
    config.write_text('{"strategies": [{"kind": "model", "mapping": "leveraged"}]}')
    outcome = invoke(cli, "--config", str(config))
    assert outcome.exit_code == 1
    assert "a strategy reads the classifier, but no model is active" in outcome.output


def test_empty_store_fails_with_what_to_run(cli: typer.Typer, engine: Engine) -> None:
    outcome = invoke(cli)
    assert outcome.exit_code == 1
    assert "no features stored" in outcome.output
