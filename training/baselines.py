"""Baselines evaluated on the same walk-forward splits as the Transformer.

Every baseline is fitted on days up to ``fit_until`` and then scores EVERY day
causally: the score for day t reads rows <= t only, so appending later rows never
changes it (tests check this for each). A forecast is a DataFrame indexed like
the feature table with ``score`` (higher = more distressed; a probability where
the method has one) and ``call`` (1 distressed, 0 calm); NaN where the method
cannot speak (missing features, no earlier label).

With a horizon h > 0, every method's call on day t stands for the label of day
t + h, exactly like the Transformer's.

- ``hmm``: two-state Gaussian HMM on the six standardised features, decoded by
  the FORWARD FILTER only, p(state_t | x_1..x_t). hmmlearn's predict/predict_proba
  smooth with the whole sequence (future rows) and are not used for scoring.
- ``jump``: statistical jump model (jumpmodels), online prediction.
- ``logistic``: logistic regression on the last day's standardised features.
- ``persistence``: the most recent label known before the target day: yesterday's
  label for a now-cast (h = 0), today's label for h > 0.
- ``rules``: the three-filter engine (core.rules, PUBLISHED_FRAMEWORK); caution and
  risk-off both count as distressed (any filter firing); score = firing / available.

HMM and jump-model states are renumbered by their rv_20d mean (calmest = 0), so
the labels of a refit never swap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM
from jumpmodels.jump import JumpModel
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.linear_model import LogisticRegression

from core.errors import NoDataError
from core.features import MODEL_FEATURES
from core.rules import PUBLISHED_FRAMEWORK, compute_regimes

VOLATILITY_FEATURE = "rv_20d"
BASELINE_NAMES: tuple[str, ...] = ("hmm", "jump", "logistic", "persistence", "rules")


@dataclass(frozen=True)
class BaselineConfig:
    seed: int = 0
    hmm_iterations: int = 200
    # Fixed by meaning, not tuned: the value used in the jumpmodels examples for
    # standardised daily features (about one switch a quarter is not penalised away).
    jump_penalty: float = 50.0


def _forecast(score: np.ndarray, call: np.ndarray, index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame({"score": score, "call": call}, index=index)


@dataclass(frozen=True)
class _Standardiser:
    """Mean/std of the six model features over the fit rows (ddof=0)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, rows: np.ndarray) -> _Standardiser:
        std = rows.std(axis=0)
        std[std == 0.0] = 1.0
        return cls(rows.mean(axis=0), std)

    def apply(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std


def _model_rows(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Six-feature matrix and a mask of the rows without NaN."""
    values = features.loc[:, list(MODEL_FEATURES)].to_numpy(dtype=np.float64)
    return values, ~np.isnan(values).any(axis=1)


def _fit_rows(features: pd.DataFrame, fit_until: pd.Timestamp, minimum: int) -> np.ndarray:
    values, complete = _model_rows(features)
    rows = values[complete & (features.index <= fit_until)]
    if len(rows) < minimum:
        raise NoDataError(f"baseline fit needs at least {minimum} complete days, got {len(rows)}")
    return rows


# --- hidden Markov model ------------------------------------------------------------


def forward_filter(
    log_start: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray
) -> np.ndarray:
    """Filtered state probabilities p(s_t | x_1..x_t) [n, k], in log space for stability.

    ``log_start`` [k], ``log_transition`` [k, k] (row = from), ``log_emission``
    [n, k] = log p(x_t | s_t). Row t depends on rows <= t only.
    """
    n, k = log_emission.shape
    filtered = np.empty((n, k))
    log_alpha = log_start + log_emission[0]
    for t in range(n):
        if t > 0:
            # predict: log sum_i alpha_{t-1}(i) A(i, j); then update with the emission
            log_alpha = logsumexp(log_alpha[:, None] + log_transition, axis=0) + log_emission[t]
        log_alpha = log_alpha - logsumexp(log_alpha)
        filtered[t] = np.exp(log_alpha)
    return filtered


def hmm_forecast(
    features: pd.DataFrame, *, fit_until: pd.Timestamp, config: BaselineConfig = BaselineConfig()
) -> pd.DataFrame:
    """Two-state Gaussian HMM fitted on days <= fit_until, forward-filtered over all days.

    Rows with a NaN feature are skipped by the filter (score NaN); the filter
    carries its state across them.
    """
    standardiser = _Standardiser.fit(_fit_rows(features, fit_until, 50))
    values, complete = _model_rows(features)
    fit_mask = complete & (features.index <= fit_until)
    model = GaussianHMM(
        n_components=2,
        covariance_type="full",
        n_iter=config.hmm_iterations,
        random_state=config.seed,
    )
    model.fit(standardiser.apply(values[fit_mask]))
    order = np.argsort(model.means_[:, MODEL_FEATURES.index(VOLATILITY_FEATURE)], kind="stable")
    scaled = standardiser.apply(values[complete])
    log_emission = np.column_stack(
        [
            multivariate_normal(model.means_[state], model.covars_[state]).logpdf(scaled)
            for state in range(2)
        ]
    ).reshape(len(scaled), 2)
    with np.errstate(divide="ignore"):  # a zero probability is -inf in log space, on purpose
        filtered = forward_filter(np.log(model.startprob_), np.log(model.transmat_), log_emission)[
            :, order
        ]
    score = np.full(len(features), np.nan)
    score[complete] = filtered[:, 1]
    call = np.where(np.isnan(score), np.nan, (score >= 0.5).astype(float))
    return _forecast(score, call, features.index)


# --- statistical jump model ---------------------------------------------------------


def jump_forecast(
    features: pd.DataFrame, *, fit_until: pd.Timestamp, config: BaselineConfig = BaselineConfig()
) -> pd.DataFrame:
    """Discrete two-state jump model fitted on days <= fit_until, online states for all days."""
    standardiser = _Standardiser.fit(_fit_rows(features, fit_until, 50))
    values, complete = _model_rows(features)
    fit_mask = complete & (features.index <= fit_until)
    model = JumpModel(n_components=2, jump_penalty=config.jump_penalty, random_state=config.seed)
    model.fit(standardiser.apply(values[fit_mask]))
    # Library state -> our state (calmest = 0) by the rv_20d centre.
    rank = np.argsort(np.argsort(model.centers_[:, MODEL_FEATURES.index(VOLATILITY_FEATURE)]))
    states = np.asarray(model.predict_online(standardiser.apply(values[complete])), dtype=int)
    score = np.full(len(features), np.nan)
    score[complete] = rank[states].astype(float)
    return _forecast(score, score.copy(), features.index)


# --- logistic regression ------------------------------------------------------------


def logistic_forecast(
    features: pd.DataFrame, labels: pd.Series, *, fit_until: pd.Timestamp, horizon: int = 0
) -> pd.DataFrame:
    """Logistic regression of label(t + horizon) on day t's standardised features.

    Trained on pairs whose target day is <= fit_until (so no test label is used).
    """
    values, complete = _model_rows(features)
    target = labels.reindex(features.index).shift(-horizon).to_numpy(dtype=float)
    target_day = pd.Series(features.index, index=features.index).shift(-horizon)
    fit_mask = complete & ~np.isnan(target) & (target_day <= fit_until).to_numpy()
    if fit_mask.sum() < 50 or len(np.unique(target[fit_mask])) < 2:
        raise NoDataError("logistic baseline needs 50 labelled days with both regimes present")
    standardiser = _Standardiser.fit(values[fit_mask])
    model = LogisticRegression(max_iter=1000)
    model.fit(standardiser.apply(values[fit_mask]), target[fit_mask].astype(int))
    score = np.full(len(features), np.nan)
    score[complete] = model.predict_proba(standardiser.apply(values[complete]))[:, 1]
    call = np.where(np.isnan(score), np.nan, (score >= 0.5).astype(float))
    return _forecast(score, call, features.index)


# --- persistence and rules ----------------------------------------------------------


def persistence_forecast(labels: pd.Series, *, horizon: int = 0) -> pd.DataFrame:
    """Last label known before the target day: label(t - 1) for h = 0, label(t) for h > 0."""
    previous = labels.shift(1) if horizon == 0 else labels
    values = previous.to_numpy(dtype=float)
    return _forecast(values, values.copy(), labels.index)


def rules_forecast(features: pd.DataFrame) -> pd.DataFrame:
    """Three-filter engine (published preset): distressed when any filter fires.

    Score = firing filters / available filters (NaN when none is available).
    """
    regimes = compute_regimes(features, PUBLISHED_FRAMEWORK)
    available = regimes["available"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(available > 0, regimes["votes"].to_numpy(dtype=float) / available, np.nan)
    codes = regimes["regime_code"].to_numpy(dtype=float)
    call = np.where(np.isnan(codes), np.nan, (codes >= 1).astype(float))
    return _forecast(score, call, features.index)


def all_baselines(
    features: pd.DataFrame,
    labels: pd.Series,
    *,
    fit_until: pd.Timestamp,
    horizon: int = 0,
    config: BaselineConfig = BaselineConfig(),
) -> dict[str, pd.DataFrame]:
    """Every baseline's forecast for every day, keyed by BASELINE_NAMES."""
    return {
        "hmm": hmm_forecast(features, fit_until=fit_until, config=config),
        "jump": jump_forecast(features, fit_until=fit_until, config=config),
        "logistic": logistic_forecast(features, labels, fit_until=fit_until, horizon=horizon),
        "persistence": persistence_forecast(labels, horizon=horizon),
        "rules": rules_forecast(features),
    }
