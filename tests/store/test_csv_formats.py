"""CSV layouts as yfinance, Cboe and FRED write them: header lines recognised by
what they hold, columns mapped by name, one series per ticker."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import DataValidationError
from store.sources import SeriesKind, read_csv_file, read_csv_layout
from tests.conftest import MARKET_DIR
from tests.store.days import xnys_days

TODAY = dt.date(2025, 1, 15)
SAMPLES_DIR = MARKET_DIR.parent / "samples"

# 2024-11-04 and 2024-12-31 of SPY, as the samples and ../market/SPY.csv hold them.
SPY_FIRST = {
    "adj_close": 562.9656982421875,
    "close": 569.8099975585938,
    "high": 572.5,
    "low": 567.8900146484375,
    "open": 571.1799926757812,
    "volume": 38217000,
}
SPY_LAST_ADJ = 580.9891967773438
HYG_FIRST_ADJ, HYG_LAST_ADJ = 75.26201629638672, 75.68658447265625


@pytest.fixture(scope="module")
def samples() -> Path:
    if not (SAMPLES_DIR / "yfinance_SPY_auto_adjust_false.csv").exists():
        pytest.skip(f"yfinance samples not found at {SAMPLES_DIR}")
    return SAMPLES_DIR


def read_series(path: Path, **kwargs) -> dict[str, tuple[pd.DataFrame, list, SeriesKind]]:
    """symbol -> (rows, quarantined, kind) of every series of a file."""
    out: dict[str, tuple[pd.DataFrame, list, SeriesKind]] = {}
    for chunk in read_csv_file(path, today=TODAY, **kwargs):
        rows, quarantined, _ = out.get(chunk.symbol, (chunk.rows.iloc[:0], [], chunk.kind))
        out[chunk.symbol] = (
            pd.concat([rows, chunk.rows]),
            quarantined + chunk.quarantined,
            chunk.kind,
        )
    return out


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the real yfinance samples ----------------------------------------------------------


def test_auto_adjust_false_sample_reads_adjusted_and_raw_close(samples):
    series = read_series(samples / "yfinance_SPY_auto_adjust_false.csv")
    assert list(series) == ["SPY"]  # from the Ticker line, not the file name
    rows, quarantined, kind = series["SPY"]
    assert (len(rows), quarantined, kind) == (40, [], SeriesKind.ETF)
    assert rows.index[0] == pd.Timestamp("2024-11-04") and rows.index[-1] == pd.Timestamp(
        "2024-12-31"
    )
    assert rows.iloc[0].to_dict() == SPY_FIRST
    assert rows["adj_close"].iloc[-1] == SPY_LAST_ADJ


def test_auto_adjust_true_sample_close_is_the_adjusted_close(samples):
    [(rows, quarantined, _)] = read_series(samples / "yfinance_SPY_auto_adjust_true.csv").values()
    unadjusted, _, _ = read_series(samples / "yfinance_SPY_auto_adjust_false.csv")["SPY"]
    assert len(rows) == 40 and quarantined == []
    # Close of an auto-adjusted download is the adjusted close; the raw close is unknown.
    np.testing.assert_allclose(rows["adj_close"], unadjusted["adj_close"], rtol=1e-12)
    assert rows["close"].isna().all()
    first = rows.iloc[0]
    assert (first["open"], first["high"], first["low"]) == (
        564.319237599237,
        565.6233895940205,
        561.0687772961523,
    )
    assert first["volume"] == 38217000


def test_two_ticker_sample_is_split_into_one_series_per_ticker(samples):
    series = read_series(samples / "yfinance_HYG_SPY_two_tickers.csv")
    assert sorted(series) == ["HYG", "SPY"]
    spy, _, _ = series["SPY"]
    single, _, _ = read_series(samples / "yfinance_SPY_auto_adjust_false.csv")["SPY"]
    pd.testing.assert_frame_equal(spy, single)
    hyg, quarantined, kind = series["HYG"]
    assert (len(hyg), quarantined, kind) == (40, [], SeriesKind.ETF)
    assert hyg["adj_close"].iloc[0] == HYG_FIRST_ADJ and hyg["adj_close"].iloc[-1] == HYG_LAST_ADJ
    assert hyg["volume"].iloc[0] == 27291200


def test_samples_agree_with_the_market_folder(samples, market_dir):
    market = read_series(market_dir / "SPY.csv")["SPY"][0]
    sample = read_series(samples / "yfinance_SPY_auto_adjust_false.csv")["SPY"][0]
    pd.testing.assert_frame_equal(market.loc[sample.index], sample)


# --- header lines: recognised by content, never counted ---------------------------------

ROWS = [
    "2024-01-02,100.0,101.0,102.0,99.0,100.5,1000",
    "2024-01-03,101.0,102.0,103.0,100.0,101.5,1100",
]
PRICE = "Price,Adj Close,Close,High,Low,Open,Volume\n"
TICKER = "Ticker,QQQ,QQQ,QQQ,QQQ,QQQ,QQQ\n"
DATE = "Date,,,,,,\n"
BODY = "\n".join(ROWS) + "\n"


@pytest.mark.parametrize(
    "header",
    [
        PRICE + TICKER + DATE,  # yfinance to_csv
        PRICE + TICKER,  # no Date line
        PRICE + TICKER + TICKER + DATE,  # one line more
        PRICE + DATE,  # no Ticker line: the symbol comes from the file name
        PRICE,  # the Price line alone
        TICKER + PRICE + DATE,  # group_by="ticker" puts the tickers first
        PRICE + "\n" + TICKER + "\n" + DATE + "\n",  # blank lines
        "Price,Price,Close,High,Low,Open,Volume\n" + TICKER + TICKER,  # the market folder's
    ],
    ids=["standard", "no-date", "extra-ticker", "no-ticker", "price-only", "ticker-first",
         "blank-lines", "market-folder"],
)  # fmt: skip
def test_yfinance_header_variants_load_the_same_rows(tmp_path, header):
    path = write(tmp_path, "QQQ.csv", header + BODY)
    [(symbol, (rows, quarantined, _))] = read_series(path).items()
    assert symbol == "QQQ" and quarantined == []
    assert rows["adj_close"].tolist() == [100.0, 101.0]
    assert rows["close"].tolist() == [101.0, 102.0]
    assert rows["volume"].tolist() == [1000, 1100]


def test_column_order_does_not_matter(tmp_path):
    header = "Price,Volume,Open,Low,High,Close,Adj Close\nTicker" + ",QQQ" * 6 + "\nDate,,,,,,\n"
    path = write(tmp_path, "x.csv", header + "2024-01-02,1000,100.5,99.0,102.0,101.0,100.0\n")
    rows, _, _ = read_series(path)["QQQ"]
    assert rows.iloc[0].to_dict() == {
        "open": 100.5,
        "high": 102.0,
        "low": 99.0,
        "close": 101.0,
        "adj_close": 100.0,
        "volume": 1000,
    }


def test_symbols_come_from_the_ticker_line_not_the_file_name(tmp_path):
    path = write(tmp_path, "download.csv", PRICE + TICKER + DATE + BODY)
    assert [s.symbol for s in read_csv_layout(path).series] == ["QQQ"]
    path = write(tmp_path, "VIX.csv", PRICE + TICKER.replace("QQQ", "^VIX") + DATE + BODY)
    [series] = read_csv_layout(path).series
    assert (series.symbol, series.kind) == ("^VIX", SeriesKind.INDEX)


def test_two_tickers_with_different_calendars(tmp_path):
    text = (
        "Price,Close,Close,High,High,Low,Low,Open,Open,Volume,Volume\n"
        "Ticker,AAA,^BBB,AAA,^BBB,AAA,^BBB,AAA,^BBB,AAA,^BBB\n"
        "Date,,,,,,,,,,\n"
        "2024-01-02,10,20,11,21,9,19,10,20,5,\n"
        "2024-01-03,,22,,23,,21,,22,,\n"  # AAA did not trade
        "2024-01-04,11,,12,,10,,11,,6,\n"  # ^BBB did not print
    )
    series = read_series(write(tmp_path, "pair.csv", text))
    aaa, _, aaa_kind = series["AAA"]
    bbb, _, bbb_kind = series["^BBB"]
    assert (aaa_kind, bbb_kind) == (SeriesKind.ETF, SeriesKind.INDEX)
    assert list(aaa.index.day) == [2, 4] and aaa["adj_close"].tolist() == [10.0, 11.0]
    assert list(bbb.index.day) == [2, 3] and bbb["adj_close"].tolist() == [20.0, 22.0]
    assert bbb["volume"].isna().all() and aaa["close"].isna().all()


def test_two_tickers_are_split_across_chunks(tmp_path):
    days = xnys_days("2024-01-02", periods=25)
    lines = [f"{d:%Y-%m-%d},{10 + i},{20 + i},1,1,1,1,1,1,1,1" for i, d in enumerate(days)]
    text = (
        "Price,Close,Close,High,High,Low,Low,Open,Open,Volume,Volume\n"
        "Ticker,AAA,BBB,AAA,BBB,AAA,BBB,AAA,BBB,AAA,BBB\n" + "\n".join(lines) + "\n"
    )
    series = read_series(write(tmp_path, "pair.csv", text), chunk_rows=4)
    assert series["AAA"][0]["adj_close"].tolist() == [10.0 + i for i in range(25)]
    assert series["BBB"][0].index.equals(pd.DatetimeIndex(days, name="date"))


@pytest.mark.parametrize(
    ("name", "text", "symbol", "kind", "adj_close"),
    [
        ("VIX_History.csv", "DATE,OPEN,HIGH,LOW,CLOSE\n01/02/2024,13,14,12.5,13.2\n", "^VIX",
         SeriesKind.INDEX, 13.2),
        ("VIX_History.csv", "DATE,CLOSE,LOW,HIGH,OPEN\n01/02/2024,13.2,12.5,14,13\n", "^VIX",
         SeriesKind.INDEX, 13.2),
        ("VVIX_History.csv", "DATE,VVIX\n1/2/2024,90.5\n", "^VVIX", SeriesKind.INDEX, 90.5),
        ("DFF.csv", "date,value\n2024-01-02,5.33\n", "DFF", SeriesKind.RATE, 5.33),
        ("DFF.csv", "observation_date,DFF\n2024-01-02,5.33\n", "DFF", SeriesKind.RATE, 5.33),
        ("IEF.csv", "Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,1,2,0.5,1.5,1.4,7\n",
         "IEF", SeriesKind.ETF, 1.4),
    ],
    ids=["cboe", "cboe-reordered", "cboe-single", "fred", "fred-new", "flat-export"],
)  # fmt: skip
def test_single_header_line_layouts(tmp_path, name, text, symbol, kind, adj_close):
    [(found, (rows, _, found_kind))] = read_series(write(tmp_path, name, text)).items()
    assert (found, found_kind, rows["adj_close"].tolist()) == (symbol, kind, [adj_close])
    assert rows.index[0] == pd.Timestamp("2024-01-02")


def test_cboe_ohlc_columns_are_mapped_by_name(tmp_path):
    path = write(
        tmp_path, "VIX_History.csv", "DATE,CLOSE,LOW,HIGH,OPEN\n01/02/2024,13.2,12.5,14,13\n"
    )
    rows, _, _ = read_series(path)["^VIX"]
    first = rows.iloc[0]
    assert (first["open"], first["high"], first["low"], first["adj_close"]) == (13, 14, 12.5, 13.2)
    assert math.isnan(first["close"]) and math.isnan(first["volume"])


def test_timestamps_and_time_zones_in_dates_are_cut_to_the_day(tmp_path):
    text = (
        PRICE + TICKER + "2024-01-02 00:00:00-05:00,1,1,1,1,1,1\n2024-01-03T00:00:00,1,1,1,1,1,1\n"
    )
    rows, _, _ = read_series(write(tmp_path, "q.csv", text))["QQQ"]
    assert list(rows.index) == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]


# --- header problems: one clear message naming file and line ----------------------------

BAD_HEADERS = [
    ("ticker without price", TICKER + DATE + BODY, "no column names", 1),
    ("no header at all", BODY, "no column names", 1),
    ("unknown second line", PRICE + "Symbol,a,b,c,d,e,f\n" + BODY, "unrecognised header line", 2),
    ("tickers disagree", PRICE + TICKER + TICKER.replace("QQQ", "SPY") + BODY, "disagree", 3),
    ("two price lines", PRICE + PRICE + BODY, "second line of column names", 2),
    ("short ticker line", PRICE + "Ticker,QQQ,QQQ\n" + BODY, "Ticker line has 3 cells", 2),
    (
        "duplicate without tickers",
        "Price,Adj Close,Adj Close,Close,High,Low,Open,Volume\n" + BODY,
        "duplicate column(s) ['Adj Close'] (a file of several tickers needs a Ticker line)",
        1,
    ),
    (
        "ticker missing a field",
        "Price,Close,Close,High,High,Low,Low,Open,Open,Volume\nTicker,A,B,A,B,A,B,A,B,A\n",
        "missing column(s) ['VOLUME'] for B",
        1,
    ),
    ("unknown field", "Price,Close,High,Low,Open,Volume,Dividends\n", "unexpected column(s)", 1),
    ("row too long", PRICE + TICKER + DATE + ROWS[0] + ",9\n", "malformed row: 8 fields", 4),
    ("row too short", PRICE + ROWS[0] + "\n2024-01-03,1,1\n", "malformed row: 3 fields", 3),
    ("header in the data", PRICE + ROWS[0] + "\n" + PRICE + ROWS[1] + "\n", "unparseable date", 3),
    ("only blank lines", "\n\n", "file is empty", 1),
]


@pytest.mark.parametrize(
    ("case", "text", "message", "line"), BAD_HEADERS, ids=[c[0] for c in BAD_HEADERS]
)
def test_bad_headers_fail_with_file_and_line(tmp_path, case, text, message, line):
    path = write(tmp_path, "QQQ.csv", text)
    with pytest.raises(DataValidationError) as caught:
        read_series(path)
    assert message in caught.value.reason
    assert (caught.value.source, caught.value.line) == (str(path), line)
    assert str(caught.value).startswith(f"{path}, line {line}")


def test_a_file_that_is_not_utf8_is_rejected(tmp_path):
    path = tmp_path / "X.csv"
    path.write_bytes(b"DATE,VVIX\n01/02/2024,\xff\xfe\n")
    with pytest.raises(DataValidationError, match="not a UTF-8 text file"):
        read_series(path)
