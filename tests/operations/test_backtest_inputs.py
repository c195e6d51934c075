"""A backtest reads a day's model output from the store only, and never shortens its
period silently: model outputs that stop before the features do are refused by name."""

from __future__ import annotations

import pandas as pd
import pytest

from backtest.schemas import BacktestRequest
from core.errors import NoDataError
from operations.backtests import load_backtest_inputs
from store.db import make_engine
from store.repository import write_model_outputs
from tests.app.conftest import load_market, market_days, market_frame, write_csv_folder

VERSION = "2012-01-01-abcdef"


def test_model_outputs_must_reach_the_end_of_the_period(database_url, tmp_path):
    market = market_frame(market_days())
    load_market(database_url, write_csv_folder(tmp_path / "m", market))
    days = market.index
    outputs = pd.DataFrame(
        {"regime": 0.0, "p_distressed": 0.1}, index=pd.DatetimeIndex(days[100:-3], name="date")
    )
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            write_model_outputs(connection, table=outputs, model_version=VERSION)
        request = BacktestRequest(strategies=[{"kind": "model"}])
        with engine.connect() as connection, pytest.raises(NoDataError) as refused:
            load_backtest_inputs(connection, request=request, model_version=VERSION)
        assert str(refused.value) == (
            f"model {VERSION} has no stored output after {days[-4].date()}, but the period "
            f"runs to {days[-1].date()} (3 day(s) unscored): run `deepregime update` "
            "or end the period earlier"
        )
        # Ending the period on the last scored day is fine.
        ending = BacktestRequest(strategies=[{"kind": "model"}], end=days[-4].date())
        with engine.connect() as connection:
            inputs = load_backtest_inputs(connection, request=ending, model_version=VERSION)
        assert inputs.model_outputs.index[-1] == days[-4]
    finally:
        engine.dispose()
