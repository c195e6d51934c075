"""Read everything a backtest needs from the store, for the CLI and the API alike."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection

from backtest.rates import daily_cash_rate
from backtest.runner import BacktestInputs
from backtest.schemas import BacktestRequest
from backtest.strategies import uses_model
from core.errors import NoDataError
from core.features import SPY
from store.repository import load_closes, load_features, load_model_outputs


def load_backtest_inputs(
    connection: Connection, *, request: BacktestRequest, model_version: str | None
) -> BacktestInputs:
    """The stored feature table (full history, for warm-up), SPY closes, the cash
    rate when stored, and ``model_version``'s daily outputs when a strategy reads
    the classifier. Raises NoDataError naming what is missing."""
    features = load_features(connection)
    if features.empty:
        raise NoDataError("no features stored yet: ingest prices and run `deepregime signals`")
    rate_symbol = request.rate_source.value
    # A few days before the first feature day, so the first day's cash rate is known.
    since = features.index[0].date() - dt.timedelta(days=10)
    closes = load_closes(connection, symbols=[SPY, rate_symbol], start=since)
    if SPY not in closes:
        raise NoDataError(f"no {SPY} prices stored: run `deepregime ingest`")
    cash_rate = None
    if rate_symbol in closes:
        cash_rate = daily_cash_rate(rate_symbol, closes[rate_symbol], features.index)
    elif request.cash_yield or request.financing:
        raise NoDataError(f"cash yield and financing need {rate_symbol} in the store: ingest it")
    outputs = None
    if any(uses_model(strategy) for strategy in request.strategies):
        if model_version is None:
            raise NoDataError(
                "a strategy reads the classifier, but no model is active "
                "(activate one, or name a model version)"
            )
        outputs = load_model_outputs(connection, model_version=model_version)
        if outputs.empty:
            raise NoDataError(f"no daily outputs stored for model version {model_version!r}")
    return BacktestInputs(
        features=features,
        asset_close=closes[SPY],
        cash_rate=cash_rate,
        cash_rate_source=rate_symbol if cash_rate is not None else None,
        model_outputs=outputs,
        asset=SPY,
    )
