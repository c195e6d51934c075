"""Closed vocabularies of the service, as enums rather than loose strings."""

from __future__ import annotations

from enum import StrEnum


class FilterName(StrEnum):
    TREND = "trend"
    VOLATILITY = "volatility"
    CREDIT = "credit"


class FilterState(StrEnum):
    CLEAR = "clear"
    FIRING = "firing"
    UNAVAILABLE = "unavailable"  # the filter's input does not exist yet on that day


class Regime(StrEnum):
    RISK_ON = "risk-on"
    CAUTION = "caution"
    RISK_OFF = "risk-off"


class UnavailablePolicy(StrEnum):
    """How a filter without input counts in the vote."""

    ABSTAIN = "abstain"  # does not vote; the output says how many filters were available
    FIRING = "firing"  # conservative: a missing input counts as stress


class Policy(StrEnum):
    """What produces the exposure served to trading systems."""

    RULES = "rules"  # the three-filter table
    MODEL = "model"  # the classifier's regime, mapped by a filter or leveraged mapping
    ENSEMBLE = "ensemble"  # the classifier's distressed call as a fourth vote in the table
