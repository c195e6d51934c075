"""The published numbers the reproduction report prints beside its own, kept as data.

Source: ../shared/reference/published_results.md. Section A is the three-filter
framework (S&P 500, 2006-2025, raw Sharpe); section B the Transformer classifier
(period not stated). They were produced on their authors' data and conventions;
nothing here is tuned to match them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from backtest.schemas import BacktestRequest
from backtest.strategies import BuyAndHoldConfig, RulesConfig, SingleFilterConfig
from core.enums import FilterName, Regime


@dataclass(frozen=True)
class PublishedFrameworkRow:
    """One row of section A's backtest table (decimals: 0.096 = 9.6%)."""

    strategy: str
    annualised_return: float
    max_drawdown: float
    sharpe: float  # raw: mean / std * sqrt(252)
    time_full: float  # share of days 100% invested
    time_partial: float = 0.0  # share of days half invested (combined framework only)

    @property
    def time_invested(self) -> float:
        return self.time_full + self.time_partial


@dataclass(frozen=True)
class PublishedClassifierRow:
    """One row of section B's table (decimals)."""

    strategy: str
    cumulative_return: float
    sharpe: float
    daily_mean: float
    daily_std: float


FRAMEWORK_SOURCE = "three-filter framework, S&P 500, 2006-2025 (published_results.md, section A)"
FRAMEWORK_START = dt.date(2006, 1, 1)  # "2006 to the end of the data"

BUY_AND_HOLD = "Buy & hold"
TREND_ONLY = "Trend only"
VOLATILITY_ONLY = "Volatility only"
CREDIT_ONLY = "Credit only"
COMBINED = "Combined (3 filters)"

PUBLISHED_FRAMEWORK_ROWS: tuple[PublishedFrameworkRow, ...] = (
    PublishedFrameworkRow(BUY_AND_HOLD, 0.096, -0.524, 0.48, 1.0),
    PublishedFrameworkRow(TREND_ONLY, 0.082, -0.234, 0.69, 0.765),
    PublishedFrameworkRow(VOLATILITY_ONLY, 0.087, -0.286, 0.60, 0.898),
    PublishedFrameworkRow(CREDIT_ONLY, 0.092, -0.433, 0.56, 0.938),
    PublishedFrameworkRow(COMBINED, 0.082, -0.176, 0.68, 0.72, 0.19),
)
PUBLISHED_FRAMEWORK_REGIMES: dict[str, float] = {
    Regime.RISK_ON.value: 0.72,
    Regime.CAUTION.value: 0.19,
    Regime.RISK_OFF.value: 0.09,
}

CLASSIFIER_SOURCE = "Transformer regime classifier, period not stated (section B)"
PUBLISHED_CLASSIFIER_ROWS: tuple[PublishedClassifierRow, ...] = (
    PublishedClassifierRow("Buy & hold SPY", 6.3550, 0.63, 0.000476, 0.012052),
    PublishedClassifierRow("Regime filter", 2.0501, 0.66, 0.000242, 0.005824),
    PublishedClassifierRow("Leveraged regime", 5.8989, 0.74, 0.000433, 0.009290),
)


def published_framework_request(**overrides: object) -> BacktestRequest:
    """Buy & hold, each filter alone and the combined framework, from 2006, with the
    published preset's thresholds and no costs (the publication states none)."""
    strategies = [
        BuyAndHoldConfig(name=BUY_AND_HOLD),
        SingleFilterConfig(name=TREND_ONLY, filter=FilterName.TREND),
        SingleFilterConfig(name=VOLATILITY_ONLY, filter=FilterName.VOLATILITY),
        SingleFilterConfig(name=CREDIT_ONLY, filter=FilterName.CREDIT),
        RulesConfig(name=COMBINED, preset="published"),
    ]
    return BacktestRequest.model_validate(
        {"strategies": strategies, "start": FRAMEWORK_START, **overrides}
    )
