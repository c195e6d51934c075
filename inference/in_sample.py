"""Saying so when stored model outputs were produced on the model's own training data."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import pandas as pd


class ModelHistory(StrEnum):
    """Which outputs a model history (``/regimes``, ``POST /backtest``) reads for the days
    a version was fitted on."""

    # The version's walk-forward refits (trained before each day) up to its in-sample
    # cut-off, its own outputs after it; days without either have no model output.
    # A version that ships no walk-forward history serves its own, flagged, outputs.
    OUT_OF_SAMPLE = "out_of_sample"
    IN_SAMPLE = "in_sample"  # the version's own outputs on every day, flagged in_sample


def in_sample_note(
    in_sample: pd.Series, *, version: str, start: dt.date | None, end: dt.date | None
) -> str | None:
    """A warning naming how many days of ``start``..``end`` (None: open) were inside the
    training data of ``version``; None when none were.

    ``in_sample`` is indexed by date: 1.0 in sample, 0.0 out of sample, NaN unknown
    (outputs stored before the flag was recorded, counted apart)."""
    period = in_sample.loc[
        (None if start is None else pd.Timestamp(start)) : (
            None if end is None else pd.Timestamp(end)
        )
    ]
    inside = int((period == 1.0).sum())
    unknown = int(period.isna().sum())
    if inside == 0 and unknown == 0:
        return None
    parts = []
    if inside:
        days = period.index[period == 1.0]
        parts.append(
            f"{inside} of {len(period)} model output day(s) ({days[0].date()} to "
            f"{days[-1].date()}) lie inside the training data of model {version}: the "
            "model strategies' results on them are in-sample and overstate what it does "
            "on days it has not seen"
        )
    if unknown:
        parts.append(
            f"{unknown} model output day(s) do not record whether they were in-sample "
            "(stored before the flag existed; re-activate the model to record it)"
        )
    return "; ".join(parts)
