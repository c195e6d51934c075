"""Filters as data: a filter is one small frozen definition, its kind one entry here.

A ``FilterSpec`` names a ``kind`` (an entry of ``FILTER_KINDS``), the ``inputs``
it reads (symbols), its ``params``, a ``threshold`` and the side of it that means
stress (``fires``: ``below`` or ``above``), and a ``weight`` in weighted votes.

Inputs: ``filter_inputs(features, closes)`` builds one frame of series by symbol
on the feature calendar (SPY trading days). Symbols of the feature table come from
it (so the published filters read exactly the stored features); any other symbol
is a close aligned with core.features.align_to_calendar (last value known on or
before the day, at most MAX_FILL_AGE_DAYS old). A kind's reading on day t reads
rows <= t only.

Adding a kind: write its reading function (series in, series out, look-back only)
and add one ``FilterKind`` to ``FILTER_KINDS`` below. Nothing else changes: stored
regimes keep each filter's reading as data, not in a column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.errors import ConfigError
from core.features import align_to_calendar, realised_volatility, rolling_zscore, sma

TRADING_DAYS_PER_YEAR = 252  # annualisation, as backtest.metrics.TRADING_DAYS
MAX_WINDOW = 2520
Side = Literal["below", "above"]

# Feature-table columns that stand for an input series (or a ratio of two): the
# published filters read the stored features, so served and recomputed values agree.
FEATURE_SERIES: Mapping[str, str] = MappingProxyType(
    {
        "SPY": "spy_close",
        "^VIX": "vix",
        "^VIX3M": "vix3m",
        "^VIX/^VIX3M": "vix_vix3m",
        "HYG/IEF": "hyg_ief",
    }
)


def ratio_key(numerator: str, denominator: str) -> str:
    return f"{numerator}/{denominator}"


def filter_inputs(
    features: pd.DataFrame, closes: Mapping[str, pd.Series] | None = None
) -> pd.DataFrame:
    """Series by symbol on the feature calendar (see the module docstring)."""
    calendar = features.index
    columns = {key: features[name] for key, name in FEATURE_SERIES.items() if name in features}
    for symbol, series in (closes or {}).items():
        if symbol not in columns:
            clean = series.dropna().astype(float).sort_index()
            columns[symbol] = align_to_calendar(clean, pd.DatetimeIndex(calendar))
    frame = pd.DataFrame(columns, index=calendar)
    return frame.astype(float)


def closes_needed(specs: tuple[FilterSpec, ...] | list[FilterSpec], *more: str) -> list[str]:
    """Symbols whose closes must be loaded besides the feature table to read ``specs``
    (and the symbols ``more``, e.g. a vol-target asset)."""
    needed: set[str] = {s for s in more if s not in FEATURE_SERIES}
    for spec in specs:
        if len(spec.inputs) == 2 and ratio_key(*spec.inputs) in FEATURE_SERIES:
            continue
        needed |= {s for s in spec.inputs if s not in FEATURE_SERIES}
    return sorted(needed)


def _series(frame: pd.DataFrame, symbols: tuple[str, ...]) -> pd.Series:
    """One input, or the ratio of two (a stored ratio column is read as it is)."""
    if len(symbols) == 2 and ratio_key(*symbols) in frame:
        return frame[ratio_key(*symbols)]
    missing = [s for s in symbols if s not in frame]
    if missing:
        # No data for a symbol: the filter is unavailable on every day, as before
        # VIX3M existed; the rule set's unavailable policy decides.
        return pd.Series(np.nan, index=frame.index, dtype=float)
    if len(symbols) == 1:
        return frame[symbols[0]]
    return frame[symbols[0]] / frame[symbols[1]]


# --- readings of each kind ------------------------------------------------------------


def _level(frame: pd.DataFrame, inputs: tuple[str, ...], p: Mapping[str, float]) -> pd.Series:
    return _series(frame, inputs)


def _sma_ratio(frame: pd.DataFrame, inputs: tuple[str, ...], p: Mapping[str, float]) -> pd.Series:
    close = _series(frame, inputs)
    return close / sma(close, int(p["window"]))


def _ema_ratio(frame: pd.DataFrame, inputs: tuple[str, ...], p: Mapping[str, float]) -> pd.Series:
    close = _series(frame, inputs)
    window = int(p["window"])
    ema = close.ewm(span=window, adjust=False, min_periods=window).mean()
    return close / ema


def _crossover(frame: pd.DataFrame, inputs: tuple[str, ...], p: Mapping[str, float]) -> pd.Series:
    close = _series(frame, inputs)
    return sma(close, int(p["fast"])) / sma(close, int(p["slow"]))


def _slope(frame: pd.DataFrame, inputs: tuple[str, ...], p: Mapping[str, float]) -> pd.Series:
    """Least-squares slope of ln(close) on the day number over the window, times 252:
    the annualised log growth rate of the fitted line."""
    close = _series(frame, inputs)
    window = int(p["window"])
    logs = np.log(close.to_numpy(dtype=float))
    out = np.full(len(logs), np.nan)
    if len(logs) >= window:
        views = np.lib.stride_tricks.sliding_window_view(logs, window)
        t = np.arange(window, dtype=float) - (window - 1) / 2.0
        out[window - 1 :] = views @ t / float(t @ t)  # NaN in a window -> NaN slope
    return pd.Series(out * TRADING_DAYS_PER_YEAR, index=close.index)


def _zscore(frame: pd.DataFrame, inputs: tuple[str, ...], p: Mapping[str, float]) -> pd.Series:
    return rolling_zscore(_series(frame, inputs), int(p["window"]))


def _term_slope(frame: pd.DataFrame, inputs: tuple[str, ...], p: Mapping[str, float]) -> pd.Series:
    """(short - long) / middle: positive when the volatility curve is inverted."""
    short, middle, long = (_series(frame, (symbol,)) for symbol in inputs)
    return (short - long) / middle


def _rv_iv(frame: pd.DataFrame, inputs: tuple[str, ...], p: Mapping[str, float]) -> pd.Series:
    """Realised volatility of the asset (annualised, in percent, sample std of daily
    simple returns over the window) over the implied volatility index level."""
    close = _series(frame, inputs[:1])
    realised = realised_volatility(close / close.shift(1) - 1.0, int(p["window"]))
    return realised * math.sqrt(TRADING_DAYS_PER_YEAR) * 100.0 / _series(frame, inputs[1:])


def _rv_ratio(frame: pd.DataFrame, inputs: tuple[str, ...], p: Mapping[str, float]) -> pd.Series:
    """Realised volatility over the last ``fast`` days over that of the last ``slow``
    days (sample std of daily simple returns): above 1 when the market is moving more
    than it has over the year. The volatility reading of a market with no implied
    volatility index."""
    close = _series(frame, inputs)
    returns = close / close.shift(1) - 1.0
    fast = realised_volatility(returns, int(p["fast"]))
    return fast / realised_volatility(returns, int(p["slow"]))


Reading = Callable[[pd.DataFrame, tuple[str, ...], Mapping[str, float]], pd.Series]


@dataclass(frozen=True)
class FilterKind:
    """A kind of filter: how many inputs, which parameters (with defaults), how it reads."""

    name: str
    inputs: tuple[int, ...]  # accepted input counts
    params: Mapping[str, float]
    detail: str  # formatted with the inputs (a, b, c) and params
    reading: Reading
    example: Mapping[str, Any] = field(default_factory=dict)  # defaults of a typical filter


def _kind(name, arity, params, detail, reading, **example) -> FilterKind:  # type: ignore[no-untyped-def]
    return FilterKind(name, arity, MappingProxyType(params), detail, reading, example)


FILTER_KINDS: Mapping[str, FilterKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            _kind(
                "level",
                (1, 2),
                {},
                "{series}",
                _level,
                inputs=["^VIX", "^VIX3M"],
                threshold=1.0,
                fires="above",
            ),
            _kind(
                "sma_ratio",
                (1, 2),
                {"window": 200},
                "{series} / SMA{window}",
                _sma_ratio,
                inputs=["SPY"],
                threshold=1.0,
                fires="below",
            ),
            _kind(
                "ema_ratio",
                (1, 2),
                {"window": 200},
                "{series} / EMA{window}",
                _ema_ratio,
                inputs=["SPY"],
                threshold=1.0,
                fires="below",
            ),
            _kind(
                "sma_crossover",
                (1, 2),
                {"fast": 50, "slow": 200},
                "SMA{fast} / SMA{slow} of {series}",
                _crossover,
                inputs=["SPY"],
                threshold=1.0,
                fires="below",
            ),
            _kind(
                "regression_slope",
                (1, 2),
                {"window": 100},
                "annualised log slope of {series}, {window}d",
                _slope,
                inputs=["SPY"],
                threshold=0.0,
                fires="below",
            ),
            _kind(
                "zscore",
                (1, 2),
                {"window": 252},
                "{series} z-score, {window}d",
                _zscore,
                inputs=["HYG", "IEF"],
                threshold=-1.0,
                fires="below",
            ),
            _kind(
                "term_slope",
                (3,),
                {},
                "({a} - {c}) / {b}",
                _term_slope,
                inputs=["^VIX9D", "^VIX", "^VIX3M"],
                threshold=0.0,
                fires="above",
            ),
            _kind(
                "realised_vol_ratio",
                (1,),
                {"fast": 20, "slow": 250},
                "{series} realised vol {fast}d / {slow}d",
                _rv_ratio,
                inputs=["QQQ"],
                threshold=1.5,
                fires="above",
            ),
            _kind(
                "realised_implied",
                (2,),
                {"window": 20},
                "{a} realised vol {window}d / {b}",
                _rv_iv,
                inputs=["SPY", "^VIX"],
                threshold=1.0,
                fires="above",
            ),
        )
    }
)


@dataclass(frozen=True)
class FilterSpec:
    """One filter of a rule set, as data (frozen, hashable, JSON by ``to_dict``)."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    threshold: float
    fires: Side
    params: tuple[tuple[str, float], ...] = ()  # every parameter of the kind, sorted
    weight: float = 1.0

    @classmethod
    def of(
        cls,
        name: str,
        kind: str,
        inputs: tuple[str, ...] | list[str] | None = None,
        *,
        threshold: float | None = None,
        fires: Side | None = None,
        params: Mapping[str, float] | None = None,
        weight: float = 1.0,
    ) -> FilterSpec:
        """A checked filter; missing inputs, threshold, side and parameters take the
        kind's defaults."""
        definition = FILTER_KINDS.get(kind)
        if definition is None:
            raise ConfigError(
                f"filter {name!r}: unknown kind {kind!r}; choose one of {sorted(FILTER_KINDS)}"
            )
        given = dict(params or {})
        unknown = sorted(set(given) - set(definition.params))
        if unknown:
            raise ConfigError(
                f"filter {name!r}: kind {kind!r} takes no parameter {unknown[0]!r} "
                f"(parameters: {sorted(definition.params) or 'none'})"
            )
        merged = {**definition.params, **given}
        example = definition.example
        spec = cls(
            name=name,
            kind=kind,
            inputs=tuple(inputs if inputs is not None else example["inputs"]),
            threshold=float(example["threshold"] if threshold is None else threshold),
            fires=fires or example["fires"],
            params=tuple(sorted((k, _number(v)) for k, v in merged.items())),
            weight=float(weight),
        )
        return spec.validate()

    @property
    def parameters(self) -> dict[str, float]:
        return dict(self.params)

    @property
    def reading_key(self) -> tuple:
        """What the reading depends on: equal keys read the same series."""
        return (self.kind, self.inputs, self.params)

    def validate(self) -> FilterSpec:
        where = f"filter {self.name!r}"
        if not self.name or len(self.name) > 32 or not self.name.replace("_", "").isalnum():
            raise ConfigError(f"{where}: name must be 1-32 letters, digits or '_'")
        kind = FILTER_KINDS.get(self.kind)
        if kind is None:
            raise ConfigError(f"{where}: unknown kind {self.kind!r}")
        if len(self.inputs) not in kind.inputs:
            raise ConfigError(
                f"{where}: kind {self.kind!r} reads {' or '.join(map(str, kind.inputs))} "
                f"input(s), got {len(self.inputs)}"
            )
        if any(not isinstance(s, str) or not s or len(s) > 32 for s in self.inputs):
            raise ConfigError(f"{where}: inputs must be symbols of 1-32 characters")
        if self.fires not in ("below", "above"):
            raise ConfigError(f"{where}: fires must be 'below' or 'above', got {self.fires!r}")
        if not math.isfinite(self.threshold):
            raise ConfigError(f"{where}: threshold must be a finite number")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ConfigError(f"{where}: weight must be a positive number, got {self.weight!r}")
        for key, value in self.params:
            if key in ("window", "fast", "slow") and not 2 <= value <= MAX_WINDOW:
                raise ConfigError(
                    f"{where}: {key} must be between 2 and {MAX_WINDOW} days, got {value:g}"
                )
        params = self.parameters
        if "fast" in params and params["fast"] >= params["slow"]:
            raise ConfigError(f"{where}: fast window must be shorter than slow")
        return self

    def detail(self) -> str:
        names = dict(zip("abc", self.inputs, strict=False))
        series = "/".join(self.inputs)
        values = {k: f"{v:g}" for k, v in self.params}
        return FILTER_KINDS[self.kind].detail.format(series=series, **names, **values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "inputs": list(self.inputs),
            "params": self.parameters,
            "threshold": self.threshold,
            "fires": self.fires,
            "weight": self.weight,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FilterSpec:
        if not isinstance(data, Mapping):
            raise ConfigError("each filter must be an object")
        unknown = sorted(
            set(data) - {"name", "kind", "inputs", "params", "threshold", "fires", "weight"}
        )
        if unknown:
            raise ConfigError(f"filter {data.get('name')!r}: unknown field {unknown[0]!r}")
        for key in ("name", "kind"):
            if not isinstance(data.get(key), str):
                raise ConfigError(f"filter: field {key!r} is required (a string)")
        try:
            return cls.of(
                data["name"],
                data["kind"],
                data.get("inputs"),
                threshold=data.get("threshold"),
                fires=data.get("fires"),
                params=data.get("params"),
                weight=data.get("weight", 1.0),
            )
        except (TypeError, ValueError) as error:
            raise ConfigError(f"filter {data['name']!r}: {error}") from None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"parameter values must be numbers, got {value!r}")
    return float(value)


class Readings:
    """Filter readings over one input frame, each computed once per distinct
    (kind, inputs, params): many rule sets sharing a filter pay for it once."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._cache: dict[tuple, np.ndarray] = {}

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.frame.index)

    def read(self, spec: FilterSpec) -> np.ndarray:
        key = spec.reading_key
        if key not in self._cache:
            kind = FILTER_KINDS[spec.kind]
            series = kind.reading(self.frame, spec.inputs, spec.parameters)
            values = np.array(series.to_numpy(dtype=float), dtype=float)  # a copy
            values[~np.isfinite(values)] = np.nan  # a zero divisor is no reading
            self._cache[key] = values
        return self._cache[key]

    def returns(self, symbol: str) -> np.ndarray:
        """Daily simple returns of ``symbol`` on the calendar (NaN where unknown)."""
        key = ("__returns__", symbol)
        if key not in self._cache:
            close = _series(self.frame, (symbol,))
            self._cache[key] = (close / close.shift(1) - 1.0).to_numpy(dtype=float)
        return self._cache[key]
