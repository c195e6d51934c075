"""The ``evaluate`` report: walk-forward metrics, baselines, backtests, reproduction, plots.

``evaluate`` computes (pure apart from the clock used for timing);
``report_json`` / ``report_text`` render; ``write_plots`` writes PNG files.
Percentages in the text are of decimals (0.05 -> 5.00%).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from training.baselines import BASELINE_NAMES
from training.plots import plot_equity, plot_probabilities
from training.reproduction import ReproductionResult, reproduce
from training.strategy import (
    equity_curves,
    performance_table,
    regime_exposures,
    yearly_strategy_returns,
)
from training.walkforward import METHODS, TRANSFORMER, WalkForwardConfig, walk_forward

PERCENT_COLUMNS = frozenset(
    {
        "distressed_share",
        "cumulative_return",
        "filter_cumulative_return",
        "filter_max_drawdown",
        "annualised_return",
        "daily_mean",
        "daily_std",
        "max_drawdown",
    }
)


METHOD_NOTES = """Methods: transformer = the classifier (last-token pooling); hmm = 2-state Gaussian
HMM, forward filter only; jump = statistical jump model, online states (0/1); logistic =
logistic regression on the last day's features; persistence = yesterday's label (today's
for a horizon > 0); rules = three-filter engine (published preset), caution and risk-off
both counted as distressed, score = share of available filters firing. Truth = KMeans
labels fitted on days before each test year. Strategies: regime filter 1.0 calm / 0.0
distressed, leveraged 1.5 / 0.3; Sharpe = mean / std * sqrt(252), no risk-free rate.
"""


@dataclass(frozen=True)
class EvaluationReport:
    config: WalkForwardConfig
    by_year: pd.DataFrame  # (year, method) x classification metrics
    overall: pd.DataFrame  # method x classification metrics
    comparison: pd.DataFrame  # method x (pooled metrics + its regime-filter backtest)
    backtest: pd.DataFrame  # strategy x performance, over the test years
    yearly_returns: pd.DataFrame  # year x strategy
    predictions: pd.DataFrame  # walk-forward predictions per test day
    refits: list[dict[str, Any]]
    reproduction: ReproductionResult | None
    seconds: float


def method_exposures(predictions: pd.DataFrame) -> pd.DataFrame:
    """Transformer filter + leveraged, and each baseline's filter, per test day."""
    frames = [regime_exposures(predictions[f"{TRANSFORMER}_call"], f"{TRANSFORMER}:")]
    for name in BASELINE_NAMES:
        frames.append(regime_exposures(predictions[f"{name}_call"], f"{name}:").iloc[:, :1])
    return pd.concat(frames, axis=1)


def comparison_table(overall: pd.DataFrame, backtest: pd.DataFrame) -> pd.DataFrame:
    """One row per method: pooled classification metrics beside the out-of-sample
    performance of the regime filter (1.0 calm / 0.0 distressed) driven by its calls."""
    columns = ["cumulative_return", "sharpe", "max_drawdown"]
    strategy = backtest.loc[[f"{method}:regime_filter" for method in overall.index], columns]
    strategy.index = overall.index
    strategy.columns = [f"filter_{column}" for column in columns]
    return overall.drop(columns=["n", "distressed_share"]).join(strategy)


def evaluate(
    features: pd.DataFrame, config: WalkForwardConfig, *, with_reproduction: bool = True
) -> EvaluationReport:
    """Walk-forward + baselines + out-of-sample backtest (+ reproduction report)."""
    started = time.perf_counter()
    result = walk_forward(features, config)
    exposures = method_exposures(result.predictions).reindex(features.index)
    spy_returns = features["ret_1d"]
    reproduction = reproduce(features, config.setup, result) if with_reproduction else None
    overall = result.overall_metrics()
    backtest = performance_table(exposures, spy_returns)
    return EvaluationReport(
        config=config,
        by_year=result.metrics_by_year(),
        overall=overall,
        comparison=comparison_table(overall, backtest),
        backtest=backtest,
        yearly_returns=yearly_strategy_returns(
            exposures.loc[:, [f"{TRANSFORMER}:regime_filter", f"{TRANSFORMER}:leveraged_regime"]],
            spy_returns,
        ),
        predictions=result.predictions,
        refits=[asdict(refit) for refit in result.refits],
        reproduction=reproduction,
        seconds=round(time.perf_counter() - started, 1),
    )


# --- rendering ----------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN -> None, numpy scalars -> Python, through dicts and lists."""
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(frame: pd.DataFrame, index_names: list[str]) -> list[dict[str, Any]]:
    rows = frame.reset_index()
    rows.columns = [*index_names, *frame.columns]
    return [{key: _clean(value) for key, value in row.items()} for row in rows.to_dict("records")]


