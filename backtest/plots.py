"""The figures of a backtest tear sheet, as PNG or SVG: equity (log scale, metrics in the
legend), drawdowns, the regime and exposure strip, yearly returns, rolling Sharpe and
rolling volatility. The command line writes them to a folder; the API serves them.

Up to ``OVERLAY_MAX`` strategies share one set of axes; more are drawn as small
multiples (one panel each, the first strategy in grey behind every panel as the
reference), so no panel holds more than two lines. The regime figure gives every
strategy that has regimes a panel of its own. Uses matplotlib's object API with the
Agg canvas (no pyplot, no display, no global state), so figures can be drawn on
several threads at once. matplotlib is imported on the first figure drawn, not with
this module: the service imports it at start and draws figures only on request.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from backtest.metrics import TRADING_DAYS, drawdown_series
from backtest.runner import BacktestRun
from backtest.schemas import StrategyMetrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

ImageFormat = Literal["png", "svg"]
FORMATS: tuple[ImageFormat, ...] = ("png", "svg")

OVERLAY_MAX = 4  # strategies drawn on one set of axes; more become small multiples
ROLLING_DAYS = TRADING_DAYS  # window of the rolling Sharpe ratio and volatility
REFERENCE_COLOUR = "#9e9e9e"
REGIME_COLOURS = {
    "risk-on": "#2ca02c",
    "caution": "#ff7f0e",
    "risk-off": "#d62728",
    "calm": "#2ca02c",
    "distressed": "#d62728",
}
WIDTH_IN = 11.0
DPI = 110


def _figure(height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _percent_axis(ax: Axes) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))


def _plain_log_axis(ax: Axes) -> None:
    """Log scale with tick labels written as plain numbers (2, 5, 10), not powers of ten.
    Call after plotting: a range narrower than a factor of 4 gets evenly spaced ticks
    (1.05, 1.10, ...), since 1-2-5 steps would leave it with one label or none."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    ax.set_yscale("log")
    low, high = ax.get_ylim()
    narrow = low > 0 and high / low < 4.0
    ax.yaxis.set_major_locator(MaxNLocator(6) if narrow else LogLocator(subs=(1.0, 2.0, 5.0)))
    plain = FuncFormatter(lambda value, _position: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(NullFormatter())


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _legend_label(name: str, metrics: StrategyMetrics) -> str:
    sharpe = "n/a" if metrics.sharpe is None else f"{metrics.sharpe:.2f}"
    return (
        f"{name}: {_pct(metrics.annualised_return)} a year, Sharpe {sharpe}, "
        f"max DD {_pct(metrics.max_drawdown, 0)}"
    )


def _title(run: BacktestRun, what: str) -> str:
    period = run.result.period
    return f"{what}, {period.start} .. {period.end}"


SeriesOf = Callable[[BacktestRun, str], pd.Series]


def _per_strategy(
    run: BacktestRun,
    series_of: SeriesOf,
    *,
    title: str,
    ylabel: str,
    style: Callable[[Axes], None],
    label: Callable[[str], str] = str,
    fill: bool = False,
) -> Figure:
    """One line per strategy: overlaid when few, small multiples when many."""
    names = [s.name for s in run.result.strategies]
    if len(names) <= OVERLAY_MAX:
        figure = _figure(5.0)
        ax = figure.add_subplot()
        for name in names:
            series = series_of(run, name)
            ax.plot(series.index, series.to_numpy(), label=label(name), linewidth=1.0)
        style(ax)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small", framealpha=0.85)
        figure.suptitle(_title(run, title))
        return figure
    columns = 3 if len(names) > 4 else 2
    rows = math.ceil(len(names) / columns)
    figure = _figure(2.3 * rows + 0.6)
    axes = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).ravel()
    reference = series_of(run, names[0])
    for ax, name in zip(axes, names, strict=False):
        series = series_of(run, name)
        if name != names[0]:
            ax.plot(reference.index, reference.to_numpy(), color=REFERENCE_COLOUR, linewidth=0.8)
        if fill:
            ax.fill_between(series.index, series.to_numpy(), 0.0, color="C0", alpha=0.35)
        ax.plot(series.index, series.to_numpy(), color="C0", linewidth=1.0)
        ax.set_title(label(name), fontsize="small")
        ax.grid(True, alpha=0.3)
    style(axes[0])  # shared y: styling one styles all
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    for ax in axes[::columns]:
        ax.set_ylabel(ylabel)
    figure.suptitle(_title(run, f"{title} (grey: {names[0]})"))
    return figure


