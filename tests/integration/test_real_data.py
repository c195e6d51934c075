"""Ingest the real ../shared/data/market and check facts anyone can verify in the files."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from core.rules import PUBLISHED_FRAMEWORK
from store.ingest import ingest_csv_folder
from store.pipeline import refresh_features, refresh_regimes
from store.repository import load_features, load_price_rows, price_summary
from store.tables import quarantine

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

# Rows per file (data lines) and first/last dates, read off the files themselves.
EXPECTED = {
    "SPY": (8038, dt.date(1993, 1, 29), dt.date(2024, 12, 31)),
    # 8833 data lines, 20 of which Cboe printed on NYSE holidays (2022-05-30, ...).
    "^VIX": (8813, dt.date(1990, 1, 2), dt.date(2024, 12, 31)),
    "^VIX3M": (3847, dt.date(2009, 9, 18), dt.date(2024, 12, 31)),
    "HYG": (4463, dt.date(2007, 4, 11), dt.date(2024, 12, 31)),
    "IEF": (5645, dt.date(2002, 7, 30), dt.date(2024, 12, 31)),
    # 4678 data lines, one of which is the impossible 15.71 print of 2006-03-15.
    "^VVIX": (4677, dt.date(2006, 3, 6), dt.date(2024, 12, 31)),
}


def test_real_market_folder(engine, market_dir):
    results = ingest_csv_folder(engine, market_dir, today=dt.date(2025, 1, 1))
    assert all(r.status == "ingested" for r in results), [r.summary() for r in results]
    assert len(results) == 20

    with engine.connect() as connection:
        summary = {row["symbol"]: row for row in price_summary(connection)}
        spy = load_price_rows(connection, symbol="SPY")
        vix = load_price_rows(connection, symbol="^VIX")
        defects = connection.execute(
            select(quarantine.c.symbol, quarantine.c.date, quarantine.c.line).order_by(
                quarantine.c.id
            )
        ).all()
    for symbol, (rows, first, last) in EXPECTED.items():
        assert (summary[symbol]["rows"], summary[symbol]["first"], summary[symbol]["last"]) == (
            rows,
            first,
            last,
        )

    # SPY.csv, 2024-12-31: adjusted close 580.9891967773438, close 586.0800170898438.
    last = spy.loc["2024-12-31"]
    assert last["adj_close"] == pytest.approx(580.9891967773438)
    assert last["close"] == pytest.approx(586.0800170898438)
    assert last["volume"] == 57052700
    # The VIX's record close, 2020-03-16: 82.69.
    assert vix.loc["2020-03-16", "adj_close"] == pytest.approx(82.69)
    # The VVIX defect is caught, on line 3 of its file; the VIX's holiday prints (the
    # first on Reagan's day of mourning, line 3641) and 12 DFF rates of their own on
    # 1954-1979 federal holidays are kept out; nothing else is.
    by_symbol = {
        s: [(day, line) for symbol, day, line in defects if symbol == s] for s, *_ in defects
    }
    assert by_symbol["^VVIX"] == [(dt.date(2006, 3, 15), 3)]
    assert len(by_symbol["^VIX"]) == 20 and by_symbol["^VIX"][:2] == [
        (dt.date(2004, 6, 11), 3641),
        (dt.date(2022, 5, 30), 8165),
    ]
    assert len(by_symbol["DFF"]) == 12 and by_symbol["DFF"][0] == (dt.date(1954, 7, 5), 6)
    assert set(by_symbol) == {"^VVIX", "^VIX", "DFF"}

    rerun = ingest_csv_folder(engine, market_dir, today=dt.date(2025, 1, 1))
    assert {r.status for r in rerun} == {"unchanged"}

    with engine.begin() as connection:
        features = refresh_features(connection)
        regimes = refresh_regimes(connection, PUBLISHED_FRAMEWORK)
        table = load_features(connection)
    assert features.rows == regimes.rows == 8038
    day = table.loc["2024-12-31"]
    # Straight from the files: SPY adj closes of 12-30 and 12-31, VIX and VIX3M closes of 12-31,
    # HYG and IEF adjusted closes of 12-31.
    assert day["ret_1d"] == pytest.approx(580.9891967773438 / 583.110595703125 - 1)
    assert day["vix"] == pytest.approx(17.35)
    assert day["vix_vix3m"] == pytest.approx(17.35 / 18.98)
    assert day["hyg_ief"] == pytest.approx(75.68658447265625 / 90.12078094482422)
    # Inputs that do not exist yet stay missing: VIX3M starts 2009-09-18.
    assert table.loc[:"2009-09-17", "vix_vix3m"].isna().all()
    assert table.loc["2009-09-18":, "vix_vix3m"].notna().all()
    # HYG starts 2007-04-11; its z-score needs 252 SPY days of the ratio.
    # The 252nd SPY day from 2007-04-11 (counted in SPY.csv) is 2008-04-09.
    assert table.loc[:"2008-04-08", "hyg_ief_z252"].isna().all()
    assert table.loc["2008-04-09":, "hyg_ief_z252"].notna().all()
