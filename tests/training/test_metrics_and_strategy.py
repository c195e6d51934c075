import math

import numpy as np
import pandas as pd
import pytest

from training.metrics import classification_metrics
from training.strategy import performance_table, regime_exposures, yearly_strategy_returns


def test_metrics_match_hand_counts() -> None:
    truth = np.array([1, 1, 0, 0, 1])
    predicted = np.array([1, 0, 0, 1, 1])
    score = np.array([0.9, 0.4, 0.2, 0.6, 0.8])
    metrics = classification_metrics(truth, score, predicted)
    assert metrics["n"] == 5
    assert metrics["distressed_share"] == pytest.approx(3 / 5)
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    # recall(1) = 2/3, recall(0) = 1/2
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # precision(1) = 2/3, recall(1) = 2/3
    assert metrics["f1_distressed"] == pytest.approx(2 / 3)
    # 5 of the 6 (distressed, calm) pairs are ordered correctly by the score.
    assert metrics["roc_auc"] == pytest.approx(5 / 6)


def test_rows_with_nan_are_skipped() -> None:
    metrics = classification_metrics(
        np.array([1, np.nan, 0, 1]), np.array([0.9, 0.5, np.nan, 0.1]), np.array([1, 1, 0, 0])
    )
    assert metrics["n"] == 2  # rows 0 and 3
    assert metrics["accuracy"] == pytest.approx(0.5)


def test_undefined_metrics_are_nan_not_invented() -> None:
    one_class = classification_metrics(
        np.array([0, 0, 0]), np.array([0.1, 0.2, 0.7]), np.array([0, 0, 1])
    )
    assert one_class["accuracy"] == pytest.approx(2 / 3)
    assert math.isnan(one_class["roc_auc"])
    assert math.isnan(one_class["balanced_accuracy"])
    empty = classification_metrics(np.array([]), np.array([]), np.array([]))
    assert empty["n"] == 0 and math.isnan(empty["accuracy"])


def test_regime_maps_to_the_published_exposures() -> None:
    exposures = regime_exposures(pd.Series([0.0, 1.0, np.nan]))
    np.testing.assert_array_equal(exposures["regime_filter"], [1.0, 0.0, np.nan])
    np.testing.assert_array_equal(exposures["leveraged_regime"], [1.5, 0.3, np.nan])


def test_exposure_decided_at_close_t_earns_the_return_to_close_t_plus_1() -> None:
    days = pd.bdate_range("2020-01-06", periods=5, name="date")
    spy_returns = pd.Series([np.nan, 0.01, -0.02, 0.03, 0.01], index=days)
    regime = pd.Series([0.0, 1.0, 0.0, 0.0, np.nan], index=days)
    table = performance_table(regime_exposures(regime), spy_returns)
    # Held over days 2..5: exposures decided on days 1..4 -> filter 1, 0, 1, 1.
    filter_days = np.array([0.01, 0.0, 0.03, 0.01])
    leveraged_days = np.array([1.5 * 0.01, 0.3 * -0.02, 1.5 * 0.03, 1.5 * 0.01])
    hold_days = np.array([0.01, -0.02, 0.03, 0.01])
    for name, daily in (
        ("buy_and_hold", hold_days),
        ("regime_filter", filter_days),
        ("leveraged_regime", leveraged_days),
    ):
        row = table.loc[name]
        assert row["days"] == 4
        assert row["cumulative_return"] == pytest.approx(np.prod(1 + daily) - 1)
        assert row["daily_mean"] == pytest.approx(daily.mean())
        assert row["daily_std"] == pytest.approx(daily.std(ddof=1))
        assert row["sharpe"] == pytest.approx(daily.mean() / daily.std(ddof=1) * math.sqrt(252))
    assert table.loc["buy_and_hold", "max_drawdown"] == pytest.approx(-0.02)
    assert table.loc["regime_filter", "mean_exposure"] == pytest.approx(0.75)


def test_yearly_returns_compound_within_each_calendar_year() -> None:
    days = pd.DatetimeIndex(["2020-12-30", "2020-12-31", "2021-01-04", "2021-01-05"], name="date")
    spy_returns = pd.Series([np.nan, 0.10, 0.10, -0.10], index=days)
    regime = pd.Series([0.0, 1.0, 0.0, 0.0], index=days)
    yearly = yearly_strategy_returns(regime_exposures(regime), spy_returns)
    assert yearly.loc[2020, "buy_and_hold"] == pytest.approx(0.10)
    assert yearly.loc[2021, "buy_and_hold"] == pytest.approx(1.1 * 0.9 - 1)
    # Distressed at the close of 2020-12-31: out of the market for 2021-01-04.
    assert yearly.loc[2021, "regime_filter"] == pytest.approx(-0.10)
