"""``deepregime backtest``: run strategy configurations on the stored history.

The computation is backtest.runner.run_backtest (pure); this module only reads
the request (a preset or a JSON/YAML file), loads the inputs from the store and
prints or plots the result.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from backtest.published import published_framework_request
from backtest.report import format_published_comparison, format_result
from backtest.runner import run_backtest
from backtest.schemas import BacktestRequest
from cli.common import handles_errors, print_json, read_document, transaction
from core.errors import DataValidationError
from operations.backtests import load_backtest_inputs
from operations.rule_sets import resolve_request
from store.model_registry import active_version

PUBLISHED_FRAMEWORK = "published-framework"
PRESETS: dict[str, Callable[[], BacktestRequest]] = {
    PUBLISHED_FRAMEWORK: published_framework_request
}


def read_request(path: Path) -> BacktestRequest:
    """A BacktestRequest from a .json, .yaml or .yml file."""
    return BacktestRequest.model_validate(read_document(path, "a 'strategies' list"))


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
        Path | None,
        typer.Option(
            help="Folder to write the tear sheet's figures into: equity, drawdowns, regimes "
            "and exposure, yearly returns, rolling Sharpe and volatility (as GET "
            "/backtest/{id}/report draws them)."
        ),
    ] = None,
    plot_format: Annotated[str, typer.Option(help="Format of the figures: png or svg.")] = "png",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (the result schema).")
    ] = False,
) -> None:
    """Backtest strategies on the stored history and print their metrics.

    Without --config runs the published-framework preset: buy & hold, each filter
    alone and the combined framework from 2006, beside the published numbers.
    """
    if plot_format not in ("png", "svg"):
        raise DataValidationError(
            f"unknown plot format {plot_format!r}; choose png or svg", field="plot-format"
        )
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
        version = model_version or active_version(connection)
        # Rule sets by name become their definitions, as POST /backtest resolves them.
        request = resolve_request(connection, request)
        inputs = load_backtest_inputs(connection, request=request, model_version=version)
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

        for path in write_plots(run, plots, image_format=plot_format):  # type: ignore[arg-type]
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
