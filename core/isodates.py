"""Dates and times as clients write them: ISO 8601 text, nothing else.

pydantic reads a number as a date or a time (Unix seconds, or milliseconds), so
``"start": 1325376000`` or ``?start=0`` would silently be a day nobody wrote.
``IsoDate`` takes ``YYYY-MM-DD`` text (and date objects, which YAML configurations
give); ``IsoDateTime`` takes ``YYYY-MM-DD``, optionally followed by ``THH:MM[:SS[.f]]``
and ``Z`` or an offset, and only a time that exists in UTC (an offset can push
9999-12-31 past the last representable year).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?)?"
)
DATE_FORMAT = "must be an ISO date, YYYY-MM-DD"
DATETIME_FORMAT = "must be an ISO 8601 date or time, e.g. 2024-01-31 or 2024-01-31T22:00:00Z"


def iso_date(value: Any) -> Any:
    """``value`` unchanged when it is ISO date text or a date; ValueError otherwise."""
    if isinstance(value, str):
        if not ISO_DATE.fullmatch(value):
            raise ValueError(DATE_FORMAT)
        return value
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raise ValueError(DATE_FORMAT)


def iso_datetime(value: Any) -> Any:
    """``value`` unchanged when it is ISO 8601 text (or a datetime) of a moment that has a
    UTC equivalent; ValueError otherwise."""
    if isinstance(value, str):
        if not ISO_DATETIME.fullmatch(value):
            raise ValueError(DATETIME_FORMAT)
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{DATETIME_FORMAT} (not a real date or time)") from None
    elif isinstance(value, dt.datetime):
        moment = value
    else:
        raise ValueError(DATETIME_FORMAT)
    if moment.tzinfo is not None:
        try:
            moment.astimezone(dt.UTC)
        except OverflowError:
            raise ValueError("is outside the years 0001-9999 once in UTC") from None
    return value


IsoDate = Annotated[dt.date, BeforeValidator(iso_date)]
IsoDateTime = Annotated[dt.datetime, BeforeValidator(iso_datetime)]
