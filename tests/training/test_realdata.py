"""Labels, baselines and the shipped model on the real SPY / VIX history (../shared/data/market).

The expected regimes are market history, not numbers from the code: October-November
2008 and March 2020 were the most volatile months on record, 2017 one of the calmest.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.features import compute_features
from inference.predictor import RegimePredictor
from inference.registry import list_versions
from training.baselines import hmm_forecast
from training.config import AS_PUBLISHED_LABELS, STANDARDISED_LABELS
from training.labels import fit_labeler

pytestmark = pytest.mark.realdata

SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "models"


def _yfinance_close(path: Path) -> pd.Series:
    """Adjusted close from a yfinance export (three header lines)."""
    frame = pd.read_csv(
        path,
        skiprows=3,
        header=None,
        names=["date", "adj_close", "close", "high", "low", "open", "volume"],
    )
    index = pd.DatetimeIndex(pd.to_datetime(frame["date"]).dt.normalize(), name="date")
    return pd.Series(frame["adj_close"].to_numpy(float), index=index)


def _cboe_close(path: Path) -> pd.Series:
    frame = pd.read_csv(path)
    index = pd.DatetimeIndex(pd.to_datetime(frame["DATE"], format="%m/%d/%Y"), name="date")
    return pd.Series(frame["CLOSE"].to_numpy(float), index=index)


@pytest.fixture(scope="module")
def real_features(market_dir: Path) -> pd.DataFrame:
    return compute_features(
        {
            "SPY": _yfinance_close(market_dir / "SPY.csv"),
            "^VIX": _cboe_close(market_dir / "VIX_History.csv"),
        }
    )


def _share(series: pd.Series, start: str, end: str) -> float:
    return float(series.loc[start:end].mean())


def test_standardised_labels_fitted_before_2012_recognise_known_regimes(
    real_features: pd.DataFrame,
) -> None:
    labeler = fit_labeler(real_features, STANDARDISED_LABELS, fit_until=pd.Timestamp("2011-12-30"))
    labels = labeler.labels(real_features)
    assert _share(labels, "2008-10-01", "2008-11-30") > 0.9
    assert _share(labels, "2020-03-09", "2020-04-09") > 0.9  # out of sample for this fit
    assert _share(labels, "2017-01-01", "2017-12-31") < 0.05
    assert 0.1 < _share(labels, "1993-01-01", "2011-12-31") < 0.5


def test_as_published_labels_call_more_than_the_calmest_cluster_distressed(
    real_features: pd.DataFrame,
) -> None:
    period = real_features.loc["2005-01-01":"2024-12-31"]
    labels = fit_labeler(period, AS_PUBLISHED_LABELS).labels(period)
    assert _share(labels, "2008-10-01", "2008-11-30") == 1.0
    assert _share(labels, "2017-01-01", "2017-12-31") < 0.1


@pytest.mark.slow
def test_hmm_filter_on_real_data_is_causal(real_features: pd.DataFrame) -> None:
    fit_until = pd.Timestamp("2011-12-30")
    short = hmm_forecast(real_features.loc[:"2013-12-31"], fit_until=fit_until)
    full = hmm_forecast(real_features, fit_until=fit_until)
    pd.testing.assert_frame_equal(short, full.loc[:"2013-12-31"], check_freq=False)
    assert _share(full["call"], "2008-10-01", "2008-11-30") > 0.9


def test_shipped_model_calls_the_known_regimes(real_features: pd.DataFrame) -> None:
    versions = list_versions(SHIPPED_MODELS)
    if not versions:
        pytest.skip(f"no model shipped under {SHIPPED_MODELS}")
    predictor = RegimePredictor.load(SHIPPED_MODELS, versions[-1])
    daily = predictor.predict_daily(real_features)
    assert _share(daily["regime"], "2008-10-01", "2008-11-30") > 0.9
    assert _share(daily["regime"], "2017-01-01", "2017-12-31") < 0.05
    assert daily["p_distressed"].loc["1993-06-01":].notna().all()
