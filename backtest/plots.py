"""PNG plots of a backtest run: equity curves (log scale), drawdowns, and the asset with
the regimes held shaded. Uses matplotlib's object API with the Agg canvas (no pyplot,
no display, no global state)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from backtest.metrics import drawdowns
from backtest.runner import BacktestRun

REGIME_COLOURS = {
    "risk-on": "#2ca02c",
    "caution": "#ff7f0e",
    "risk-off": "#d62728",
    "calm": "#2ca02c",
    "distressed": "#d62728",
}


def _figure() -> Figure:
    figure = Figure(figsize=(11, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _plain_log_axis(ax: Axes) -> None:
    """Log scale with tick labels written as plain numbers (2, 5, 10), not powers of ten."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda value, _position: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)


def plot_equity(run: BacktestRun, path: Path) -> Path:
    figure = _figure()
    ax = figure.add_subplot()
    equity = run.simulation.equity
    for name in equity.columns:
        ax.plot(equity.index, equity[name].to_numpy(), label=str(name), linewidth=1.0)
    _plain_log_axis(ax)
    ax.set_ylabel("wealth (1.0 at start, log scale)")
    ax.set_title(_title(run, "Equity curves"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    figure.savefig(path, dpi=110)
    return path


def plot_drawdowns(run: BacktestRun, path: Path) -> Path:
    figure = _figure()
    ax = figure.add_subplot()
    returns = run.simulation.returns
    for name in returns.columns:
        ax.plot(
            returns.index,
            drawdowns(returns[name].to_numpy()) * 100.0,
            label=str(name),
            linewidth=0.9,
        )
    ax.set_ylabel("drawdown (%)")
    ax.set_title(_title(run, "Drawdowns"))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    figure.savefig(path, dpi=110)
    return path


def plot_regimes(run: BacktestRun, path: Path, strategy: str | None = None) -> Path:
    """Asset close (log) with the regime held each day shaded; ``strategy`` picks whose
    regimes (default: the last strategy that has regimes, e.g. the combined framework)."""
    figure = _figure()
    ax = figure.add_subplot()
    close = run.asset_close
    ax.plot(close.index, close.to_numpy(), color="black", linewidth=0.9)
    _plain_log_axis(ax)
    ax.set_ylabel(f"{run.result.conventions.asset} adjusted close (log scale)")
    names = [strategy] if strategy else list(run.held_regimes)[-1:]
    title = "Regimes"
    if names:
        name = names[0]
        codes = run.held_regimes[name].to_numpy(dtype=float)
        for code, label in enumerate(run.signals[name].regime_labels):
            ax.fill_between(
                close.index,
                0,
                1,
                where=codes == code,
                step="post",
                transform=ax.get_xaxis_transform(),
                color=REGIME_COLOURS.get(label, "grey"),
                alpha=0.25,
                linewidth=0,
                label=label,
            )
        ax.legend(loc="upper left", fontsize="small")
        title = f"Regimes held by {name}"
    ax.set_title(_title(run, title))
    ax.grid(True, alpha=0.3)
    figure.savefig(path, dpi=110)
    return path


def write_plots(run: BacktestRun, directory: Path) -> list[Path]:
    """Write equity.png, drawdowns.png and regimes.png into ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        plot_equity(run, directory / "equity.png"),
        plot_drawdowns(run, directory / "drawdowns.png"),
        plot_regimes(run, directory / "regimes.png"),
    ]


def _title(run: BacktestRun, what: str) -> str:
    period = run.result.period
    return f"{what}, {period.start} .. {period.end}"
