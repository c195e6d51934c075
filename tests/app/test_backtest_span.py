"""A backtest never covers less than it was asked without saying so."""

from __future__ import annotations

from tests.app.conftest import market_days


def test_a_later_start_than_asked_is_noted_naming_the_strategy(client):
    first_day = market_days()[0].date()
    answer = client.post(
        "/backtest",
        json={
            "strategies": [
                {"kind": "buy_and_hold"},
                {
                    "kind": "vol_target",
                    "name": "Volatility-targeted",
                    "base": {"kind": "buy_and_hold"},
                    "lookback_days": 60,
                },
            ],
            "start": first_day.isoformat(),
            "store": False,
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    start = body["period"]["start"]
    # The overlay holds no position before 60 days of returns exist.
    assert start > market_days()[60].date().isoformat()
    [note] = [n for n in body["notes"] if n.startswith("the period starts on")]
    assert f"starts on {start}, not on the requested {first_day}" in note
    assert "Volatility-targeted (a position from" in note
    assert "Buy & hold (a position from" not in note


def test_no_note_when_the_period_starts_where_asked(client):
    days = market_days()
    asked = days[-60].date().isoformat()
    answer = client.post(
        "/backtest",
        json={"strategies": [{"kind": "buy_and_hold"}], "start": asked, "store": False},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["period"]["start"] == asked
    assert not [n for n in answer.json()["notes"] if n.startswith("the period starts on")]
