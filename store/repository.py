"""Keyword-only query functions over the tables; each takes a Connection.

Reads return pandas objects indexed by a DatetimeIndex named ``date``; writes
are upserts keyed by the table's primary key, run inside the caller's
transaction so a failure leaves nothing half-written.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core.features import FEATURE_COLUMNS, FEATURE_SET_VERSION
from inference.in_sample import ModelHistory
from store.tables import features, model_outputs, model_walk_forward, prices, regimes

# Parameters per statement stay under SQLite's limit of 32766 bound variables.
_BATCH_ROWS = 2000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def upsert(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert rows, replacing those whose primary key already exists. Returns the count."""
    if not rows:
        return 0
    dialect = connection.dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    keys = [column.name for column in table.primary_key.columns]
    for start in range(0, len(rows), _BATCH_ROWS):
        batch = rows[start : start + _BATCH_ROWS]
        statement = insert(table).values(list(batch))
        updates = {column: statement.excluded[column] for column in batch[0] if column not in keys}
        connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates))
    return len(rows)


def _to_date(value: dt.date | str | None) -> dt.date | None:
    if isinstance(value, dt.datetime):  # pd.Timestamp too: a DATE column compares dates
        return value.date()
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def _date_range(column, start, end):  # type: ignore[no-untyped-def]
    conditions = []
    if start is not None:
        conditions.append(column >= _to_date(start))
    if end is not None:
        conditions.append(column <= _to_date(end))
    return conditions


def _tuples(rows: Iterable[Any]) -> list[tuple]:
    # Plain tuples: pandas probes each SQLAlchemy Row for attributes, which is ~5x slower.
    return [tuple(row) for row in rows]


