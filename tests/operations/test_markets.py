"""Every market of the universe through the real daily cycle, days fed one at a time.

The real history of every input up to 2024-12-20, then each of the next four sessions
in its own update. After each, every market's /regime/today must equal a from-scratch
computation (hand-parsed files, core's pure functions) on the data known up to that
day; /regime/{day}, /regimes and /regimes/stats must agree with it; and over the full
history, what is served for each (market, default rule set) must equal, day by day,
the exposure a backtest of that market holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from typer.testing import CliRunner

from app.main import create_app
from backtest.runner import run_backtest
from backtest.schemas import BacktestRequest
from cli.main import app as cli
from core.features import compute_features
from core.rules import compute_regimes
from operations.backtests import load_backtest_inputs
from operations.markets import load_universe
from operations.rule_sets import resolve_request
from tests.operations.replay import closes_until, read_market, write_history

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

HISTORY_END = pd.Timestamp("2024-12-20")
SESSIONS = [pd.Timestamp(d) for d in ("2024-12-23", "2024-12-24", "2024-12-26", "2024-12-27")]
UNIVERSE = load_universe()
ETFS = tuple(sorted({"SPY", "HYG", "IEF", *UNIVERSE.symbols}))
INDICES = {"^VIX": "VIX_History.csv", "^VIX3M": "VIX3M_History.csv"}
runner = CliRunner()


def cut(folder: Path, market: Path, until: pd.Timestamp) -> Path:
    """Every input file of the universe cut at ``until``, in its own layout."""
    return write_history(folder, market, until, etfs=ETFS)


def expected(closes: dict[str, pd.Series], market_id: str, day: pd.Timestamp) -> pd.Series:
    """The market's default rule set on the data known at the close of ``day``."""
    known = {symbol: series.loc[:day] for symbol, series in closes.items()}
    features = compute_features({s: known[s] for s in ("SPY", "^VIX", "^VIX3M", "HYG", "IEF")})
    market = UNIVERSE.market(market_id)
    definition = UNIVERSE.definition(market.rule_set)
    if definition is None:  # the default market: the published preset
        from core.rules import rule_set_preset

        return compute_regimes(features, rule_set_preset(market.rule_set)).loc[day]
    others = {s: known[s] for s in definition.closes_needed()}
    return compute_regimes(features, definition, others).loc[day]


def update(folder: Path) -> str:
    result = runner.invoke(cli, ["update", "--source", "csv", "--path", str(folder)])
    assert result.exit_code == 0, result.output
    return result.output


def test_every_market_day_by_day_and_served_equals_backtested(cli_env, tmp_path, market_dir):
    closes = closes_until(read_market(market_dir, etfs=ETFS), SESSIONS[-1])
    update(cut(tmp_path / "history", market_dir, HISTORY_END))
    for day in SESSIONS:
        output = update(cut(tmp_path / f"{day:%Y%m%d}", market_dir, day))
        for market in UNIVERSE.markets[1:]:
            assert f"rule_set:{market.rule_set}" in output or "published" in output
        with TestClient(create_app()) as client:
            for market in UNIVERSE.markets:
                want = expected(closes, market.id, day)
                today = client.get("/regime/today", params={"market": market.id})
                assert today.status_code == 200, today.text
                body = today.json()
                assert (body["market"], body["as_of"]) == (market.id, day.date().isoformat())
                assert body["regime"] == want["regime"], (market.id, day)
                assert body["exposure"] == pytest.approx(float(want["exposure"]))
                # The same day through the other routes, and the ETag on every market.
                assert (
                    client.get(
                        "/regime/today",
                        params={"market": market.id},
                        headers={"If-None-Match": today.headers["etag"]},
                    ).status_code
                    == 304
                )
                on_day = client.get(f"/regime/{day.date()}", params={"market": market.id}).json()
                assert (on_day["market"], on_day["regime"]) == (market.id, want["regime"])
                page = client.get("/regimes", params={"market": market.id, "latest": 1}).json()
                assert page["market"] == market.id
                assert page["items"][-1]["exposure"] == pytest.approx(float(want["exposure"]))

    with TestClient(create_app()) as client:
        listed = client.get("/markets").json()
        assert [m["id"] for m in listed] == list(UNIVERSE.ids)
        names = {r["name"]: r for r in client.get("/rule-sets").json()}
        assert names["published"]["origin"] == "preset"
        assert names["qqq-trend-rv-credit"]["market"] == "QQQ"
        # The name every default answer carries asks for the same answer.
        carried = client.get("/regime/today").json()["rules"]["rule_set"]
        assert (
            client.get("/regime/today", params={"rule_set": carried}).json()
            == client.get("/regime/today").json()
        )
        stats = client.get("/regimes/stats", params={"market": "QQQ", "start": "2008-01-01"})
        assert stats.status_code == 200, stats.text
        assert stats.json()["market"] == "QQQ" and stats.json()["current_spell"] is not None
        histories = {market.id: _served(client, market.id) for market in UNIVERSE.markets}

    engine = create_engine(cli_env)
    with engine.connect() as connection:
        for market in UNIVERSE.markets:
            strategy = (
                {"kind": "rules"}
                if market.id == UNIVERSE.default
                else {"kind": "rule_set", "rule_set": market.rule_set}
            )
            request = BacktestRequest(market=market.id, strategies=[strategy], cost_bps=10)
            request = resolve_request(connection, request)
            inputs = load_backtest_inputs(connection, request=request, model_version=None)
            assert inputs.asset == market.symbol
            run = run_backtest(request, inputs)
            assert run.result.conventions.asset == market.symbol
            signal = next(iter(run.signals.values()))
            backtested = signal.exposure
            served = histories[market.id].reindex(backtested.index)
            known = served.notna().to_numpy()
            assert known.sum() > 5000, market.id
            np.testing.assert_array_equal(
                served.to_numpy()[known], backtested.to_numpy()[known], err_msg=market.id
            )
            # A day served without a regime had no filter input at all; a backtest holds
            # it by the rule set's unavailable policy, and says so (no_input).
            assert signal.no_input.to_numpy()[~known].all(), market.id
    engine.dispose()


def _served(client: TestClient, market: str) -> pd.Series:
    """A market's served exposure for every stored day, through /regimes' pages."""
    values, cursor = {}, None
    while True:
        params = {"market": market, "limit": 5000, **({"cursor": cursor} if cursor else {})}
        page = client.get("/regimes", params=params).json()
        values.update({item["date"]: item["exposure"] for item in page["items"]})
        cursor = page["next_cursor"]
        if cursor is None:
            break
    series = pd.Series(values, dtype=float)
    series.index = pd.to_datetime(series.index)
    return series
