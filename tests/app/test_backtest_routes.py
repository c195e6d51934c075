"""POST /backtest and GET /backtest/{id} on the hand-built market.

SPY returns exactly 0.1% every day and the published rules are risk-on on every
day but the last (whose exposure would be held after the data ends), so both
buy & hold and the rules grow as 1.001 ** days over the period.
"""

from __future__ import annotations

import pytest

from app.settings import Settings
from tests.app.conftest import running

SIX = {
    "strategies": [
        {"kind": "buy_and_hold"},
        {"kind": "rules"},
        {"kind": "single_filter", "filter": "trend"},
        {"kind": "single_filter", "filter": "volatility"},
        {"kind": "single_filter", "filter": "credit"},
        {"kind": "rules", "preset": "platform"},
    ],
    "equity_sampling": "monthly",
}


def test_a_backtest_runs_is_stored_and_read_back(client):
    response = client.post("/backtest", json=SIX)
    assert response.status_code == 201, response.text
    result = response.json()
    days = result["period"]["days"]
    by_name = {s["name"]: s for s in result["strategies"]}
    assert list(by_name) == [
        "Buy & hold",
        "Rules (published)",
        "Trend only",
        "Volatility only",
        "Credit only",
        "Rules (platform)",
    ]
    for name in ("Buy & hold", "Rules (published)"):
        metrics = by_name[name]["metrics"]
        assert metrics["cumulative_return"] == pytest.approx(1.001**days - 1, rel=1e-9)
        assert metrics["max_drawdown"] == pytest.approx(0.0, abs=1e-12)
        assert metrics["time_invested"]["full"] == 1.0
    assert by_name["Rules (published)"]["regime_distribution"]["risk-on"] == 1.0
    assert result["equity"]["sampling"] == "monthly"
    assert result["equity"]["values"]["Buy & hold"][-1] == pytest.approx(1.001**days, rel=1e-8)

    run_id = response.headers["X-Backtest-Id"]
    assert response.headers["Location"] == f"/backtest/{run_id}"
    stored = client.get(f"/backtest/{run_id}")
    assert stored.status_code == 200
    assert stored.json()["result"] == result
    assert stored.json()["request"]["strategies"][1]["kind"] == "rules"
    assert stored.json()["duration_ms"] > 0
    assert client.get("/backtest/no-such-run").status_code == 404


def test_bad_bodies_are_422_naming_the_field(client):
    empty = client.post("/backtest", json={"strategies": []})
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["field"] == "body.strategies"
    unknown_kind = client.post("/backtest", json={"strategies": [{"kind": "astrology"}]})
    assert unknown_kind.status_code == 422
    assert unknown_kind.json()["errors"][0]["field"].startswith("body.strategies.0")
    bad_cost = client.post("/backtest", json={"strategies": [{"kind": "rules"}], "cost_bps": -1})
    assert bad_cost.json()["errors"][0]["field"] == "body.cost_bps"
    after_data = client.post(
        "/backtest", json={"strategies": [{"kind": "rules"}], "start": "2013-01-01"}
    )
    assert after_data.status_code == 422
    assert after_data.json()["errors"] == [
        {"field": "body.start", "message": "2013-01-01 is after the last day of data (2012-04-05)"}
    ]
    not_json = client.post("/backtest", content=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422


def test_requests_beyond_the_bounds_and_model_strategies_without_a_model(settings):
    small = Settings(**{**settings.model_dump(), "max_backtest_strategies": 2}, _env_file=None)
    with running(small) as client:
        too_many = client.post("/backtest", json=SIX)
        assert too_many.status_code == 422
        assert too_many.json()["errors"][0]["field"] == "body.strategies"
        assert "at most 2" in too_many.json()["detail"]
        needs_model = client.post("/backtest", json={"strategies": [{"kind": "model"}]})
        assert needs_model.status_code == 503
        assert "classifier" in needs_model.json()["detail"]
