"""Baselines evaluated on the same walk-forward splits as the Transformer.

Every baseline is fitted on days up to ``fit_until`` and then scores EVERY day
causally: the score for day t reads rows <= t only, so appending later rows never
changes it (tests check this for each). A forecast is a DataFrame indexed like
the feature table with ``score`` (higher = more distressed; a probability where
the method has one) and ``call`` (1 distressed, 0 calm); NaN where the method
cannot speak (missing features, no earlier label).

With a horizon h > 0, every supervised method's call on day t stands for the same
target as the Transformer's (training.targets: the label of day t + h, or distress
or a change within h days).

- ``hmm``: Gaussian HMM (two states, or the count tuned) on the six standardised
  features, decoded by the FORWARD FILTER only, p(state_t | x_1..x_t). hmmlearn's
  predict/predict_proba smooth with the whole sequence (future rows) and are not
  used for scoring.
- ``jump``: statistical jump model (jumpmodels), online prediction.
- ``logistic``: logistic regression on the last day's standardised features.
- ``persistence``: the most recent target known on day t: yesterday's label for a
  now-cast (h = 0), today's label for the label h days ahead, and for the
  ``-within`` targets whether distress (a change) happened in the last h days.
- ``rules``: the three-filter engine (core.rules, PUBLISHED_FRAMEWORK); caution and
  risk-off both count as distressed (any filter firing); score = firing / available.

HMM and jump-model states are renumbered by their rv_20d mean (calmest = 0), so
the labels of a refit never swap. With grids in BaselineConfig, the jump penalty
and the HMM state count are tuned by time-series cross-validation on the
training window only (each of its last ``cv_years`` years scored by a fit on
the days before it; balanced accuracy against the target).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM
from joblib import Memory
from jumpmodels.jump import JumpModel
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from core.errors import ConfigError, NoDataError
from core.features import MODEL_FEATURES
from core.rules import PUBLISHED_FRAMEWORK, compute_regimes
from training.config import Target
from training.targets import target_series

log = logging.getLogger(__name__)

VOLATILITY_FEATURE = "rv_20d"
BASELINE_NAMES: tuple[str, ...] = ("hmm", "jump", "logistic", "persistence", "rules")


@dataclass(frozen=True)
class BaselineConfig:
    seed: int = 0
    hmm_iterations: int = 200
    # The value used in the jumpmodels examples for standardised daily features (about
    # one switch a quarter is not penalised away); used as is when no grid is given.
    jump_penalty: float = 50.0
    hmm_states: int = 2
    # Grids tuned by time-series cross-validation inside each training window
    # (tune_baselines): empty = no tuning, the single values above are used.
    jump_penalty_grid: tuple[float, ...] = ()
    hmm_states_grid: tuple[int, ...] = ()
    cv_years: int = 2  # validation years, the last ones before the test year
    # Folder of a joblib.Memory cache of jump-model fits: the walk-forward refits the same
    # (fit end, penalty) up to three times (two folds' CV, one fold's forecast).
    cache_dir: str | None = None

    def validate(self) -> BaselineConfig:
        if not 1 <= self.cv_years <= 10:
            raise ConfigError(f"cv_years must be between 1 and 10, got {self.cv_years!r}")
        states = (self.hmm_states, *self.hmm_states_grid)
        if any(not 2 <= k <= 6 for k in states):
            raise ConfigError(f"HMM states must be between 2 and 6, got {states!r}")
        if any(not p >= 0 for p in (self.jump_penalty, *self.jump_penalty_grid)):
            raise ConfigError(f"jump penalties must be >= 0, got {self.jump_penalty_grid!r}")
        return self


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
    """Gaussian HMM (``config.hmm_states`` states) fitted on days <= fit_until,
    forward-filtered over all days; score = p(any state but the calmest by rv_20d).

    Rows with a NaN feature are skipped by the filter (score NaN); the filter
    carries its state across them.
    """
    standardiser = _Standardiser.fit(_fit_rows(features, fit_until, 50))
    values, complete = _model_rows(features)
    fit_mask = complete & (features.index <= fit_until)
    k = config.hmm_states
    model = GaussianHMM(
        n_components=k,
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
            for state in range(k)
        ]
    ).reshape(len(scaled), k)
    with np.errstate(divide="ignore"):  # a zero probability is -inf in log space, on purpose
        filtered = forward_filter(np.log(model.startprob_), np.log(model.transmat_), log_emission)[
            :, order
        ]
    score = np.full(len(features), np.nan)
    score[complete] = filtered[:, 1:].sum(axis=1)
    call = np.where(np.isnan(score), np.nan, (score >= 0.5).astype(float))
    return _forecast(score, call, features.index)


# --- statistical jump model ---------------------------------------------------------


def _fit_jump(rows: np.ndarray, penalty: float, seed: int) -> tuple[_Standardiser, JumpModel]:
    """The standardiser and the two-state jump model fitted on the complete fit rows."""
    standardiser = _Standardiser.fit(rows)
    model = JumpModel(n_components=2, jump_penalty=penalty, random_state=seed)
    model.fit(standardiser.apply(rows))
    return standardiser, model


def jump_forecast(
    features: pd.DataFrame, *, fit_until: pd.Timestamp, config: BaselineConfig = BaselineConfig()
) -> pd.DataFrame:
    """Discrete two-state jump model fitted on days <= fit_until, online states for all days."""
    rows = _fit_rows(features, fit_until, 50)
    fit = (
        _fit_jump
        if config.cache_dir is None
        else Memory(config.cache_dir, verbose=0).cache(_fit_jump)
    )
    standardiser, model = fit(rows, config.jump_penalty, config.seed)
    values, complete = _model_rows(features)
    # Library state -> our state (calmest = 0) by the rv_20d centre.
    rank = np.argsort(np.argsort(model.centers_[:, MODEL_FEATURES.index(VOLATILITY_FEATURE)]))
    states = np.asarray(model.predict_online(standardiser.apply(values[complete])), dtype=int)
    score = np.full(len(features), np.nan)
    score[complete] = rank[states].astype(float)
    return _forecast(score, score.copy(), features.index)


# --- logistic regression ------------------------------------------------------------


def logistic_forecast(
    features: pd.DataFrame,
    labels: pd.Series,
    *,
    fit_until: pd.Timestamp,
    horizon: int = 0,
    target_kind: Target = Target.LABEL,
) -> pd.DataFrame:
    """Logistic regression of day t's target (training.targets) on its standardised features.

    Trained on pairs whose last target day t + horizon is <= fit_until (so no test
    label is used).
    """
    values, complete = _model_rows(features)
    target = target_series(labels.reindex(features.index), target_kind, horizon).to_numpy()
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


def persistence_forecast(
    labels: pd.Series, *, horizon: int = 0, target_kind: Target = Target.LABEL
) -> pd.DataFrame:
    """The latest target fully known on day t: that of day t - max(h, 1). For the label
    target, label(t - 1) for h = 0 and label(t) for h > 0."""
    if target_kind is Target.LABEL:
        known = labels.shift(1) if horizon == 0 else labels
    else:
        known = target_series(labels, target_kind, horizon).shift(horizon)
    values = known.to_numpy(dtype=float)
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


# --- tuning inside the training window ------------------------------------------------


def validation_years(fit_until: pd.Timestamp, n_years: int) -> list[int]:
    """The last ``n_years`` calendar years ending on or before ``fit_until``'s year,
    oldest first; each is scored by a fit on the days before it."""
    return list(range(fit_until.year - n_years + 1, fit_until.year + 1))


def cv_score(
    forecast: Callable[[pd.DataFrame, pd.Timestamp], pd.DataFrame],
    features: pd.DataFrame,
    targets: pd.Series,
    *,
    fit_until: pd.Timestamp,
    horizon: int,
    n_years: int,
) -> float:
    """Mean balanced accuracy of ``forecast(features, fold_fit_until)``'s calls against
    ``targets`` over the validation years, each fold fitted on the days before its year.
    Only targets whose last label day is <= fit_until count, so nothing after the
    training window is read."""
    target_day = pd.Series(features.index, index=features.index).shift(-horizon)
    usable = (target_day <= fit_until).to_numpy()
    scores = []
    for year in validation_years(fit_until, n_years):
        in_year = (features.index.year == year) & usable
        before = features.index < pd.Timestamp(year, 1, 1)
        if not in_year.any() or before.sum() < 250:
            continue
        calls = forecast(features.loc[features.index <= fit_until], features.index[before][-1])
        truth = targets.reindex(features.index).to_numpy(dtype=float)[in_year]
        called = calls["call"].reindex(features.index).to_numpy(dtype=float)[in_year]
        keep = ~(np.isnan(truth) | np.isnan(called))
        if keep.sum() and len(np.unique(truth[keep])) == 2:
            scores.append(balanced_accuracy_score(truth[keep], called[keep]))
    return float(np.mean(scores)) if scores else float("nan")


def tune_baselines(
    features: pd.DataFrame,
    labels: pd.Series,
    *,
    fit_until: pd.Timestamp,
    horizon: int = 0,
    target_kind: Target = Target.LABEL,
    config: BaselineConfig = BaselineConfig(),
) -> BaselineConfig:
    """``config`` with the jump penalty and the HMM state count chosen from their grids
    by time-series cross-validation on days <= fit_until (first best on ties)."""
    config.validate()
    targets = target_series(labels.reindex(features.index), target_kind, horizon)

    def score(candidate: BaselineConfig, method: Callable[..., pd.DataFrame]) -> float:
        value = cv_score(
            lambda rows, until: method(rows, fit_until=until, config=candidate),
            features,
            targets,
            fit_until=fit_until,
            horizon=horizon,
            n_years=config.cv_years,
        )
        return value if np.isfinite(value) else -np.inf

    chosen = config
    if len(config.jump_penalty_grid) > 1:
        scores = [
            score(replace(config, jump_penalty=p), jump_forecast) for p in config.jump_penalty_grid
        ]
        chosen = replace(chosen, jump_penalty=config.jump_penalty_grid[int(np.argmax(scores))])
    if len(config.hmm_states_grid) > 1:
        scores = [
            score(replace(config, hmm_states=k), hmm_forecast) for k in config.hmm_states_grid
        ]
        chosen = replace(chosen, hmm_states=config.hmm_states_grid[int(np.argmax(scores))])
    log.info(
        "baselines tuned on days to %s: jump penalty %g, HMM states %d",
        fit_until.date(),
        chosen.jump_penalty,
        chosen.hmm_states,
    )
    return chosen


def all_baselines(
    features: pd.DataFrame,
    labels: pd.Series,
    *,
    fit_until: pd.Timestamp,
    horizon: int = 0,
    target_kind: Target = Target.LABEL,
    config: BaselineConfig = BaselineConfig(),
) -> dict[str, pd.DataFrame]:
    """Every baseline's forecast for every day, keyed by BASELINE_NAMES; the jump penalty
    and HMM states are first tuned on days <= fit_until when ``config`` has grids."""
    config = tune_baselines(
        features,
        labels,
        fit_until=fit_until,
        horizon=horizon,
        target_kind=target_kind,
        config=config,
    )
    return {
        "hmm": hmm_forecast(features, fit_until=fit_until, config=config),
        "jump": jump_forecast(features, fit_until=fit_until, config=config),
        "logistic": logistic_forecast(
            features, labels, fit_until=fit_until, horizon=horizon, target_kind=target_kind
        ),
        "persistence": persistence_forecast(
            labels.reindex(features.index), horizon=horizon, target_kind=target_kind
        ),
        "rules": rules_forecast(features),
    }
