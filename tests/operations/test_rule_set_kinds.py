"""Every kind of rule-set definition through the real daily cycle, on both databases:
days fed one at a time, each kind served on every route, backtested through POST
/backtest and the loader the command line uses, revised, and notified.

Kinds: a vote count, weighted votes, a continuous score mapped to exposure,
hysteresis (confirmation), a minimum dwell, and a vol-target overlay. Expected
answers are a from-scratch computation (core's pure functions) on the data known at
each day's close.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, select
from typer.testing import CliRunner

from app.main import create_app
from backtest.runner import run_backtest
from backtest.schemas import BacktestRequest
from cli.main import app as cli
from core.features import compute_features
from core.rules import compute_regimes
from core.rulesets import RuleSetDefinition
from operations.backtests import load_backtest_inputs
from operations.notifications import regime_changed
from operations.rule_sets import resolve_request
from store.ledger import Publication, canonical_json
from store.tables import webhook_outbox, webhook_subscriptions
from tests.app.conftest import market_days, market_frame, write_csv_folder

runner = CliRunner()

FILTERS = [
    {"name": "trend", "kind": "sma_ratio", "inputs": ["SPY"], "params": {"window": 50},
     "threshold": 1.0, "fires": "below"},
    {"name": "volatility", "kind": "level", "inputs": ["^VIX", "^VIX3M"], "threshold": 1.0,
     "fires": "above"},
    {"name": "credit", "kind": "zscore", "inputs": ["HYG", "IEF"], "params": {"window": 60},
     "threshold": -1.0, "fires": "below"},
]  # fmt: skip
KINDS = {
    "k-votes": {"filters": FILTERS},
    "k-weighted": {
        "filters": [{**FILTERS[0], "weight": 2.0}, *FILTERS[1:]],
        "table": {"caution_votes": 1, "risk_off_votes": 3},
    },
    "k-score": {
        "filters": [{**f, "weight": w} for f, w in zip(FILTERS, (1.0, 0.5, 0.2), strict=True)],
        "score": {"points": [[1.2, 0.0], [1.45, 0.5], [1.7, 1.0]]},
    },
    "k-confirm": {"filters": FILTERS, "hysteresis": {"confirm_days": 3}},
    "k-dwell": {"filters": FILTERS, "hysteresis": {"min_dwell_days": 5}},
    "k-voltarget": {
        "filters": FILTERS,
        "vol_target": {"target_volatility": 0.1, "lookback_days": 20, "max_leverage": 1.0},
    },
}
DAYS = market_days()
FRAME = market_frame(DAYS)
FED = list(DAYS[-3:])  # fed one at a time after the history


def definition(name: str) -> RuleSetDefinition:
    return RuleSetDefinition.from_dict({"name": name, **KINDS[name]})


def expected(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    closes = {symbol: frame[symbol].rename(symbol) for symbol in frame.columns}
    return compute_regimes(compute_features(closes), definition(name))


def run(*args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_every_rule_set_kind_is_served_backtested_revised_and_notified(cli_env, tmp_path):
    run("db", "upgrade")
    run(
        "update",
        "--source",
        "csv",
        "--path",
        str(write_csv_folder(tmp_path / "h", FRAME.loc[: DAYS[-4]])),
    )
    engine = create_engine(cli_env)
    for name, body in KINDS.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"name": name, **body}))
        assert "registered" in run("rule-sets", "register", str(path))
    with engine.begin() as connection:
        for name in KINDS:
            connection.execute(
                insert(webhook_subscriptions).values(
                    id=str(uuid.uuid4()),
                    url="https://hooks.invalid/regime",
                    secret="whsec_" + "A" * 43 + "=",
                    policy=f"rule_set:{name}",
                    active=1,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
    listed = run("rule-sets", "list")
    assert all(name in listed for name in KINDS)

    for day in FED:
        run(
            "update",
            "--source",
            "csv",
            "--path",
            str(write_csv_folder(tmp_path / f"{day:%m%d}", FRAME.loc[:day])),
        )
        with TestClient(create_app()) as client:
            for name in KINDS:
                want = expected(FRAME.loc[:day], name).iloc[-1]
                today = client.get("/regime/today", params={"rule_set": name})
                assert today.status_code == 200, (name, today.text)
                body = today.json()
                assert body["as_of"] == day.date().isoformat(), name
                assert body["regime"] == want["regime"], (name, day)
                assert body["exposure"] == pytest.approx(float(want["exposure"])), (name, day)
                assert body["rule_set"]["fingerprint"] == definition(name).fingerprint
                on_day = client.get(f"/regime/{day.date()}", params={"rule_set": name}).json()
                assert on_day["exposure"] == pytest.approx(float(want["exposure"]))
                page = client.get("/regimes", params={"rule_set": name, "latest": 2}).json()
                assert [i["date"] for i in page["items"]][-1] == day.date().isoformat()
                stats = client.get("/regimes/stats", params={"rule_set": name})
                assert stats.status_code == 200, stats.text
                backtest = client.post(
                    "/backtest",
                    json={"strategies": [{"kind": "rule_set", "rule_set": name}], "store": False},
                )
                assert backtest.status_code == 200, (name, backtest.text[:300])

    # Served equals backtested, day by day, for every kind (the command line's loader).
    with engine.connect() as connection, TestClient(create_app()) as client:
        for name in KINDS:
            request = resolve_request(
                connection,
                BacktestRequest(strategies=[{"kind": "rule_set", "rule_set": name}]),
            )
            inputs = load_backtest_inputs(connection, request=request, model_version=None)
            backtested = next(iter(run_backtest(request, inputs).signals.values())).exposure
            items = client.get("/regimes", params={"rule_set": name, "limit": 5000}).json()["items"]
            served = pd.Series(
                [i["exposure"] for i in items],
                index=pd.to_datetime([i["date"] for i in items]),
                dtype=float,
            ).reindex(backtested.index)
            known = served.notna().to_numpy()
            assert known.sum() > 100, name
            np.testing.assert_allclose(
                served.to_numpy()[known], backtested.to_numpy()[known], rtol=0, atol=1e-12
            )

    # A revision of a past close recomputes every kind from the revised data.
    revised = FRAME.copy()
    revised_day = DAYS[-8]
    revised.loc[revised_day:, "SPY"] *= 0.9  # a sharp fall from that day on
    output = run(
        "update", "--source", "csv", "--accept-revisions", "--path",
        str(write_csv_folder(tmp_path / "revised", revised)),
    )  # fmt: skip
    assert "revision" in output.lower()
    with TestClient(create_app()) as client:
        for name in KINDS:
            want = expected(revised, name)
            for day in (revised_day, DAYS[-1]):
                got = client.get(f"/regime/{day.date()}", params={"rule_set": name}).json()
                assert got["exposure"] == pytest.approx(float(want.loc[day, "exposure"])), (
                    name,
                    day,
                )

        # Notified: one event per change of each kind's published answer, in order.
        ledger = client.get("/publications", params={"limit": 1000}).json()["items"]
    with engine.connect() as connection:
        for name in KINDS:
            published = [item for item in ledger if item["policy"] == f"rule_set:{name}"]
            changes, previous = [], None
            for item in published:
                current = _publication(item)
                if regime_changed(current, previous):
                    changes.append(item["id"])
                previous = current
            queued = (
                connection.execute(
                    select(webhook_outbox.c.publication_id)
                    .join(
                        webhook_subscriptions,
                        webhook_subscriptions.c.id == webhook_outbox.c.subscription_id,
                    )
                    .where(webhook_subscriptions.c.policy == f"rule_set:{name}")
                    .order_by(webhook_outbox.c.id)
                )
                .scalars()
                .all()
            )
            assert changes and list(queued) == changes, name
    engine.dispose()


def _publication(item: dict) -> Publication:
    """A ledger row from its /publications form (regime_changed reads its body)."""
    return Publication(
        id=item["id"],
        day=dt.date.fromisoformat(item["day"]),
        policy=item["policy"],
        rule_set_version=item["rule_set_version"],
        model_version=item["model_version"],
        data_fingerprint=item["data_fingerprint"],
        run_id=item["run_id"],
        published_at=dt.datetime.fromisoformat(item["published_at"]),
        body=canonical_json(item["body"]),
        body_sha256=item["body_sha256"],
    )
