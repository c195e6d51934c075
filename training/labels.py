"""Regime labels from KMeans or a statistical jump model on the daily features (the
classifier's training target).

Fit on the training period only (unless the config says otherwise, which leaks
the future and is flagged), then label any day:

- KMeans: the nearest fitted centroid; the label of day t reads only day t's
  features, so later rows never change it.
- jump model (jumpmodels): days of the fit keep the fitted state sequence (it reads
  the fit period only); later days get the online state, which reads days up to t
  only. Either way appending rows after the fit changes no earlier label.

Clusters are renumbered by their volatility centroid, calmest = 0, so a refit
on more data never swaps the meaning of a label. Regime 1 (distressed) is the
most volatile cluster, or every cluster but the calmest (as-published preset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from jumpmodels.jump import JumpModel
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from core.errors import NoDataError
from training.config import DistressedRule, LabelConfig, LabelMethod

MIN_ROWS_PER_CLUSTER = 5


@dataclass(frozen=True)
class FittedLabeler:
    """Centroids (in the scaled space, calmest first) and the scaling used to reach it."""

    config: LabelConfig
    mean: np.ndarray  # [n_label_features]; zeros when not standardised
    scale: np.ndarray  # [n_label_features]; ones when not standardised
    centroids: np.ndarray  # [n_clusters, n_label_features], ordered by volatility centroid
    fit_start: pd.Timestamp
    fit_end: pd.Timestamp
    # Jump model only: the fitted model and the fit days' states (ordered like centroids).
    jump_model: JumpModel | None = None
    fit_states: pd.Series | None = None

    @property
    def distressed_clusters(self) -> tuple[int, ...]:
        n = self.config.n_clusters
        if self.config.distressed is DistressedRule.HIGHEST:
            return (n - 1,)
        return tuple(range(1, n))

    def clusters(self, features: pd.DataFrame) -> pd.Series:
        """Nearest centroid per day (0 = calmest), float with NaN where a label feature is NaN."""
        values = features.loc[:, list(self.config.features)].to_numpy(dtype=np.float64)
        scaled = (values - self.mean) / self.scale
        if self.jump_model is not None:
            return self._jump_states(features.index, scaled)
        # Squared distance of every day to every centroid: [n_days, n_clusters].
        distances = ((scaled[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        nearest = distances.argmin(axis=1).astype(float)
        nearest[np.isnan(values).any(axis=1)] = np.nan
        return pd.Series(nearest, index=features.index, name="cluster")

    def _jump_states(self, days: pd.DatetimeIndex, scaled: np.ndarray) -> pd.Series:
        """The fitted state on fit days, the online state (rows <= t only) on the others."""
        complete = ~np.isnan(scaled).any(axis=1)
        states = np.full(len(days), np.nan)
        if complete.any():
            online = np.asarray(self.jump_model.predict_online(scaled[complete]), dtype=int)
            states[complete] = _volatility_rank(self.jump_model, self.config)[online]
        fitted = self.fit_states.reindex(days).to_numpy(dtype=float)
        known = ~np.isnan(fitted)
        states[known] = fitted[known]
        return pd.Series(states, index=days, name="cluster")

    def labels(self, features: pd.DataFrame) -> pd.Series:
        """Regime label per day: 1 distressed, 0 calm, NaN where a label feature is NaN."""
        clusters = self.clusters(features)
        distressed = np.isin(clusters.to_numpy(), self.distressed_clusters).astype(float)
        distressed[clusters.isna().to_numpy()] = np.nan
        return pd.Series(distressed, index=features.index, name="label")


def fit_labeler(
    features: pd.DataFrame, config: LabelConfig, *, fit_until: pd.Timestamp | None = None
) -> FittedLabeler:
    """Fit the scaler and KMeans on days up to ``fit_until`` (inclusive).

    ``features`` is the feature table indexed by date. Days with a NaN label
    feature are skipped. With ``config.fit_on_full_history`` every row given is
    used whatever ``fit_until`` says: that is the published code's look-ahead.
    """
    config.validate()
    rows = features.loc[:, list(config.features)].dropna()
    if fit_until is not None and not config.fit_on_full_history:
        rows = rows.loc[rows.index <= fit_until]
    if len(rows) < MIN_ROWS_PER_CLUSTER * config.n_clusters:
        raise NoDataError(
            f"label fit needs at least {MIN_ROWS_PER_CLUSTER * config.n_clusters} days with "
            f"all of {list(config.features)}, got {len(rows)}"
        )
    values = rows.to_numpy(dtype=np.float64)
    if config.standardise:
        mean = values.mean(axis=0)
        scale = values.std(axis=0)
        scale[scale == 0.0] = 1.0  # a constant feature carries no distance
    else:
        mean, scale = np.zeros(values.shape[1]), np.ones(values.shape[1])
    if config.method is LabelMethod.JUMP:
        return _fit_jump(rows, config, mean, scale)
    kmeans = KMeans(n_clusters=config.n_clusters, n_init=config.n_init, random_state=config.seed)
    # One thread: parallel reductions would make the centroids' last bits depend on the
    # machine's core count, and reruns must reproduce the same labels everywhere.
    with threadpool_limits(limits=1):
        kmeans.fit((values - mean) / scale)
    centroids = kmeans.cluster_centers_
    # Calmest first: order by the volatility feature's centroid in original units.
    volatility_column = list(config.features).index(config.volatility_feature)
    volatility_centroid = centroids[:, volatility_column] * scale[volatility_column]
    order = np.argsort(volatility_centroid + mean[volatility_column], kind="stable")
    return FittedLabeler(
        config=config,
        mean=mean,
        scale=scale,
        centroids=centroids[order],
        fit_start=rows.index[0],
        fit_end=rows.index[-1],
    )


def _volatility_rank(model: JumpModel, config: LabelConfig) -> np.ndarray:
    """Library state -> our state (calmest = 0) by the volatility feature's centre."""
    column = list(config.features).index(config.volatility_feature)
    return np.argsort(np.argsort(model.centers_[:, column], kind="stable"), kind="stable")


def _fit_jump(
    rows: pd.DataFrame, config: LabelConfig, mean: np.ndarray, scale: np.ndarray
) -> FittedLabeler:
    """A jump model fitted on the standardised fit rows; states renumbered calmest first."""
    model = JumpModel(
        n_components=config.n_clusters,
        jump_penalty=config.jump_penalty,
        n_init=config.n_init,
        random_state=config.seed,
    )
    model.fit((rows.to_numpy(dtype=np.float64) - mean) / scale)
    rank = _volatility_rank(model, config)
    order = np.argsort(rank, kind="stable")
    fitted = rank[np.asarray(model.labels_, dtype=int)].astype(float)
    return FittedLabeler(
        config=config,
        mean=mean,
        scale=scale,
        centroids=np.asarray(model.centers_)[order],
        fit_start=rows.index[0],
        fit_end=rows.index[-1],
        jump_model=model,
        fit_states=pd.Series(fitted, index=rows.index),
    )
