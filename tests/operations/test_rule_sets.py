"""Served equals tested: a registered rule set (weighted votes, hysteresis, minimum
dwell, a vol-target overlay) published and served from the store gives, day by day
over the real history, the exposure its backtest decides. Both databases."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from backtest.runner import run_backtest
from backtest.schemas import BacktestRequest
from core.errors import ConfigError, ConflictError, NotFoundError
from core.rulesets import RuleSetDefinition
from operations import rule_sets
from operations.backtests import load_backtest_inputs
from store.ingest import ingest_csv_folder
from store.pipeline import refresh_features
from store.repository import load_closes

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SYMBOLS = ["SPY", "^VIX", "^VIX3M", "HYG", "IEF", "LQD", "^VVIX", "QQQ", "TLT"]

# Reads only the feature table's series (SPY, VIX/VIX3M, HYG/IEF).
SERVED = {
    "name": "ema-vt",
    "filters": [
        {
            "name": "trend",
            "kind": "ema_ratio",
            "inputs": ["SPY"],
            "params": {"window": 150},
            "threshold": 1.0,
            "fires": "below",
            "weight": 2,
        },
        {
            "name": "volatility",
            "kind": "level",
            "inputs": ["^VIX", "^VIX3M"],
            "threshold": 1.0,
            "fires": "above",
        },
        {
            "name": "credit",
            "kind": "zscore",
            "inputs": ["HYG", "IEF"],
            "params": {"window": 252},
            "threshold": -1.0,
            "fires": "below",
        },
    ],
    "table": {"caution_votes": 1, "risk_off_votes": 3},
    "hysteresis": {"confirm_days": 3, "min_dwell_days": 5},
    "vol_target": {"target_volatility": 0.12, "lookback_days": 20, "max_leverage": 1.0},
}
# Reads other ingested symbols: LQD/IEF credit, the VVIX level, QQQ's own trend.
BEYOND = {
    "name": "beyond-spy",
    "filters": [
        {
            "name": "qqq_trend",
            "kind": "sma_ratio",
            "inputs": ["QQQ"],
            "params": {"window": 200},
            "threshold": 1.0,
            "fires": "below",
        },
        {
            "name": "vvix",
            "kind": "level",
            "inputs": ["^VVIX"],
            "threshold": 120.0,
            "fires": "above",
        },
        {
            "name": "lqd_credit",
            "kind": "zscore",
            "inputs": ["LQD", "IEF"],
            "params": {"window": 252},
            "threshold": -1.0,
            "fires": "below",
        },
    ],
    "hysteresis": {"confirm_days": 2, "min_dwell_days": 3},
}


@pytest.fixture
def stored(engine, market_dir):
    ingest_csv_folder(engine, market_dir, today=dt.date(2025, 1, 1), symbols=SYMBOLS)
    with engine.begin() as connection:
        refresh_features(connection)
        for document in (SERVED, BEYOND):
            rule_sets.register(connection, rule_sets.parse_definition(document))
        rule_sets.refresh_registered(connection)
        rule_sets.publish_registered(connection, fingerprint="test", run_id=None)
    return engine


def served_exposures(connection, name: str) -> pd.Series:
    page = rule_sets.rule_set_history(
        connection,
        rule_sets.get(connection, name),
        start=None,
        end=None,
        cursor=None,
        limit=20000,
    )
    assert page.next_cursor is None
    return pd.Series(
        [np.nan if item.exposure is None else item.exposure for item in page.items],
        index=pd.DatetimeIndex([pd.Timestamp(item.date) for item in page.items]),
    )


def test_served_answer_equals_the_backtest_exposure_every_day(stored):
    request = BacktestRequest(strategies=[{"kind": "rule_set", "rule_set": "ema-vt"}])
    with stored.connect() as connection:
        served = served_exposures(connection, "ema-vt")
        resolved = rule_sets.resolve_request(connection, request)
        inputs = load_backtest_inputs(connection, request=resolved, model_version=None)
        today = rule_sets.published_today(connection, rule_sets.get(connection, "ema-vt"))
    run = run_backtest(resolved, inputs)
    tested = next(iter(run.signals.values())).exposure.reindex(served.index)
    known = served.notna()
    assert known.sum() > 7500  # 1993 .. 2024, less the warm-up
    assert tested[known].to_numpy() == pytest.approx(served[known].to_numpy(), abs=1e-12)
    assert len(np.unique(np.round(served[known], 6))) > 100  # the overlay is at work
    # The published answer is the last day's, and carries definition and fingerprint.
    body = json.loads(today.body)
    assert body["as_of"] == "2024-12-31"
    assert body["exposure"] == pytest.approx(tested.iloc[-1], abs=1e-12)
    definition = RuleSetDefinition.from_dict(SERVED)
    assert body["rule_set"]["fingerprint"] == definition.fingerprint
    assert body["rule_set"]["definition"] == definition.to_dict()


def test_rule_set_on_other_symbols_served_equals_its_backtest(stored):
    """Through the loader and runner POST /backtest uses: the other symbols' closes
    reach the signal (a rule set reading only stored features would not show it)."""
    request = BacktestRequest(strategies=[{"kind": "rule_set", "rule_set": "beyond-spy"}])
    with stored.connect() as connection:
        served = served_exposures(connection, "beyond-spy")
        resolved = rule_sets.resolve_request(connection, request)
        inputs = load_backtest_inputs(connection, request=resolved, model_version=None)
        report = rule_sets.rule_set_report(
            connection, rule_sets.get(connection, "beyond-spy"), day=dt.date(2020, 3, 16)
        )
    run = run_backtest(resolved, inputs)
    tested = next(iter(run.signals.values())).exposure.reindex(served.index)
    known = served.notna()
    assert known.sum() > 4000
    assert tested[known].to_numpy() == pytest.approx(served[known].to_numpy(), abs=0)
    # 2020-03-16, the VIX's record close: VVIX above 120 and QQQ below its SMA200 fire.
    assert report.filters["vvix"].state == "firing"
    assert report.filters["vvix"].value == pytest.approx(207.59, abs=0.01)
    assert report.regime == "risk-off"


def test_risk_off_allocation_holds_tlt_when_the_rules_say_risk_off(stored):
    request = BacktestRequest(
        strategies=[{"kind": "allocation", "base": {"kind": "rules"}, "defensive": "TLT"}],
        start=dt.date(2008, 1, 2),
        end=dt.date(2024, 12, 31),
    )
    with stored.connect() as connection:
        inputs = load_backtest_inputs(connection, request=request, model_version=None)
        tlt = load_closes(connection, symbols=["TLT"])["TLT"]
    run = run_backtest(request, inputs)
    returns = run.simulation.returns.iloc[:, 0]
    exposure = next(iter(run.signals.values())).exposure
    spy = inputs.asset_close.pct_change()
    tlt_returns = tlt.pct_change()
    # A day held wholly in risk-off (decided the close before, lag 1) earns TLT's return;
    # one wholly in risk-on earns SPY's (no costs).
    held = exposure.shift(1).reindex(returns.index)
    off, on = returns.index[held == 0.0], returns.index[held == 1.0]
    assert len(off) > 100 and len(on) > 1000
    assert returns[off].to_numpy() == pytest.approx(tlt_returns[off].to_numpy(), abs=1e-12)
    assert returns[on].to_numpy() == pytest.approx(spy[on].to_numpy(), abs=1e-12)


def test_registered_rule_sets_are_immutable(stored):
    changed = dict(SERVED, table={"caution_votes": 1, "risk_off_votes": 2})
    with stored.begin() as connection:
        same, created = rule_sets.register(connection, rule_sets.parse_definition(SERVED))
        assert not created
        with pytest.raises(ConflictError, match="immutable"):
            rule_sets.register(connection, rule_sets.parse_definition(changed))
    with stored.connect() as connection, pytest.raises(NotFoundError, match="no rule set"):
        rule_sets.get(connection, "nope")
    with pytest.raises(ConfigError, match="built-in"):
        rule_sets.parse_definition(dict(SERVED, name="published"))
    with pytest.raises(ConfigError, match="lower-case"):
        rule_sets.parse_definition(dict(SERVED, name="A name with spaces"))
