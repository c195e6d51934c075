"""Exposure policies: how rule votes and the classifier's output become an exposure.

One definition shared by the API (``/regime/today?policy=``) and the backtest.

- ``rules``: the three-filter regime table (core.rules).
- ``model``: the classifier's regime mapped to an exposure; ``MODEL_FILTER``
  (calm 1.0, distressed 0.0) and ``MODEL_LEVERAGED`` (calm 1.5, distressed 0.3)
  are the published mappings.
- ``ensemble``: the classifier's distressed call counts as one more vote in the
  rule set's regime table (so model + one filter firing is risk-off under the
  default table). A missing model output abstains, like an unavailable filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import ConfigError
from core.regimes import RegimeTable, regime_names

# A window is called distressed when the model's probability of regime 1 reaches this.
DISTRESSED_PROBABILITY = 0.5
MAX_LEVERAGE = 3.0


@dataclass(frozen=True)
class ModelMapping:
    calm_exposure: float = 1.0
    distressed_exposure: float = 0.0

    def validate(self) -> ModelMapping:
        bounds = (("calm", self.calm_exposure), ("distressed", self.distressed_exposure))
        for label, value in bounds:
            if not 0.0 <= value <= MAX_LEVERAGE:
                raise ConfigError(
                    f"{label} exposure must be between 0 and {MAX_LEVERAGE}, got {value!r}"
                )
        return self


MODEL_FILTER = ModelMapping(calm_exposure=1.0, distressed_exposure=0.0)
MODEL_LEVERAGED = ModelMapping(calm_exposure=1.5, distressed_exposure=0.3)


def distressed_from_probability(p_distressed: pd.Series) -> pd.Series:
    """Model regime (1 distressed, 0 calm, NaN unknown) from p(distressed)."""
    values = p_distressed.to_numpy(dtype=float)
    regime = np.where(np.isnan(values), np.nan, (values >= DISTRESSED_PROBABILITY).astype(float))
    return pd.Series(regime, index=p_distressed.index)


def model_exposure(model_regime: pd.Series, mapping: ModelMapping = MODEL_FILTER) -> pd.Series:
    """Exposure per day from the model regime (0/1/NaN -> NaN)."""
    mapping.validate()
    values = model_regime.to_numpy(dtype=float)
    exposure = np.where(values >= 1, mapping.distressed_exposure, mapping.calm_exposure)
    return pd.Series(np.where(np.isnan(values), np.nan, exposure), index=model_regime.index)


def ensemble_regimes(
    rule_votes: pd.Series, rule_available: pd.Series, model_regime: pd.Series, table: RegimeTable
) -> pd.DataFrame:
    """Regime table with the model's distressed call as an extra vote.

    Returns ``votes``, ``regime_code``, ``regime`` and ``exposure`` per day; NaN
    where neither a filter nor the model is available.
    """
    model = model_regime.reindex(rule_votes.index).to_numpy(dtype=float)
    model_vote = np.nan_to_num(model, nan=0.0).astype(int)
    votes = rule_votes.to_numpy(dtype=int) + model_vote
    has_input = (rule_available.to_numpy(dtype=int) > 0) | ~np.isnan(model)
    codes = pd.Series(
        np.where(has_input, table.regime_codes(votes), np.nan), index=rule_votes.index
    )
    return pd.DataFrame(
        {
            "votes": votes,
            "regime_code": codes,
            "regime": regime_names(codes),
            "exposure": table.exposure_of_codes(codes.to_numpy(dtype=float)),
        },
        index=rule_votes.index,
    )
