"""What the classifier is asked, for the window ending on day t (h = the horizon).

- ``label``: the regime label of day t + h (h = 0: day t itself, a now-cast).
- ``distress-within``: 1 when any of days t+1 .. t+h is labelled distressed.
- ``change-within``: 1 when any of days t+1 .. t+h has a label other than day t's.

Days are trading days (rows of the feature table). A target is NaN when a label
it needs is NaN or lies beyond the data, so the last h days have none. Labels
come from a labeler fitted on the training window only (training.labels).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.config import Target


def target_series(labels: pd.Series, target: Target, horizon: int) -> pd.Series:
    """[n] float target per day (0/1, NaN unknown), indexed like ``labels``.

    ``labels`` is 0/1 with NaN allowed, in date order. ``horizon`` >= 0; the
    ``-within`` targets need ``horizon`` >= 1.
    """
    values = labels.to_numpy(dtype=np.float64)
    n = len(values)
    if target is Target.LABEL:
        out = np.full(n, np.nan)
        out[: max(n - horizon, 0)] = values[horizon:]
        return pd.Series(out, index=labels.index, name=target.value)
    if horizon < 1:
        raise ValueError(f"target {target.value!r} needs a horizon of at least 1, got {horizon!r}")
    # ahead[k - 1, t] = label of day t + k, for k = 1..h.
    ahead = np.full((horizon, n), np.nan)
    for k in range(1, horizon + 1):
        ahead[k - 1, : max(n - k, 0)] = values[k:]
    known = ~np.isnan(ahead).any(axis=0)
    if target is Target.DISTRESS_WITHIN:
        hit = (ahead == 1.0).any(axis=0)
    else:
        known &= ~np.isnan(values)
        hit = (ahead != values[None, :]).any(axis=0)
    out = np.where(known, hit.astype(np.float64), np.nan)
    return pd.Series(out, index=labels.index, name=target.value)