def _equity(run: BacktestRun, name: str) -> pd.Series:
    return run.simulation.equity[name]


def _drawdown(run: BacktestRun, name: str) -> pd.Series:
    return drawdown_series(run.simulation.returns[name])


def _rolling_sharpe(run: BacktestRun, name: str) -> pd.Series:
    returns = run.simulation.returns[name]
    rolling = returns.rolling(ROLLING_DAYS)
    return rolling.mean() / rolling.std(ddof=1) * math.sqrt(TRADING_DAYS)


def _rolling_volatility(run: BacktestRun, name: str) -> pd.Series:
    return run.simulation.returns[name].rolling(ROLLING_DAYS).std(ddof=1) * math.sqrt(TRADING_DAYS)


def equity_figure(run: BacktestRun) -> Figure:
    """Wealth (1.0 at the start) on a log scale, each strategy's metrics in its legend."""
    metrics = {s.name: s.metrics for s in run.result.strategies}
    return _per_strategy(
        run,
        _equity,
        title="Equity",
        ylabel="wealth (log scale)",
        style=_plain_log_axis,
        label=lambda name: _legend_label(name, metrics[name]),
    )


def drawdown_figure(run: BacktestRun) -> Figure:
    return _per_strategy(
        run, _drawdown, title="Drawdowns", ylabel="below the peak", style=_percent_axis, fill=True
    )


def rolling_sharpe_figure(run: BacktestRun) -> Figure:
    def style(ax: Axes) -> None:
        ax.axhline(0.0, color="black", linewidth=0.6)

    return _per_strategy(
        run,
        _rolling_sharpe,
        title=f"Rolling Sharpe ratio ({ROLLING_DAYS} days)",
        ylabel="Sharpe",
        style=style,
    )


def rolling_volatility_figure(run: BacktestRun) -> Figure:
    return _per_strategy(
        run,
        _rolling_volatility,
        title=f"Rolling volatility ({ROLLING_DAYS} days, annualised)",
        ylabel="volatility",
        style=_percent_axis,
    )


def regime_spans(codes: pd.Series) -> list[tuple[pd.Timestamp, pd.Timestamp, float]]:
    """Runs of equal regime codes as (first day, first day of the next run, code).

    Each run ends where the next one starts, so shaded spans meet without seams; the
    last run ends on the last day. NaN codes (unknown) make no span.
    """
    values = codes.to_numpy(dtype=float)
    if values.size == 0:
        return []
    index = codes.index
    changes = np.flatnonzero(~np.isclose(values[1:], values[:-1], equal_nan=True)) + 1
    starts = np.concatenate([[0], changes])
    ends = np.concatenate([changes, [values.size - 1]])
    return [
        (index[start], index[end], float(values[start]))
        for start, end in zip(starts, ends, strict=True)
        if not math.isnan(values[start])
    ]


def regime_strategies(run: BacktestRun) -> list[str]:
    """The strategies that hold regimes (not buy & hold), in the request's order."""
    return [s.name for s in run.result.strategies if s.name in run.held_regimes]


