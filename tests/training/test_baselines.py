import numpy as np
import pandas as pd
import pytest
from hmmlearn.hmm import GaussianHMM
from scipy.stats import multivariate_normal

from core.features import MODEL_FEATURES
from training.baselines import (
    BaselineConfig,
    forward_filter,
    hmm_forecast,
    jump_forecast,
    logistic_forecast,
    persistence_forecast,
    rules_forecast,
)


def _regime_switching_features(n_blocks: int = 8, block: int = 40, seed: int = 5) -> pd.DataFrame:
    """Alternating calm / stressed blocks of the six model features, with noise."""
    rng = np.random.default_rng(seed)
    calm = np.array([0.001, 0.004, 0.015, 0.006, 0.007, 13.0])
    stressed = np.array([-0.008, -0.03, -0.08, 0.025, 0.028, 35.0])
    rows = []
    for i in range(n_blocks):
        centre = stressed if i % 2 else calm
        rows.append(centre * (1 + 0.15 * rng.standard_normal((block, 6))))
    dates = pd.bdate_range("2015-01-01", periods=n_blocks * block, name="date")
    return pd.DataFrame(np.vstack(rows), index=dates, columns=list(MODEL_FEATURES))


@pytest.fixture(scope="module")
def regimes() -> pd.DataFrame:
    return _regime_switching_features()


def _stressed(frame: pd.DataFrame) -> np.ndarray:
    return (frame["vix"] > 24).to_numpy()


def test_forward_filter_equals_the_last_row_of_hmmlearn_posteriors_on_each_prefix() -> None:
    # At the last row of a sequence the smoothed posterior IS the filtered one, so
    # hmmlearn's predict_proba on each prefix is an independent forward filter.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (60, 2)), rng.normal(3, 2, (60, 2))])
    model = GaussianHMM(n_components=2, covariance_type="full", n_iter=50, random_state=0)
    model.fit(x)
    log_emission = np.column_stack(
        [multivariate_normal(model.means_[k], model.covars_[k]).logpdf(x) for k in range(2)]
    )
    filtered = forward_filter(np.log(model.startprob_), np.log(model.transmat_), log_emission)
    for k in (1, 2, 30, 61, 90, 120):
        np.testing.assert_allclose(filtered[k - 1], model.predict_proba(x[:k])[-1], atol=1e-8)
    # The trap avoided: on the whole sequence predict_proba smooths with later rows,
    # which moves interior days visibly away from what was knowable on the day.
    assert np.max(np.abs(model.predict_proba(x) - filtered)) > 1e-3


def test_hmm_is_causal_and_its_distressed_state_is_the_volatile_one(
    regimes: pd.DataFrame,
) -> None:
    fit_until = regimes.index[199]
    short = hmm_forecast(regimes.iloc[:250], fit_until=fit_until)
    full = hmm_forecast(regimes, fit_until=fit_until)
    pd.testing.assert_frame_equal(short, full.iloc[:250], check_freq=False, check_exact=True)
    stressed = _stressed(regimes)
    assert full["score"][stressed].mean() > 0.9
    assert full["score"][~stressed].mean() < 0.1


def test_jump_model_is_causal_and_ordered_by_volatility(regimes: pd.DataFrame) -> None:
    fit_until = regimes.index[199]
    short = jump_forecast(regimes.iloc[:250], fit_until=fit_until)
    full = jump_forecast(regimes, fit_until=fit_until)
    pd.testing.assert_frame_equal(short, full.iloc[:250], check_freq=False, check_exact=True)
    stressed = _stressed(regimes)
    assert (full["call"][stressed] == 1).mean() > 0.9
    assert (full["call"][~stressed] == 0).mean() > 0.9


def test_a_cached_jump_fit_gives_the_same_forecast_and_is_reused(
    regimes: pd.DataFrame, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from training import baselines

    fit_until = regimes.index[199]
    plain = jump_forecast(regimes, fit_until=fit_until)
    cached = BaselineConfig(cache_dir=str(tmp_path))
    first = jump_forecast(regimes, fit_until=fit_until, config=cached)
    pd.testing.assert_frame_equal(first, plain, check_exact=True)
    calls = []
    original = baselines.JumpModel.fit
    monkeypatch.setattr(
        baselines.JumpModel, "fit", lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    )
    # the same fit rows (more rows after fit_until do not change them): read from the cache
    again = jump_forecast(regimes.iloc[:250], fit_until=fit_until, config=cached)
    assert calls == []
    pd.testing.assert_frame_equal(again, plain.iloc[:250], check_exact=True, check_freq=False)
    jump_forecast(regimes, fit_until=regimes.index[239], config=cached)  # other rows: a fit
    assert calls == [1]


def test_logistic_reads_no_label_after_fit_until(regimes: pd.DataFrame) -> None:
    labels = pd.Series(_stressed(regimes).astype(float), index=regimes.index)
    fit_until = regimes.index[199]
    scrambled = labels.copy()
    scrambled.iloc[200:] = 1.0 - scrambled.iloc[200:]
    a = logistic_forecast(regimes, labels, fit_until=fit_until)
    b = logistic_forecast(regimes, scrambled, fit_until=fit_until)
    pd.testing.assert_frame_equal(a, b)
    assert (a["call"].to_numpy() == labels.to_numpy()).mean() > 0.95


def test_logistic_with_horizon_trains_only_on_targets_up_to_fit_until(
    regimes: pd.DataFrame,
) -> None:
    labels = pd.Series(_stressed(regimes).astype(float), index=regimes.index)
    fit_until = regimes.index[199]
    changed = labels.copy()
    changed.iloc[200:203] = 1.0 - changed.iloc[200:203]  # targets of rows 195..197 at h=5
    a = logistic_forecast(regimes, labels, fit_until=fit_until, horizon=5)
    b = logistic_forecast(regimes, changed, fit_until=fit_until, horizon=5)
    pd.testing.assert_frame_equal(a, b)


def test_persistence_uses_the_last_label_known_before_the_target_day() -> None:
    labels = pd.Series([0.0, 1.0, 1.0, 0.0, np.nan, 1.0])
    nowcast = persistence_forecast(labels, horizon=0)
    np.testing.assert_array_equal(nowcast["call"], [np.nan, 0, 1, 1, 0, np.nan])
    ahead = persistence_forecast(labels, horizon=3)
    np.testing.assert_array_equal(ahead["call"], labels)


def test_rules_call_any_firing_filter_distressed_and_score_the_firing_share() -> None:
    n = 260
    dates = pd.bdate_range("2012-01-02", periods=n, name="date")
    close = np.full(n, 100.0)
    close[-1] = 90.0  # below its 200-day average on the last day only
    ratio = np.full(n, 0.9)
    ratio[-1] = 1.1  # VIX above VIX3M on the last day only
    ratio[-3] = 1.2  # ... and three days before the end
    features = pd.DataFrame(
        {"spy_close": close, "vix_vix3m": ratio, "hyg_ief": 1.0}, index=dates
    )  # constant HYG/IEF: no z-score, the credit filter is unavailable
    forecast = rules_forecast(features)
    # Before day 200 only the volatility filter has input.
    assert forecast["score"].iloc[0] == 0.0
    assert forecast["call"].iloc[0] == 0.0
    assert forecast["score"].iloc[-3:].tolist() == [0.5, 0.0, 1.0]
    assert forecast["call"].iloc[-3:].tolist() == [1.0, 0.0, 1.0]
