"""Regimes: their order, the vote table that maps votes to a regime and an exposure,
and hysteresis. Shared by the preset rule engine (core.rules) and rule sets as data
(core.rulesets); imports neither, so neither imports the other through it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.enums import Regime
from core.errors import ConfigError

# Severity order: the integer code of a regime is its position here.
REGIME_ORDER: tuple[Regime, ...] = (Regime.RISK_ON, Regime.CAUTION, Regime.RISK_OFF)


@dataclass(frozen=True)
class RegimeTable:
    """Votes -> regime -> exposure: >= risk_off_votes is risk-off, >= caution_votes caution."""

    caution_votes: int = 1
    risk_off_votes: int = 2
    risk_on_exposure: float = 1.0
    caution_exposure: float = 0.5
    risk_off_exposure: float = 0.0

    def validate(self) -> None:
        if not 0 < self.caution_votes <= self.risk_off_votes:
            raise ConfigError(
                "regime table needs 0 < caution_votes <= risk_off_votes, got "
                f"{self.caution_votes} and {self.risk_off_votes}"
            )

    def exposure(self, regime: Regime) -> float:
        return {
            Regime.RISK_ON: self.risk_on_exposure,
            Regime.CAUTION: self.caution_exposure,
            Regime.RISK_OFF: self.risk_off_exposure,
        }[regime]

    def regime_codes(self, votes: np.ndarray) -> np.ndarray:
        """Integer regime code (position in REGIME_ORDER) for each vote count."""
        return np.where(
            votes >= self.risk_off_votes, 2, np.where(votes >= self.caution_votes, 1, 0)
        )

    def exposure_of_codes(self, codes: np.ndarray) -> np.ndarray:
        """Exposure per regime code; NaN codes give NaN exposure."""
        lookup = np.array([self.exposure(r) for r in REGIME_ORDER], dtype=float)
        out = np.full(codes.shape, np.nan)
        valid = ~np.isnan(codes)
        out[valid] = lookup[codes[valid].astype(int)]
        return out


@dataclass(frozen=True)
class Hysteresis:
    """Off by default (1 and 1). A new regime takes effect only after
    ``confirm_days`` consecutive days of it, and once in effect is held at least
    ``min_dwell_days`` days."""

    confirm_days: int = 1
    min_dwell_days: int = 1

    def validate(self) -> None:
        days = (("confirm_days", self.confirm_days), ("min_dwell_days", self.min_dwell_days))
        for label, value in days:
            if not 1 <= value <= 250:
                raise ConfigError(f"hysteresis {label} must be between 1 and 250, got {value!r}")


def apply_hysteresis(codes: pd.Series, hysteresis: Hysteresis) -> pd.Series:
    """Regime codes after confirmation and minimum dwell; NaN stays NaN."""
    if hysteresis.confirm_days > 1:
        run_id = (codes != codes.shift()).cumsum()
        run_length = codes.groupby(run_id).cumcount() + 1
        first_run = run_id == run_id[codes.notna()].min() if codes.notna().any() else run_id < 0
        confirmed = codes.where((run_length >= hysteresis.confirm_days) | first_run)
        codes = confirmed.ffill().where(codes.notna())
    if hysteresis.min_dwell_days > 1:
        # Sequential by nature (each hold depends on the previous switch); it
        # loops only when the option is on.
        values = codes.to_numpy(dtype=float).copy()
        held_since = -(10**9)
        current = np.nan
        for i, raw in enumerate(values):
            if np.isnan(raw):
                continue
            if np.isnan(current) or raw == current:
                if np.isnan(current):
                    held_since = i
                current = raw
            elif i - held_since >= hysteresis.min_dwell_days:
                current, held_since = raw, i
            values[i] = current
        codes = pd.Series(values, index=codes.index)
    return codes


def regime_names(codes: pd.Series) -> pd.Series:
    """Regime value strings for integer codes (None for NaN)."""
    names = np.array([r.value for r in REGIME_ORDER], dtype=object)
    values = codes.to_numpy(dtype=float)
    out = np.full(values.shape, None, dtype=object)
    valid = ~np.isnan(values)
    out[valid] = names[values[valid].astype(int)]
    return pd.Series(out, index=codes.index, dtype=object)
