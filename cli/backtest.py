"""``deepregime backtest``: run strategy configurations on the stored history.

The computation is backtest.runner.run_backtest (pure); this module only reads
the request (a preset or a JSON/YAML file), loads the inputs from the store and
prints or plots the result.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from sqlalchemy import Connection, select

from backtest.published import published_framework_request
from backtest.rates import daily_cash_rate
from backtest.report import format_published_comparison, format_result
from backtest.runner import BacktestInputs, run_backtest
from backtest.schemas import BacktestRequest
from backtest.strategies import uses_model
from cli.common import handles_errors, print_json, transaction
from core.errors import DataValidationError, NoDataError
from core.features import SPY
from store.repository import load_closes, load_features, load_model_outputs
from store.tables import model_activations

PUBLISHED_FRAMEWORK = "published-framework"
PRESETS: dict[str, Callable[[], BacktestRequest]] = {
    PUBLISHED_FRAMEWORK: published_framework_request
}


def read_request(path: Path) -> BacktestRequest:
    """A BacktestRequest from a .json, .yaml or .yml file."""
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            payload = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            payload = yaml.safe_load(text)
        else:
            raise DataValidationError(
                f"unsupported file type {suffix or '(none)'!r}: use .json, .yaml or .yml",
                source=str(path),
            )
    except json.JSONDecodeError as error:
        raise DataValidationError(error.msg, source=str(path), line=error.lineno) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(error, "problem", None) or str(error)
        raise DataValidationError(reason, source=str(path), line=line) from None
    if not isinstance(payload, dict):
        raise DataValidationError("expected a mapping with a 'strategies' list", source=str(path))
    return BacktestRequest.model_validate(payload)


def load_inputs(
    connection: Connection, request: BacktestRequest, *, model_version: str | None = None
) -> BacktestInputs:
    """Everything ``request`` needs, read from the store (full history for warm-up)."""
    features = load_features(connection)
    if features.empty:
        raise NoDataError("no features stored: run `deepregime ingest`, then `deepregime features`")
    source = request.rate_source.value
    closes = load_closes(connection, symbols=[SPY, source])
    if SPY not in closes:
        raise NoDataError(f"no {SPY} prices stored: run `deepregime ingest`")
    cash_rate = None
    if source in closes:
        cash_rate = daily_cash_rate(source, closes[source], features.index)
    elif request.cash_yield or request.financing:
        raise NoDataError(f"cash yield and financing need {source} in the store: ingest it first")
    model_outputs = None
    if any(uses_model(strategy) for strategy in request.strategies):
        version = model_version or active_model_version(connection)
        if version is None:
            raise NoDataError("model strategies need --model-version: no model is active")
        model_outputs = load_model_outputs(connection, model_version=version)
        if model_outputs.empty:
            raise NoDataError(f"no daily outputs stored for model version {version!r}")
    return BacktestInputs(
        features=features,
        asset_close=closes[SPY],
        cash_rate=cash_rate,
        cash_rate_source=source if cash_rate is not None else None,
        model_outputs=model_outputs,
        asset=SPY,
    )


def active_model_version(connection: Connection) -> str | None:
    """Version named by the latest activation, if any."""
    statement = select(model_activations.c.version).order_by(model_activations.c.id.desc()).limit(1)
    return connection.execute(statement).scalar()


@handles_errors
def backtest(
    preset: Annotated[
        str | None,
        typer.Option(help=f"Named run: {', '.join(PRESETS)} (the default without --config)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="JSON or YAML file with a backtest request (strategies, dates, costs)."),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="First day, YYYY-MM-DD (overrides the request).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Last day, YYYY-MM-DD (overrides the request).")
    ] = None,
    cost_bps: Annotated[
        float | None, typer.Option(help="Cost per unit traded, in bps (overrides the request).")
    ] = None,
    model_version: Annotated[
        str | None, typer.Option(help="Model whose stored outputs model strategies read.")
    ] = None,
    plots: Annotated[
        Path | None, typer.Option(help="Folder to write equity, drawdown and regime PNGs into.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (the result schema).")
    ] = False,
) -> None:
    """Backtest strategies on the stored history and print their metrics.

    Without --config runs the published-framework preset: buy & hold, each filter
    alone and the combined framework from 2006, beside the published numbers.
    """
    if preset is not None and config is not None:
        raise DataValidationError("give either --preset or --config, not both", field="preset")
    if config is not None:
        request = read_request(config)
    else:
        name = preset or PUBLISHED_FRAMEWORK
        if name not in PRESETS:
            raise DataValidationError(
                f"unknown preset {name!r}; choose one of {sorted(PRESETS)}", field="preset"
            )
        request = PRESETS[name]()
    request = _with_overrides(request, start=start, end=end, cost_bps=cost_bps)

    started = time.perf_counter()
    with transaction() as connection:
        inputs = load_inputs(connection, request, model_version=model_version)
    run = run_backtest(request, inputs)
    elapsed_ms = (time.perf_counter() - started) * 1000.0

    result = run.result
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        is_reproduction = config is None and (preset or PUBLISHED_FRAMEWORK) == PUBLISHED_FRAMEWORK
        typer.echo(
            format_published_comparison(result) if is_reproduction else format_result(result)
        )
        typer.echo(
            f"\nBacktested {len(result.strategies)} strategies over {result.period.days} days "
            f"in {elapsed_ms:.0f} ms."
        )
    if plots is not None:
        from backtest.plots import write_plots  # matplotlib only when plots are asked for

        for path in write_plots(run, plots):
            typer.echo(f"wrote {path}", err=as_json)


def _with_overrides(request: BacktestRequest, **overrides: Any) -> BacktestRequest:
    changes = {key: value for key, value in overrides.items() if value is not None}
    for key in ("start", "end"):
        if key in changes:
            changes[key] = _iso_day(changes[key], key)
    if not changes:
        return request
    return BacktestRequest.model_validate({**request.model_dump(), **changes})


def _iso_day(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise DataValidationError(f"expected YYYY-MM-DD, got {text!r}", field=option) from None


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)