def _frame(rows: Iterable[Any], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(_tuples(rows), columns=list(columns))
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.set_index("date")


# --- prices -----------------------------------------------------------------


def last_price_date(connection: Connection, *, symbol: str) -> dt.date | None:
    return connection.execute(
        select(func.max(prices.c.date)).where(prices.c.symbol == symbol)
    ).scalar()


def price_span(connection: Connection, *, symbol: str) -> tuple[dt.date, dt.date] | None:
    """The first and last stored day of ``symbol`` (None: nothing stored)."""
    first, last = connection.execute(
        select(func.min(prices.c.date), func.max(prices.c.date)).where(prices.c.symbol == symbol)
    ).one()
    return None if first is None else (_to_date(first), _to_date(last))


def load_price_rows(
    connection: Connection,
    *,
    symbol: str,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
) -> pd.DataFrame:
    """Stored OHLC/adj_close/volume of one symbol (between ``start`` and ``end``), by date."""
    columns = ["date", "open", "high", "low", "close", "adj_close", "volume"]
    rows = connection.execute(
        select(*(prices.c[c] for c in columns))
        .where(prices.c.symbol == symbol, *_date_range(prices.c.date, start, end))
        .order_by(prices.c.date)
    )
    return _frame(rows, columns)


def load_closes(
    connection: Connection,
    *,
    symbols: Sequence[str],
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
) -> dict[str, pd.Series]:
    """Adjusted closes (index levels for indices) per symbol; absent symbols are left out."""
    statement = (
        select(prices.c.symbol, prices.c.date, prices.c.adj_close)
        .where(and_(prices.c.symbol.in_(list(symbols)), *_date_range(prices.c.date, start, end)))
        .order_by(prices.c.symbol, prices.c.date)
    )
    frame = pd.DataFrame.from_records(
        _tuples(connection.execute(statement)), columns=["symbol", "date", "adj_close"]
    )
    frame["date"] = pd.to_datetime(frame["date"])
    return {
        symbol: pd.Series(
            group["adj_close"].to_numpy(float),
            index=pd.DatetimeIndex(group["date"], name="date"),
            name=symbol,
        )
        for symbol, group in frame.groupby("symbol", sort=False)
    }


def price_summary(connection: Connection) -> list[dict[str, Any]]:
    """Row count and first/last date per symbol."""
    statement = (
        select(prices.c.symbol, func.count(), func.min(prices.c.date), func.max(prices.c.date))
        .group_by(prices.c.symbol)
        .order_by(prices.c.symbol)
    )
    return [
        {"symbol": symbol, "rows": count, "first": first, "last": last}
        for symbol, count, first, last in connection.execute(statement)
    ]


# --- features ---------------------------------------------------------------


def load_features(
    connection: Connection,
    *,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    version: int = FEATURE_SET_VERSION,
) -> pd.DataFrame:
    """Stored feature table (FEATURE_COLUMNS, NaN for NULL), indexed by date."""
    columns = ["date", *FEATURE_COLUMNS]
    statement = (
        select(*(features.c[c] for c in columns))
        .where(
            and_(
                features.c.feature_set_version == version, *_date_range(features.c.date, start, end)
            )
        )
        .order_by(features.c.date)
    )
    return _frame(connection.execute(statement), columns).astype(float)


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows as dicts with Python scalars, NaN -> None (NULL), dates as dt.date."""
    values = (
        frame.loc[:, list(columns)].astype(object).where(frame.loc[:, list(columns)].notna(), None)
    )
    dates = [d.date() for d in frame.index]
    return [
        {"date": day, **dict(zip(columns, row, strict=True))}
        for day, row in zip(dates, values.itertuples(index=False, name=None), strict=True)
    ]


def write_features(
    connection: Connection, *, table: pd.DataFrame, version: int = FEATURE_SET_VERSION
) -> int:
    """Upsert feature rows (index = date, columns FEATURE_COLUMNS)."""
    now = utcnow()
    rows = _records(table, FEATURE_COLUMNS)
    for row in rows:
        row["feature_set_version"] = version
        row["computed_at"] = now
    return upsert(connection, features, rows)


def changed_rows(
    new: pd.DataFrame,
    old: pd.DataFrame,
    *,
    rtol: float = 1e-12,
    atol: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Rows of ``new`` that are absent from ``old`` or differ in any column (NaN == NaN);
    ``atol`` gives a column's absolute tolerance (none by default)."""
    if old.empty:  # every row is new (the first ingest of a series)
        return new
    old = old.reindex(new.index)
    differs = np.zeros(len(new), dtype=bool)
    for column in new.columns:
        a, b = new[column], old[column] if column in old else pd.Series(np.nan, index=new.index)
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            av, bv = a.to_numpy(float), b.to_numpy(float)
            tolerance = (atol or {}).get(column, 0.0)
            same = np.isclose(av, bv, rtol=rtol, atol=tolerance) | (np.isnan(av) & np.isnan(bv))
        else:
            same = ((a == b) | (a.isna() & b.isna())).to_numpy()
        differs |= ~same
    return new[differs]  # a day absent from ``old`` compares with NaN, so it differs too


# --- regimes ----------------------------------------------------------------

# Stored beside each day's filter readings (the JSON column ``readings``).
REGIME_COLUMNS: tuple[str, ...] = ("available", "votes", "regime", "exposure")


def filter_names(table: pd.DataFrame) -> list[str]:
    """Filters of a regime frame: the ``<filter>_state`` columns, in order."""
    return [column[: -len("_state")] for column in table.columns if column.endswith("_state")]


def write_regimes(connection: Connection, *, table: pd.DataFrame, rule_set_version: str) -> int:
    """Upsert regime rows (index = date; REGIME_COLUMNS and, per filter,
    ``<filter>_value`` / ``<filter>_state``, kept as {filter: [value, state]})."""
    names = filter_names(table)
    frame = table.reindex(columns=list(REGIME_COLUMNS))
    now = utcnow()
    rows = _records(frame, REGIME_COLUMNS)
    pairs = [
        (
            name,
            table[f"{name}_value"].astype(float).tolist(),
            table[f"{name}_state"].tolist(),
        )
        for name in names
    ]
    for i, row in enumerate(rows):
        row["rule_set_version"] = rule_set_version
        row["computed_at"] = now
        row["readings"] = {
            name: [None if math.isnan(values[i]) else values[i], states[i]]
            for name, values, states in pairs
        }
    return upsert(connection, regimes, rows)


def load_regimes(
    connection: Connection,
    *,
    rule_set_version: str,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    limit: int | None = None,
    latest_first: bool = False,
) -> pd.DataFrame:
    """Stored regimes for one rule set version, indexed by date (ascending unless
    latest_first): REGIME_COLUMNS, then ``<filter>_value`` and ``<filter>_state`` for
    every filter in the readings."""
    columns = ["date", *REGIME_COLUMNS, "readings"]
    order = regimes.c.date.desc() if latest_first else regimes.c.date
    statement = (
        select(*(regimes.c[c] for c in columns))
        .where(
            and_(
                regimes.c.rule_set_version == rule_set_version,
                *_date_range(regimes.c.date, start, end),
            )
        )
        .order_by(order)
        .limit(limit)
    )
    frame = _frame(connection.execute(statement), columns)
    readings = [
        json.loads(item) if isinstance(item, str) else (item or {})
        for item in frame.pop("readings")
    ]
    names: dict[str, None] = {}
    for item in readings:
        names.update(dict.fromkeys(item))
    for name in names:
        pairs = [item.get(name, (None, None)) for item in readings]
        frame[f"{name}_value"] = pd.Series(
            [np.nan if v is None else v for v, _ in pairs], index=frame.index, dtype=float
        )
        frame[f"{name}_state"] = pd.Series([s for _, s in pairs], index=frame.index, dtype=object)
    frame["exposure"] = frame["exposure"].astype(float)
    frame["votes"] = frame["votes"].astype(float)
    return frame


# --- model outputs ----------------------------------------------------------


def write_model_outputs(connection: Connection, *, table: pd.DataFrame, model_version: str) -> int:
    """Upsert daily model outputs (index = date; columns ``regime``, ``p_distressed`` and,
    when given, ``in_sample``: whether the day was inside the model's training data)."""
    now = utcnow()
    columns = ("regime", "p_distressed", *(("in_sample",) if "in_sample" in table else ()))
    rows = _records(table, columns)
    for row in rows:
        row["model_version"] = model_version
        row["computed_at"] = now
        if row["regime"] is not None:
            row["regime"] = int(row["regime"])
        if row.get("in_sample") is not None:
            row["in_sample"] = bool(row["in_sample"])
    return upsert(connection, model_outputs, rows)


def load_model_outputs(
    connection: Connection,
    *,
    model_version: str,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    with_in_sample: bool = False,
) -> pd.DataFrame:
    """Daily ``regime`` (0/1, NaN unknown) and ``p_distressed``, indexed by date; with
    ``with_in_sample`` also ``in_sample`` (1.0 inside the training data, 0.0 after it,
    NaN not recorded)."""
    columns = ["date", "regime", "p_distressed", *(["in_sample"] if with_in_sample else [])]
    statement = (
        select(*(model_outputs.c[c] for c in columns))
        .where(
            and_(
                model_outputs.c.model_version == model_version,
                *_date_range(model_outputs.c.date, start, end),
            )
        )
        .order_by(model_outputs.c.date)
    )
    return _frame(connection.execute(statement), columns).astype(float)


def write_walk_forward_outputs(
    connection: Connection, *, table: pd.DataFrame, model_version: str
) -> int:
    """Replace a version's walk-forward outputs (index = date; ``regime``, ``p_distressed``,
    ``fold_cutoff``: the last day the refit that produced the row could read)."""
    connection.execute(
        model_walk_forward.delete().where(model_walk_forward.c.model_version == model_version)
    )
    now = utcnow()
    rows = _records(table, ("regime", "p_distressed", "fold_cutoff"))
    for row in rows:
        row.update(
            model_version=model_version,
            computed_at=now,
            regime=int(row["regime"]),
            fold_cutoff=_to_date(row["fold_cutoff"]),
        )
    return upsert(connection, model_walk_forward, rows)


def load_walk_forward_outputs(
    connection: Connection,
    *,
    model_version: str,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
) -> pd.DataFrame:
    """A version's walk-forward ``regime``, ``p_distressed`` and ``fold_cutoff`` by date."""
    columns = ["date", "regime", "p_distressed", "fold_cutoff"]
    statement = (
        select(*(model_walk_forward.c[c] for c in columns))
        .where(
            model_walk_forward.c.model_version == model_version,
            *_date_range(model_walk_forward.c.date, start, end),
        )
        .order_by(model_walk_forward.c.date)
    )
    return _frame(connection.execute(statement), columns)


def has_walk_forward(connection: Connection, *, model_version: str) -> bool:
    statement = select(model_walk_forward.c.date).where(
        model_walk_forward.c.model_version == model_version
    )
    return connection.execute(statement.limit(1)).first() is not None


def load_served_model_outputs(
    connection: Connection,
    *,
    model_version: str,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    history: ModelHistory = ModelHistory.OUT_OF_SAMPLE,
) -> pd.DataFrame:
    """The model history served: ``regime``, ``p_distressed`` and ``in_sample`` by date.

    ``in_sample``: the version's own outputs, flagged. ``out_of_sample``: its own outputs
    on days after its in-sample cut-off and its walk-forward outputs on the days before
    (in_sample 0.0); its in-sample days without a walk-forward output are left out. A
    version without a walk-forward history serves its own outputs, flagged, either way."""
    own = load_model_outputs(
        connection, model_version=model_version, start=start, end=end, with_in_sample=True
    )
    if history is ModelHistory.IN_SAMPLE or not has_walk_forward(
        connection, model_version=model_version
    ):
        return own
    walk = load_walk_forward_outputs(
        connection, model_version=model_version, start=start, end=end
    ).loc[:, ["regime", "p_distressed"]]
    after = own.loc[own["in_sample"] == 0.0]
    served = pd.concat([walk.astype(float).assign(in_sample=0.0), after])
    served = served.loc[~served.index.duplicated(keep="last")].sort_index()
    return served.loc[:, ["regime", "p_distressed", "in_sample"]]


def last_model_output_day(connection: Connection, *, model_version: str) -> dt.date | None:
    """The latest day with a stored output of ``model_version`` (None when none)."""
    return connection.execute(
        select(func.max(model_outputs.c.date)).where(model_outputs.c.model_version == model_version)
    ).scalar()


def first_price_day_ingested_since(
    connection: Connection, *, moment: dt.datetime, symbols: Sequence[str]
) -> dt.date | None:
    """The earliest day among ``symbols``' prices written at or after ``moment``."""
    return connection.execute(
        select(func.min(prices.c.date)).where(
            prices.c.ingested_at >= moment, prices.c.symbol.in_(list(symbols))
        )
    ).scalar()


def last_feature_day(
    connection: Connection, *, version: int = FEATURE_SET_VERSION
) -> dt.date | None:
    return connection.execute(
        select(func.max(features.c.date)).where(features.c.feature_set_version == version)
    ).scalar()


def count_price_days(
    connection: Connection, *, symbol: str, start: dt.date, written_before: dt.datetime
) -> int:
    """Stored days of ``symbol`` from ``start`` on that were written before ``written_before``."""
    return connection.execute(
        select(func.count())
        .select_from(prices)
        .where(
            prices.c.symbol == symbol,
            prices.c.date >= _to_date(start),
            prices.c.ingested_at < written_before,
        )
    ).scalar_one()


def rescale_adjusted_closes(
    connection: Connection, *, symbol: str, before: dt.date, factor: float
) -> int:
    """Multiply ``symbol``'s stored adjusted closes dated before ``before`` by ``factor``
    (a dividend or split back-adjustment reaching back over the whole series)."""
    result = connection.execute(
        update(prices)
        .where(prices.c.symbol == symbol, prices.c.date < _to_date(before))
        .values(adj_close=prices.c.adj_close * factor, ingested_at=utcnow())
    )
    return result.rowcount
