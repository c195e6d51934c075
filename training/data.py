"""Small pure helpers on the feature table shared by training and evaluation."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.errors import ConfigError, NoDataError
from core.features import MODEL_FEATURES


def select_period(
    features: pd.DataFrame, start: dt.date | None = None, end: dt.date | None = None
) -> pd.DataFrame:
    """Rows dated within [start, end] (either bound optional); NoDataError when none remain."""
    if start is not None and end is not None and start > end:
        raise ConfigError(f"start {start} is after end {end}")
    index = features.index
    keep = np.ones(len(features), dtype=bool)
    if start is not None:
        keep &= index >= pd.Timestamp(start)
    if end is not None:
        keep &= index <= pd.Timestamp(end)
    selected = features.loc[keep]
    if selected.empty:
        raise NoDataError(f"no feature rows between {start or 'the start'} and {end or 'the end'}")
    return selected


def feature_fingerprint(features: pd.DataFrame, columns: Sequence[str] = MODEL_FEATURES) -> str:
    """sha256 of the rows a model was trained on: column names, dates and float64 values.

    Dates hash as days since 1970-01-01 (int64) and values as little-endian
    float64 with every NaN written as the same bit pattern, so the digest
    depends on the data only, not on how the frame was built.
    """
    digest = hashlib.sha256()
    digest.update("\x1f".join(columns).encode())
    days = features.index.to_numpy(dtype="datetime64[D]").astype("<i8")
    digest.update(days.tobytes())
    values = features.loc[:, list(columns)].to_numpy(dtype="<f8")
    digest.update(np.where(np.isnan(values), np.nan, values).astype("<f8").tobytes())
    return digest.hexdigest()
