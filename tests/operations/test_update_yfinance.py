"""`run_update` with the yfinance source, on frames shaped as `yfinance.download` returns
them (columns Price x Ticker, index Date, auto_adjust=False), day after day.

yfinance is asked from the last stored day (inclusive), so each download
overlaps one stored day: unchanged, it is no revision; back-adjusted for a
dividend (lower by a small factor) it is a recorded rescaling.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from app.settings import Settings
from operations.models import ModelSlot
from operations.revisions import list_revisions
from operations.update import run_update
from store.db import make_engine
from tests.app.conftest import market_days, market_frame

SYMBOLS = ["SPY", "^VIX", "^VIX3M", "HYG", "IEF"]


def yfinance_frame(market: pd.DataFrame, symbols: list[str], start: dt.date) -> pd.DataFrame:
    rows = market.loc[pd.Timestamp(start) :, symbols]
    fields = {}
    for field in ("Adj Close", "Close", "High", "Low", "Open"):
        for symbol in symbols:
            fields[(field, symbol)] = rows[symbol].to_numpy()
    for symbol in symbols:
        fields[("Volume", symbol)] = [0 if symbol.startswith("^") else 1000] * len(rows)
    frame = pd.DataFrame(fields, index=pd.DatetimeIndex(rows.index, name="Date"))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["Price", "Ticker"])
    return frame


@pytest.fixture
def setup(database_url, tmp_path):
    engine = make_engine(database_url)
    # The default market alone: the download asks for SYMBOLS and nothing more.
    universe = tmp_path / "universe.yaml"
    universe.write_text(
        "markets:\n  - {id: SPY, symbol: SPY, name: S&P 500, calendar: XNYS, "
        "rule_set: published, reason: the published framework}\n"
    )
    settings = Settings(
        database_url=database_url,
        data_source="yfinance",
        symbols=SYMBOLS,
        universe_file=universe,
        yfinance_start="2011-01-01",
        _env_file=None,
    )
    yield engine, settings
    engine.dispose()


def test_daily_downloads_publish_each_new_day(setup):
    engine, settings = setup
    market = market_frame(market_days())
    known = {"until": market.index[-3]}
    calls = []

    def download(symbols, start):
        calls.append((tuple(symbols), start))
        return yfinance_frame(market.loc[: known["until"]], list(symbols), start)

    def update():
        return run_update(
            engine,
            settings=settings,
            model=ModelSlot.unavailable("rules only"),
            trigger="schedule",
            download=download,
        )

    first = update()
    assert first.status == "published" and not first.rejected
    for day in market.index[-2:]:
        known["until"] = day
        report = update()
        # The default market's answers (rule sets by name publish beside them).
        preset = [p for p in report.publications if not p.policy.startswith("rule_set:")]
        assert [(p.day, p.policy) for p in preset] == [
            (day.date(), "rules"),
            (day.date(), "ensemble"),
        ]
        assert report.revisions == [] and report.held == []
    # Each later download starts on the last stored day: one day of overlap.
    assert calls[-5:] == [((symbol,), market.index[-2].date()) for symbol in SYMBOLS]
    assert update().status == "unchanged"

    # The next day SPY goes ex-dividend: the overlapping day comes back 0.5% lower.
    adjusted = market.copy()
    adjusted.loc[: market.index[-1], "SPY"] *= 0.995
    extra = pd.Timestamp("2012-04-09")  # the next session: the NYSE closed on Good Friday
    adjusted.loc[extra] = market.iloc[-1] * pd.Series({"SPY": 0.995 * 1.001}).reindex(
        market.columns, fill_value=1.0
    )

    def ex_dividend(symbols, start):
        return yfinance_frame(adjusted, list(symbols), start)

    report = run_update(
        engine,
        settings=settings,
        model=ModelSlot.unavailable("rules only"),
        trigger="schedule",
        download=ex_dividend,
    )
    assert report.exit_code == 0, report.summary_lines()
    preset = [p for p in report.publications if not p.policy.startswith("rule_set:")]
    assert [p.day for p in preset] == [extra.date(), extra.date()]
    with engine.connect() as connection:
        [revision] = list_revisions(connection)
    assert (revision["symbol"], revision["kind"], revision["status"]) == (
        "SPY",
        "rescale",
        "applied",
    )
    assert revision["factor"] == pytest.approx(0.995)
