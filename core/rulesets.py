"""Rule sets as data: filters, a vote table or a continuous score, hysteresis and a
volatility-target overlay, in one frozen, hashable, JSON-serialisable definition.

``RuleSetDefinition.fingerprint`` is the sha256 of its canonical JSON (sorted
keys, no spaces): the same definition has the same fingerprint everywhere (the
registry, every served answer, every backtest).

``evaluate(definition, readings)`` is the one evaluation, on arrays: each filter's
reading comes from core.filters.Readings (computed once per distinct kind, inputs
and parameters), then thresholds and sides give states, weighted votes (or the
weighted score) give the raw regime, hysteresis confirms and holds it, and the
vol-target overlay scales the exposure. Row t reads rows <= t only.

- Vote table (``score`` absent): votes = sum of the weights of firing filters
  (plus unavailable ones under the ``firing`` policy); core.rules.RegimeTable maps
  them to risk-on / caution / risk-off and an exposure.
- Continuous score (``score`` given): score = sum of weight * reading over the
  filters with input; exposure = the piecewise-linear map through ``points``
  (clipped at both ends); the regime is risk-on at the map's highest exposure,
  risk-off at its lowest, caution between. Hysteresis needs a vote table.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from core.enums import FilterState, UnavailablePolicy
from core.errors import ConfigError
from core.filters import TRADING_DAYS_PER_YEAR, FilterSpec, Readings, closes_needed
from core.regimes import Hysteresis, RegimeTable, apply_hysteresis, regime_names

MAX_LEVERAGE = 3.0  # as core.policies.MAX_LEVERAGE
STATE_NAMES = np.array(
    [FilterState.CLEAR.value, FilterState.FIRING.value, FilterState.UNAVAILABLE.value],
    dtype=object,
)
# Registered names: short enough for the ledger's policy column ("rule_set:" + name).
REGISTERED_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,22}$")


def canonical_json(document: Any) -> str:
    """Sorted keys, no spaces, no NaN: the serialisation fingerprints are taken of
    (the same as the publication ledger's)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class VolTarget:
    """Exposure scaled by target / realised volatility of ``asset``, capped."""

    target_volatility: float = 0.10  # annualised
    lookback_days: int = 20
    max_leverage: float = 1.0
    asset: str = "SPY"

    def validate(self) -> VolTarget:
        if not 0.0 < self.target_volatility <= 1.0:
            raise ConfigError("vol_target.target_volatility must be in (0, 1]")
        if not 2 <= self.lookback_days <= 252:
            raise ConfigError("vol_target.lookback_days must be between 2 and 252")
        if not 0.0 < self.max_leverage <= MAX_LEVERAGE:
            raise ConfigError(f"vol_target.max_leverage must be in (0, {MAX_LEVERAGE}]")
        return self


def vol_target_exposure(
    base: np.ndarray,
    asset_returns: pd.Series,
    *,
    target_volatility: float,
    lookback_days: int,
    max_leverage: float,
) -> np.ndarray:
    """Base exposure times target / realised volatility, capped at ``max_leverage``.

    Realised volatility on day t: sample std of the asset's daily returns over the
    ``lookback_days`` days ending at close t, times sqrt(252). NaN until the lookback
    is full or where the base is NaN; a zero base stays 0; zero volatility -> the cap.
    """
    from core.features import realised_volatility

    realised = (
        realised_volatility(asset_returns, lookback_days) * math.sqrt(TRADING_DAYS_PER_YEAR)
    ).to_numpy(dtype=float)
    scale = np.full(realised.shape, np.inf)
    np.divide(target_volatility, realised, out=scale, where=realised > 0.0)
    exposure = np.where(base == 0.0, 0.0, np.minimum(base * scale, max_leverage))
    exposure[np.isnan(realised) | np.isnan(base)] = np.nan
    return exposure


@dataclass(frozen=True)
class ScoreMap:
    """Score -> exposure through (score, exposure) points, linear between, flat outside."""

    points: tuple[tuple[float, float], ...]

    def validate(self) -> ScoreMap:
        if len(self.points) < 2:
            raise ConfigError("score.points needs at least two [score, exposure] points")
        xs = [x for x, _ in self.points]
        if any(b <= a for a, b in zip(xs, xs[1:], strict=False)):
            raise ConfigError("score.points must have strictly increasing scores")
        for x, y in self.points:
            if not math.isfinite(x) or not 0.0 <= y <= MAX_LEVERAGE:
                raise ConfigError(
                    f"score.points: scores must be finite, exposures in [0, {MAX_LEVERAGE}]"
                )
        return self

    def exposure(self, score: np.ndarray) -> np.ndarray:
        xs, ys = zip(*self.points, strict=True)
        out = np.interp(score, xs, ys)
        out[np.isnan(score)] = np.nan
        return out

    def regime_codes(self, exposure: np.ndarray) -> np.ndarray:
        ys = [y for _, y in self.points]
        codes = np.where(exposure >= max(ys), 0.0, np.where(exposure <= min(ys), 2.0, 1.0))
        return np.where(np.isnan(exposure), np.nan, codes)


@dataclass(frozen=True)
class RuleSetDefinition:
    """A rule set as data. Frozen and hashable: a changed definition is a new value."""

    name: str
    filters: tuple[FilterSpec, ...]
    table: RegimeTable = field(default_factory=RegimeTable)
    unavailable: UnavailablePolicy = UnavailablePolicy.ABSTAIN
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
    score: ScoreMap | None = None
    vol_target: VolTarget | None = None

    def validate(self) -> RuleSetDefinition:
        if not self.name or len(self.name) > 48:
            raise ConfigError("rule set name must be 1-48 characters")
        if not self.filters:
            raise ConfigError(f"rule set {self.name!r} has no filter")
        names = [f.name for f in self.filters]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ConfigError(f"rule set {self.name!r}: two filters named {duplicate!r}")
        for spec in self.filters:
            spec.validate()
        if self.score is not None:
            self.score.validate()
            if self.hysteresis != Hysteresis():
                raise ConfigError(
                    "hysteresis confirms regimes of a vote table; a continuous score takes none"
                )
        else:
            self.table.validate()
            for label, value in asdict(self.table).items():
                if label.endswith("exposure") and not 0.0 <= value <= MAX_LEVERAGE:
                    raise ConfigError(f"table.{label} must be between 0 and {MAX_LEVERAGE}")
        self.hysteresis.validate()
        if self.vol_target is not None:
            self.vol_target.validate()
        return self

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every input symbol the rule set reads (vol-target asset included)."""
        found = {s for f in self.filters for s in f.inputs}
        if self.vol_target is not None:
            found.add(self.vol_target.asset)
        return tuple(sorted(found))

    def lookback_rows(self) -> int | None:
        """How many rows before a day its answer reads, at most; None when unbounded
        (an EMA, or hysteresis, whose state depends on the whole history). A bounded
        rule set recomputed from a day with that many rows before it equals a full
        recomputation (store.pipeline.refresh_regimes' ``since``)."""
        if self.hysteresis != Hysteresis() or any(f.kind == "ema_ratio" for f in self.filters):
            return None
        # +1: a return reads the day before its first row.
        rows = [int(value) + 1 for f in self.filters for _, value in f.params]
        if self.vol_target is not None:
            rows.append(self.vol_target.lookback_days + 1)
        return max(rows, default=1)

    def closes_needed(self) -> list[str]:
        """Symbols to load besides the feature table (core.filters.closes_needed)."""
        asset = () if self.vol_target is None else (self.vol_target.asset,)
        return closes_needed(self.filters, *asset)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "filters": [f.to_dict() for f in self.filters],
            "table": asdict(self.table),
            "unavailable": self.unavailable.value,
            "hysteresis": asdict(self.hysteresis),
            "score": None
            if self.score is None
            else {"points": [list(p) for p in self.score.points]},
            "vol_target": None if self.vol_target is None else asdict(self.vol_target),
        }

    @cached_property  # a frozen value: computed once, read on every request
    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the definition."""
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()

    @cached_property
    def version(self) -> str:
        """The key its stored regimes are kept under: name and fingerprint."""
        return f"{self.name}-{self.fingerprint[:8]}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleSetDefinition:
        """A checked definition from JSON; a bad field is a ConfigError naming it."""
        if not isinstance(data, Mapping):
            raise ConfigError("a rule set definition must be a JSON object")
        known = {"name", "filters", "table", "unavailable", "hysteresis", "score", "vol_target"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"rule set: unknown field {unknown[0]!r} (fields: {sorted(known)})")
        if not isinstance(data.get("name"), str):
            raise ConfigError("rule set: field 'name' is required (a string)")
        filters = data.get("filters")
        if not isinstance(filters, Sequence) or isinstance(filters, str) or not filters:
            raise ConfigError("rule set: field 'filters' must be a non-empty list")
        try:
            unavailable = UnavailablePolicy(data.get("unavailable", "abstain"))
        except ValueError:
            raise ConfigError("rule set: 'unavailable' must be 'abstain' or 'firing'") from None
        score = data.get("score")
        vol = data.get("vol_target")
        return cls(
            name=data["name"],
            filters=tuple(FilterSpec.from_dict(f) for f in filters),
            table=_part(RegimeTable, data.get("table"), "table"),
            unavailable=unavailable,
            hysteresis=_part(Hysteresis, data.get("hysteresis"), "hysteresis"),
            score=None if score is None else _score(score),
            vol_target=None if vol is None else _part(VolTarget, vol, "vol_target"),
        ).validate()


def _part(kind: type, data: Any, label: str) -> Any:
    if data is None:
        return kind()
    if not isinstance(data, Mapping):
        raise ConfigError(f"rule set: {label!r} must be an object")
    fields = set(kind.__dataclass_fields__)
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"rule set: {label}.{unknown[0]} is not a field ({sorted(fields)})")
    values: dict[str, Any] = {}
    for key, value in data.items():
        default = getattr(kind(), key)
        if isinstance(default, str):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"rule set: {label}.{key} must be a non-empty string")
            values[key] = value
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(f"rule set: {label}.{key} must be a number")
        whole = float(value).is_integer()
        if isinstance(default, int) and key.endswith("days") and not whole:
            raise ConfigError(f"rule set: {label}.{key} must be a whole number of days")
        if isinstance(default, int):
            # Vote thresholds may be fractional under weighted votes; a whole one is
            # kept as an int so equal tables have one canonical JSON.
            values[key] = int(value) if whole else float(value)
        else:
            values[key] = float(value)
    return kind(**values)


def _score(data: Any) -> ScoreMap:
    points = data.get("points") if isinstance(data, Mapping) else None
    if not isinstance(points, Sequence) or not all(
        isinstance(p, Sequence) and len(p) == 2 for p in points
    ):
        raise ConfigError("rule set: score.points must be a list of [score, exposure] pairs")
    try:
        return ScoreMap(tuple((float(x), float(y)) for x, y in points))
    except (TypeError, ValueError):
        raise ConfigError("rule set: score.points must hold numbers") from None


@dataclass(frozen=True)
class Evaluation:
    """A rule set's daily readings and decisions on a calendar (arrays)."""

    index: pd.DatetimeIndex
    names: tuple[str, ...]
    values: np.ndarray  # (days, filters) readings, NaN unavailable
    states: np.ndarray  # (days, filters) 0 clear, 1 firing, 2 unavailable
    available: np.ndarray  # filters with input
    votes: np.ndarray  # weighted votes (vote table) or the score (continuous)
    regime_code: np.ndarray  # 0 risk-on, 1 caution, 2 risk-off, NaN no input
    exposure: np.ndarray  # after hysteresis and the overlay; NaN without input
    no_input: np.ndarray  # bool: no filter had input
    policy_code: np.ndarray  # the regime the unavailable policy gives days without input

    def frame(self) -> pd.DataFrame:
        """``<filter>_value``, ``<filter>_state`` per filter, then ``available``,
        ``votes``, ``regime_code``, ``regime`` and ``exposure`` (core.rules' layout)."""
        columns: dict[str, Any] = {}
        for j, name in enumerate(self.names):
            columns[f"{name}_value"] = self.values[:, j]
            columns[f"{name}_state"] = pd.Series(
                STATE_NAMES[self.states[:, j]], dtype=object, index=self.index
            )
        columns["available"] = self.available
        votes = self.votes
        if np.all(np.isfinite(votes)) and np.all(votes == np.round(votes)):
            votes = votes.astype(int)
        columns["votes"] = votes
        codes = pd.Series(self.regime_code, index=self.index)
        columns["regime_code"] = codes
        columns["regime"] = regime_names(codes)
        columns["exposure"] = self.exposure
        return pd.DataFrame(columns, index=self.index)

    def readings(self) -> list[dict[str, list]]:
        """Per day, {filter: [value or None, state]}: what the store keeps."""
        values = np.where(np.isnan(self.values), None, self.values).tolist()
        states = STATE_NAMES[self.states].tolist()
        return [
            {name: [v, s] for name, v, s in zip(self.names, vrow, srow, strict=True)}
            for vrow, srow in zip(values, states, strict=True)
        ]


def evaluate(
    definition: RuleSetDefinition, readings: Readings, *, fill_no_input: bool = False
) -> Evaluation:
    """The rule set's readings, states, votes, regime and exposure per day.

    ``fill_no_input``: days where no filter has input take the regime the
    unavailable policy's votes give (a backtest needs a position every day; the
    served answer has none there)."""
    definition.validate()
    n = len(readings.index)
    k = len(definition.filters)
    values = np.empty((n, k))
    states = np.empty((n, k), dtype=np.int8)
    available = np.zeros(n, dtype=int)
    votes = np.zeros(n)
    score = np.zeros(n)
    count_unavailable = definition.unavailable is UnavailablePolicy.FIRING
    for j, spec in enumerate(definition.filters):
        value = readings.read(spec)
        missing = np.isnan(value)
        with np.errstate(invalid="ignore"):
            fires = value < spec.threshold if spec.fires == "below" else value > spec.threshold
        values[:, j] = value
        states[:, j] = np.where(missing, 2, fires.astype(np.int8))
        available += ~missing
        votes += spec.weight * (fires & ~missing)
        if count_unavailable:
            votes += spec.weight * missing
        score += np.where(missing, 0.0, spec.weight * value)
    no_input = available == 0
    if definition.score is None:
        raw = np.where(no_input, np.nan, definition.table.regime_codes(votes).astype(float))
        codes = apply_hysteresis(pd.Series(raw, index=readings.index), definition.hysteresis)
        regime_code = codes.to_numpy(dtype=float)
        policy_code = definition.table.regime_codes(votes).astype(float)
        if fill_no_input:
            regime_code = np.where(no_input, policy_code, regime_code)
        exposure = definition.table.exposure_of_codes(regime_code)
    else:
        votes = np.where(no_input, np.nan, score)
        exposure = definition.score.exposure(votes)
        regime_code = definition.score.regime_codes(exposure)
        policy_code = np.full(n, np.nan)  # a score without input has no exposure
    if definition.vol_target is not None:
        overlay = definition.vol_target
        exposure = vol_target_exposure(
            exposure,
            pd.Series(readings.returns(overlay.asset), index=readings.index),
            target_volatility=overlay.target_volatility,
            lookback_days=overlay.lookback_days,
            max_leverage=overlay.max_leverage,
        )
    return Evaluation(
        index=readings.index,
        names=tuple(f.name for f in definition.filters),
        values=values,
        states=states,
        available=available,
        votes=votes,
        regime_code=regime_code,
        exposure=exposure,
        no_input=no_input,
        policy_code=policy_code,
    )
