"""The daily feature table: one row per SPY trading day, point in time.

Every value on day t is computed from closes dated t or earlier (rolling windows
look back only; other calendars are aligned with a backward as-of join), so
appending future rows never changes an earlier value. Missing inputs stay NaN.

Conventions (shared by the classifier, the rule engine and the store):
- Prices are adjusted closes for ETFs (dividends and splits folded in) and index
  levels for the Cboe volatility indices.
- ``ret_Nd`` is the simple return close(t) / close(t-N) - 1.
- ``rv_Nd`` is the sample standard deviation (ddof=1) of the last N daily simple
  returns, NOT annualised (as the published classifier's code computes it).
- Inputs on another calendar (Cboe indices, bond ETFs) are aligned to SPY days
  with the last value dated on or before the SPY day and at most
  ``MAX_FILL_AGE_DAYS`` calendar days old; older than that the value is missing,
  not stale.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from core.errors import NoDataError

FEATURE_SET_VERSION = 1

SPY = "SPY"
VIX = "^VIX"
VIX3M = "^VIX3M"
HYG = "HYG"
IEF = "IEF"
FEATURE_INPUT_SYMBOLS: tuple[str, ...] = (SPY, VIX, VIX3M, HYG, IEF)

# A Friday close may serve Monday (3 days) or the Tuesday after a holiday
# Monday on one calendar only (4-5 days); anything older is treated as missing.
MAX_FILL_AGE_DAYS = 5

SMA_WINDOW = 200
CREDIT_Z_WINDOW = 252

# The classifier's six inputs, in the order its model card records.
MODEL_FEATURES: tuple[str, ...] = ("ret_1d", "ret_5d", "ret_20d", "rv_5d", "rv_20d", "vix")
# Inputs of the three stress filters (default windows), kept for display and audit.
FILTER_FEATURES: tuple[str, ...] = (
    "spy_close",
    "spy_sma200",
    "spy_close_sma200",
    "vix3m",
    "vix_vix3m",
    "hyg_ief",
    "hyg_ief_z252",
)
FEATURE_COLUMNS: tuple[str, ...] = MODEL_FEATURES + FILTER_FEATURES


def simple_returns(close: pd.Series, periods: int = 1) -> pd.Series:
    """close(t) / close(t - periods) - 1; NaN for the first ``periods`` rows."""
    return close / close.shift(periods) - 1.0


def realised_volatility(daily_returns: pd.Series, window: int) -> pd.Series:
    """Rolling sample std (ddof=1) of daily returns over ``window`` rows, not annualised."""
    return daily_returns.rolling(window, min_periods=window).std()


def sma(close: pd.Series, window: int) -> pd.Series:
    """Simple moving average over ``window`` rows; NaN until the window is full."""
    return close.rolling(window, min_periods=window).mean()


def rolling_zscore(series: pd.Series, window: int) -> pd.Series:
    """(x(t) - mean) / std over the last ``window`` rows including t (ddof=1).

    NaN until the window holds ``window`` non-missing values.
    """
    rolling = series.rolling(window, min_periods=window)
    return (series - rolling.mean()) / rolling.std()


def align_to_calendar(
    series: pd.Series, calendar: pd.DatetimeIndex, max_age_days: int = MAX_FILL_AGE_DAYS
) -> pd.Series:
    """Value of ``series`` known on each calendar day: the last one dated on or
    before that day and at most ``max_age_days`` calendar days old, else NaN."""
    if series.empty:
        return pd.Series(np.nan, index=calendar, dtype=float)
    left = pd.DataFrame({"date": calendar})
    right = pd.DataFrame({"date": series.index, "value": series.to_numpy(dtype=float)})
    left["date"] = left["date"].astype("datetime64[ns]")
    right["date"] = right["date"].astype("datetime64[ns]")
    joined = pd.merge_asof(
        left,
        right.sort_values("date"),
        on="date",
        direction="backward",
        tolerance=pd.Timedelta(days=max_age_days),
    )
    return pd.Series(joined["value"].to_numpy(), index=calendar, dtype=float)


def compute_features(closes: Mapping[str, pd.Series]) -> pd.DataFrame:
    """Feature table from daily closes.

    ``closes`` maps a symbol (``SPY``, ``^VIX``, ``^VIX3M``, ``HYG``, ``IEF``) to
    a float Series indexed by date (DatetimeIndex, increasing). Only SPY is
    required; any other missing symbol leaves its columns NaN.

    Returns a DataFrame indexed by SPY's dates (name ``date``) with
    ``FEATURE_COLUMNS`` in that order, float64, NaN where an input is missing.
    """
    spy = closes.get(SPY)
    if spy is None or spy.dropna().empty:
        raise NoDataError("no SPY closes: features are computed on SPY trading days")
    spy = spy.dropna().astype(float).sort_index()
    calendar = pd.DatetimeIndex(spy.index, name="date")

    def aligned(symbol: str) -> pd.Series:
        series = closes.get(symbol)
        if series is None:
            return pd.Series(np.nan, index=calendar, dtype=float)
        return align_to_calendar(series.dropna().sort_index(), calendar)

    ret_1d = simple_returns(spy, 1)
    vix = aligned(VIX)
    vix3m = aligned(VIX3M)
    hyg_ief = aligned(HYG) / aligned(IEF)
    spy_sma = sma(spy, SMA_WINDOW)

    table = pd.DataFrame(
        {
            "ret_1d": ret_1d,
            "ret_5d": simple_returns(spy, 5),
            "ret_20d": simple_returns(spy, 20),
            "rv_5d": realised_volatility(ret_1d, 5),
            "rv_20d": realised_volatility(ret_1d, 20),
            "vix": vix,
            "spy_close": spy,
            "spy_sma200": spy_sma,
            "spy_close_sma200": spy / spy_sma,
            "vix3m": vix3m,
            "vix_vix3m": vix / vix3m,
            "hyg_ief": hyg_ief,
            "hyg_ief_z252": rolling_zscore(hyg_ief, CREDIT_Z_WINDOW),
        },
        index=calendar,
    )
    return table.loc[:, list(FEATURE_COLUMNS)].astype(float)