def regime_figure(run: BacktestRun) -> Figure:
    """On one time axis: the asset (log scale); for every strategy that has regimes, a
    panel shaded by the regime it held each day with the exposure it held drawn over
    it; and the drawdowns of those strategies and of the asset."""
    names = regime_strategies(run)
    figure = _figure(4.2 + 1.15 * max(1, len(names)))
    axes = figure.subplots(
        2 + len(names),
        1,
        sharex=True,
        gridspec_kw={"height_ratios": [2.6, *([1.0] * len(names)), 1.4]},
    )
    price_ax, *exposure_axes, drawdown_ax = axes
    close = run.asset_close
    asset = run.result.conventions.asset
    price_ax.plot(close.index, close.to_numpy(), color="black", linewidth=0.9, label=asset)
    _plain_log_axis(price_ax)
    price_ax.set_ylabel(f"{asset} (log scale)")
    price_ax.legend(loc="upper left", fontsize="small")
    shown: dict[str, object] = {}  # regime label -> its patch, for one legend
    for colour, (name, ax) in enumerate(zip(names, exposure_axes, strict=True)):
        labels = run.signals[name].regime_labels
        for start, end, code in regime_spans(run.held_regimes[name]):
            label = labels[int(code)]
            patch = ax.axvspan(
                start, end, color=REGIME_COLOURS.get(label, "grey"), alpha=0.3, linewidth=0
            )
            shown.setdefault(label, patch)
        positions = run.simulation.positions[name]
        ax.step(positions.index, positions.to_numpy(), where="post", color=f"C{colour}")
        top = max(1.0, float(np.nanmax(positions.to_numpy()))) if len(positions) else 1.0
        ax.set_ylim(-0.05, top + 0.1)
        ax.set_ylabel("exposure")
        ax.set_title(name, fontsize="small", loc="left")
        drawdown_ax.plot(
            positions.index,
            _drawdown(run, name).to_numpy(),
            color=f"C{colour}",
            linewidth=0.9,
            label=name,
        )
    asset_drawdown = drawdown_series(run.simulation.asset_returns)
    drawdown_ax.plot(
        asset_drawdown.index,
        asset_drawdown.to_numpy(),
        color=REFERENCE_COLOUR,
        linewidth=0.9,
        label=asset,
    )
    _percent_axis(drawdown_ax)
    drawdown_ax.set_ylabel("drawdown")
    drawdown_ax.legend(loc="lower left", fontsize="small", ncols=min(4, len(names) + 1))
    if shown:
        figure.legend(
            list(shown.values()),
            list(shown),
            loc="outside upper right",
            fontsize="small",
            ncols=len(shown),
        )
    for ax in axes:
        ax.grid(True, alpha=0.3)
    what = "Regimes and exposure held" if names else "Asset (no strategy has regimes)"
    figure.suptitle(_title(run, what))
    return figure


def yearly_figure(run: BacktestRun) -> Figure:
    """Calendar-year returns: one row per strategy, one column per year, values written."""
    names = [s.name for s in run.result.strategies]
    years = sorted({year for s in run.result.strategies for year in s.yearly_returns})
    table = np.array(
        [[s.yearly_returns.get(year, np.nan) for year in years] for s in run.result.strategies]
    )
    figure = _figure(1.0 + 0.45 * len(names) + 0.6)
    ax = figure.add_subplot()
    bound = float(np.nanmax(np.abs(table))) if np.isfinite(table).any() else 1.0
    ax.imshow(table, cmap="RdYlGn", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(len(years)), [str(year) for year in years], rotation=90)
    ax.set_yticks(range(len(names)), names)
    font = "x-small" if len(years) > 12 else "small"
    for row, column in np.ndindex(table.shape):
        value = float(table[row, column])
        if np.isfinite(value):
            # White on the darkest cells; "+ 0.0" writes -0.4% as 0, not -0.
            colour = "white" if abs(value) > 0.6 * bound else "black"
            text = f"{round(value * 100) + 0.0:.0f}"
            ax.text(column, row, text, ha="center", va="center", fontsize=font, color=colour)
    figure.suptitle(_title(run, "Yearly returns (%)"))
    return figure


FIGURES: dict[str, Callable[[BacktestRun], Figure]] = {
    "equity": equity_figure,
    "drawdowns": drawdown_figure,
    "regimes": regime_figure,
    "yearly": yearly_figure,
    "rolling_sharpe": rolling_sharpe_figure,
    "rolling_volatility": rolling_volatility_figure,
}


def render(figure: Figure, image_format: ImageFormat) -> bytes:
    """The figure as PNG or SVG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=image_format, dpi=DPI)
    return buffer.getvalue()


def write_plots(run: BacktestRun, directory: Path, image_format: ImageFormat = "png") -> list[Path]:
    """Write every figure of FIGURES into ``directory`` (created) as ``<name>.<format>``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in FIGURES.items():
        path = directory / f"{name}.{image_format}"
        path.write_bytes(render(draw(run), image_format))
        paths.append(path)
    return paths