def report_json(report: EvaluationReport) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "config": asdict(report.config),
        "seconds": report.seconds,
        "refits": report.refits,
        "metrics_by_year": _records(report.by_year, ["year", "method"]),
        "metrics_overall": _records(report.overall, ["method"]),
        "comparison": _records(report.comparison, ["method"]),
        "backtest": _records(report.backtest, ["strategy"]),
        "yearly_returns": _records(report.yearly_returns, ["year"]),
    }
    if report.reproduction is not None:
        reproduction = report.reproduction
        payload["reproduction"] = {
            "published": _records(reproduction.published, ["strategy"]),
            "published_period": _records(reproduction.published_period, ["strategy"]),
            "walk_forward_period": None
            if reproduction.walk_forward_period is None
            else _records(reproduction.walk_forward_period, ["strategy"]),
            "as_published_training": reproduction.as_published_training,
        }
    return _clean(payload)


def format_frame(frame: pd.DataFrame, title: str, *, percent: bool = False) -> str:
    """Fixed-width table; PERCENT_COLUMNS (every column with ``percent``) as
    percentages, counts as integers, other floats with 3 decimals."""

    def formatter(column: str):  # type: ignore[no-untyped-def]
        if column in {"daily_mean", "daily_std"}:  # as precise as the published table
            return lambda v: "-" if pd.isna(v) else f"{100 * v:.4f}%"
        if percent or column in PERCENT_COLUMNS:
            return lambda v: "-" if pd.isna(v) else f"{100 * v:.2f}%"
        if column in {"n", "days"}:
            return lambda v: "-" if pd.isna(v) else f"{int(v)}"
        return lambda v: "-" if pd.isna(v) else f"{v:.3f}"

    body = frame.to_string(formatters={c: formatter(c) for c in frame.columns})
    return f"{title}\n{body}\n"


def report_text(report: EvaluationReport) -> str:
    config = report.config
    horizon = config.setup.windows.horizon
    parts = [
        f"Walk-forward {config.first_test_year}-{config.last_test_year}: expanding window, "
        f"refit yearly, labels '{config.setup.labels.preset}', horizon {horizon} "
        f"({'now-cast' if horizon == 0 else f'{horizon} days ahead'}), {report.seconds:.0f}s",
        format_frame(report.by_year.xs(TRANSFORMER, level="method"), "Transformer, per test year"),
        format_frame(
            report.comparison,
            "Comparison on the same test days (pooled): classification, and the regime "
            "filter each method drives (buy & hold: "
            f"{100 * report.backtest.loc['buy_and_hold', 'cumulative_return']:.1f}%, Sharpe "
            f"{report.backtest.loc['buy_and_hold', 'sharpe']:.2f})",
        ),
        format_frame(
            report.by_year["balanced_accuracy"].unstack("method").loc[:, list(METHODS)],
            "Balanced accuracy per year and method",
        ),
        format_frame(
            report.backtest,
            "Out-of-sample backtest (exposure decided at close t earns close t -> t+1)",
        ),
        format_frame(
            report.yearly_returns,
            "Calendar-year returns of the Transformer strategies",
            percent=True,
        ),
    ]
    if report.reproduction is not None:
        reproduction = report.reproduction
        parts += [
            format_frame(reproduction.published, "Published (table B of published_results.md)"),
            format_frame(
                reproduction.published_period,
                "Published period 2005-2024: (a) labels known at close t (fit on the whole "
                "history: look-ahead), (b) Transformer trained as published (mostly in-sample)",
            ),
        ]
        if reproduction.walk_forward_period is not None:
            parts.append(
                format_frame(
                    reproduction.walk_forward_period,
                    "Walk-forward test years: (a), (b) and (c) the honest walk-forward model",
                )
            )
    parts.append(METHOD_NOTES)
    return "\n".join(parts)


def write_plots(report: EvaluationReport, features: pd.DataFrame, directory: Path) -> list[Path]:
    """Probability and equity plots as PNG files in ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    spy_returns = features["ret_1d"]
    exposures = method_exposures(report.predictions).reindex(features.index)
    paths = [
        plot_probabilities(
            features["spy_close"],
            report.predictions,
            METHODS,
            directory / "walkforward_probabilities.png",
        ),
        plot_equity(
            equity_curves(exposures, spy_returns),
            directory / "walkforward_equity.png",
            "Walk-forward strategies (out of sample)",
        ),
    ]
    if report.reproduction is not None:
        paths.append(
            plot_equity(
                equity_curves(report.reproduction.exposures, spy_returns),
                directory / "reproduction_equity.png",
                "Reproduction: as-published labels (a), as-published model (b), walk-forward (c)",
            )
        )
    return paths
