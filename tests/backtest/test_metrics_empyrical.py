"""Every return metric cross-checked against empyrical-reloaded (Quantopian's library,
maintained by Stefan Jansen) to 1e-9: on seeded returns, and on the strategies of a
backtest over made-up markets as the runner reports them."""

from __future__ import annotations

import empyrical
import numpy as np
import pandas as pd
import pytest

from backtest import metrics
from backtest.runner import BacktestInputs, run_backtest
from backtest.schemas import BacktestRequest

TOLERANCE = 1e-9


def _seeded_returns(seed: int, days: int = 1500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0004, 0.012, days)


CASES = {
    "random walk": _seeded_returns(1),
    "losing": _seeded_returns(2) - 0.001,
    "fat tails": np.random.default_rng(3).standard_t(3, 2000) * 0.008,
    "short": _seeded_returns(4, days=30),
}


@pytest.mark.parametrize("returns", CASES.values(), ids=CASES.keys())
def test_metrics_agree_with_empyrical(returns):
    series = pd.Series(returns, index=pd.bdate_range("2010-01-04", periods=len(returns)))
    expected = {
        "cumulative": empyrical.cum_returns_final(series),
        "annual return": empyrical.annual_return(series, annualization=252),
        "volatility": empyrical.annual_volatility(series, annualization=252),
        "sharpe": empyrical.sharpe_ratio(series, annualization=252),
        "sortino": empyrical.sortino_ratio(series, annualization=252),
        "max drawdown": empyrical.max_drawdown(series),
        "calmar": empyrical.calmar_ratio(series, annualization=252),
    }
    ours = {
        "cumulative": metrics.cumulative_return(returns),
        "annual return": metrics.annualised_return(returns),
        "volatility": metrics.annualised_volatility(returns),
        "sharpe": metrics.sharpe_ratio(returns),
        "sortino": metrics.sortino_ratio(returns),
        "max drawdown": metrics.max_drawdown(returns),
        "calmar": metrics.calmar_ratio(returns),
    }
    for name, value in expected.items():
        assert ours[name] == pytest.approx(float(value), rel=TOLERANCE, abs=TOLERANCE), name


def test_excess_sharpe_agrees_with_empyrical_with_a_daily_risk_free_rate():
    returns = _seeded_returns(5)
    cash = np.full(returns.shape, 0.02 / 252)
    series = pd.Series(returns, index=pd.bdate_range("2010-01-04", periods=len(returns)))
    expected = empyrical.sharpe_ratio(series, risk_free=cash, annualization=252)
    assert metrics.sharpe_ratio(returns, cash) == pytest.approx(expected, rel=TOLERANCE)


def test_reported_strategy_metrics_agree_with_empyrical(synthetic_inputs: BacktestInputs):
    request = BacktestRequest.model_validate(
        {
            "strategies": [
                {"kind": "buy_and_hold"},
                {"kind": "rules"},
                {"kind": "single_filter", "filter": "trend"},
            ],
            "cost_bps": 5.0,
        }
    )
    run = run_backtest(request, synthetic_inputs)
    for strategy in run.result.strategies:
        returns = run.simulation.returns[strategy.name]
        reported = strategy.metrics
        pairs = {
            "annual return": (reported.annualised_return, empyrical.annual_return(returns)),
            "volatility": (reported.annualised_volatility, empyrical.annual_volatility(returns)),
            "sharpe": (reported.sharpe, empyrical.sharpe_ratio(returns)),
            "sortino": (reported.sortino, empyrical.sortino_ratio(returns)),
            "max drawdown": (reported.max_drawdown, empyrical.max_drawdown(returns)),
            "calmar": (reported.calmar, empyrical.calmar_ratio(returns)),
        }
        for name, (ours, theirs) in pairs.items():
            assert ours is not None, (strategy.name, name)
            assert ours == pytest.approx(float(theirs), rel=TOLERANCE, abs=TOLERANCE), (
                strategy.name,
                name,
            )
