"""The ``evaluate`` report: walk-forward metrics, baselines, backtests, reproduction, plots.

``evaluate`` computes (pure apart from the clock used for timing);
``report_json`` / ``report_text`` render; ``write_plots`` writes PNG files.
Percentages in the text are of decimals (0.05 -> 5.00%).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from training.baselines import BASELINE_NAMES
from training.calibration import probability_scores, reliability_table
from training.config import Target
from training.economics import (
    EconomicsConfig,
    economic_value,
    probability_exposures,
    rules_exposure,
)
from training.plots import plot_equity, plot_probabilities, plot_reliability
from training.reproduction import ReproductionResult, reproduce
from training.strategy import (
    equity_curves,
    performance_table,
    regime_exposures,
    yearly_strategy_returns,
)
from training.walkforward import (
    METHODS,
    TRANSFORMER,
    RefitSummary,
    WalkForwardConfig,
    WalkForwardResult,
    walk_forward,
)

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
both counted as distressed, score = share of available filters firing. Truth = the preset's
labels (KMeans or jump model) fitted on days before each test year. Strategies: regime
filter 1.0 calm / 0.0 distressed, leveraged 1.5 / 0.3; Sharpe = mean / std * sqrt(252), no
risk-free rate.
"""


# Methods whose score is a probability (the rules' share of firing filters is not one).
PROBABILISTIC_METHODS: tuple[str, ...] = ("transformer_raw", TRANSFORMER, "hmm", "logistic")


def probability_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Brier score, Brier skill against climatology (each refit's training base rate) and
    persistence, and ECE, per probabilistic method on the pooled test days."""
    truth = predictions["truth"].to_numpy()
    persistence = predictions["persistence_score"].to_numpy()
    rows = {
        method: probability_scores(
            truth,
            predictions[_score_column(method)].to_numpy(),
            base_rate=predictions["base_rate"].to_numpy(),
            persistence=persistence,
        )
        for method in PROBABILISTIC_METHODS
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def _score_column(method: str) -> str:
    return "transformer_raw" if method == "transformer_raw" else f"{method}_score"


def value_exposures(predictions: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """Strategies of the economic-value table: the Transformer's calibrated probability
    (filter, leveraged, scaled), logistic regression's and the HMM's, and the rules."""
    frames = [
        probability_exposures(predictions[f"{method}_score"], method)
        for method in (TRANSFORMER, "logistic", "hmm")
    ]
    exposures = pd.concat(frames, axis=1).reindex(features.index)
    rules = rules_exposure(features).where(exposures.notna().any(axis=1))
    return exposures.assign(rules=rules)


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
    probability: pd.DataFrame  # method x (brier, skills, ece) on the pooled test days
    value: pd.DataFrame  # strategy x economic value (training.economics), costs included
    walk_forward: WalkForwardResult | None = None  # the run itself (outputs for shipping)


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
    features: pd.DataFrame,
    config: WalkForwardConfig,
    *,
    with_reproduction: bool = True,
    economics: EconomicsConfig = EconomicsConfig(),
    on_refit: Callable[[RefitSummary | None], None] | None = None,
) -> EvaluationReport:
    """Walk-forward + baselines + out-of-sample backtest + probability scores + economic
    value (+ reproduction report). ``on_refit`` is called as each test year finishes."""
    started = time.perf_counter()
    result = walk_forward(features, config, on_refit)
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
        probability=probability_table(result.predictions),
        value=economic_value(value_exposures(result.predictions, features), spy_returns, economics),
        walk_forward=result,
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
        "probability": _records(report.probability, ["method"]),
        "economic_value": _records(report.value, ["strategy"]),
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


def _question(config: WalkForwardConfig) -> str:
    """The forecasting question in words, e.g. 'distress within 20 days'."""
    windows = config.setup.windows
    if windows.target is Target.DISTRESS_WITHIN:
        return f"distress within {windows.horizon} days"
    if windows.target is Target.CHANGE_WITHIN:
        return f"regime change within {windows.horizon} days"
    return "now-cast" if windows.horizon == 0 else f"label {windows.horizon} days ahead"


def _value_view(value: pd.DataFrame) -> pd.DataFrame:
    """The economic-value table with each interval as one 'low..high' column."""
    view = value.loc[:, ["annualised_return", "sharpe", "max_drawdown", "mean_exposure"]].copy()
    view["annualised_return"] = view["annualised_return"].map(lambda v: f"{100 * v:.1f}%")
    view["sharpe"] = value["sharpe"].map(lambda v: f"{v:.2f}")
    view["max_drawdown"] = value["max_drawdown"].map(lambda v: f"{100 * v:.1f}%")
    view["mean_exposure"] = value["mean_exposure"].map(lambda v: f"{v:.2f}")
    pairs = {
        "sharpe 90%": ("sharpe_low", "sharpe_high", "{:.2f}"),
        "max DD 90%": ("max_drawdown_low", "max_drawdown_high", "{:.1%}"),
        "Sharpe - B&H 90%": (
            "sharpe_minus_buy_and_hold_low",
            "sharpe_minus_buy_and_hold_high",
            "{:+.2f}",
        ),
        "Sharpe - rules 90%": ("sharpe_minus_rules_low", "sharpe_minus_rules_high", "{:+.2f}"),
    }
    for title, (low, high, form) in pairs.items():
        view[title] = [
            "-" if pd.isna(a) else f"{form.format(a)}..{form.format(b)}"
            for a, b in zip(value[low], value[high], strict=True)
        ]
    view["deflated Sharpe"] = value["deflated_sharpe"].map(lambda v: f"{v:.2f}")
    view["timing p"] = value["timing_p_value"].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}")
    return view


def report_text(report: EvaluationReport) -> str:
    config = report.config
    parts = [
        f"Walk-forward {config.first_test_year}-{config.last_test_year}: expanding window, "
        f"refit yearly, labels '{config.setup.labels.preset}', {_question(config)}, "
        f"{report.seconds:.0f}s",
        format_frame(
            report.probability,
            "Probabilities on the pooled test days (Brier: lower is better; skill > 0 beats "
            "the reference; ECE: mean calibration gap)",
        ),
        "Economic value (10 bp per unit traded, lag 1; 90% stationary block bootstrap)\n"
        + _value_view(report.value).to_string()
        + "\n",
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


def report_markdown(report: EvaluationReport, plots: list[Path]) -> str:
    """The evaluation as a markdown document: the text tables in code blocks, then the
    plots (linked by file name, so the report sits in the plots' folder)."""
    config = report.config
    lines = [
        f"# Walk-forward evaluation {config.first_test_year}-{config.last_test_year}: "
        f"{_question(config)}",
        "",
        "Every number below is out of sample: labels, model, calibration and baselines are",
        "refitted each year on days before it. Costs 10 bp per unit traded, exposure",
        "decided at close t earns close t -> t+1.",
        "",
        "```",
        report_text(report),
        "```",
        "",
    ]
    lines += [f"![{path.stem}]({path.name})" for path in plots]
    return "\n".join(lines) + "\n"


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
    paths.append(
        plot_reliability(
            {
                method: reliability_table(
                    report.predictions["truth"].to_numpy(),
                    report.predictions[_score_column(method)].to_numpy(),
                )
                for method in PROBABILISTIC_METHODS
            },
            directory / "reliability.png",
            f"Reliability, {_question(report.config)}",
        )
    )
    if report.reproduction is not None:
        paths.append(
            plot_equity(
                equity_curves(report.reproduction.exposures, spy_returns),
                directory / "reproduction_equity.png",
                "Reproduction: as-published labels (a), as-published model (b), walk-forward (c)",
            )
        )
    return paths
