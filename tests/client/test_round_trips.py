"""The client against a live service on SQLite and PostgreSQL: every operation's answer,
read into its model, says what the made-up market was built to say.

The market (tests/app/conftest.py): 300 business days to 2012-04-05, SPY up 0.1% a day;
every day with all three filters is risk-on (exposure 1) except the last, where two
filters fire (risk-off, exposure 0).
"""

from __future__ import annotations

import datetime as dt
import math

import httpx
import pandas as pd
import pytest
from deepregime_client import (
    BacktestResult,
    Client,
    ProblemError,
    PublicationPage,
    RegimeReport,
    RegimeRow,
)

from tests.app.conftest import API_KEY, LAST_DAY, market_days

BACKTEST = {"strategies": [{"kind": "buy_and_hold"}, {"kind": "rules"}]}
SWEEP = {
    "name": "small",
    "grid": {"trend": {"windows": [20, 50]}, "cost_bps": [0, 5]},
    "walk_forward": {"first_in_sample_years": 2},
}


@pytest.fixture
def client(service):
    with Client(service.url) as client:
        yield client


def test_today_is_the_last_days_published_answer(client):
    report = client.today()
    assert isinstance(report, RegimeReport)
    assert (report.as_of, report.regime, report.exposure) == (LAST_DAY, "risk-off", 0.0)
    assert report.policy == "rules" and report.rules.votes == 2
    assert {name: reading.state for name, reading in report.rules.filters.items()} == {
        "trend": "clear",
        "volatility": "firing",
        "credit": "firing",
    }
    assert report.model.available is False and report.model.reason
    # Read by the service's clock, long after 2012: the answer is stale.
    assert report.stale is True and report.expected_as_of > LAST_DAY
    ensemble = client.today(policy="ensemble")
    assert ensemble.policy == "ensemble" and ensemble.publication_id != report.publication_id


def test_one_day_now_and_as_known_at(client):
    before = client.regime("2012-04-04")
    assert (before.as_of, before.regime, before.exposure) == (dt.date(2012, 4, 4), "risk-on", 1.0)
    assert before.revised is False

    published = client.today()
    assert published.published_at is not None
    known = client.regime(LAST_DAY, as_known_at=published.published_at + dt.timedelta(seconds=1))
    assert known.publication_id == published.publication_id
    assert (known.regime, known.exposure) == ("risk-off", 0.0)
    with pytest.raises(ProblemError) as earlier:
        client.regime(LAST_DAY, as_known_at=published.published_at - dt.timedelta(seconds=1))
    assert earlier.value.status == 404
    assert "nothing had been published" in earlier.value.detail


def test_history_reads_every_page_into_a_frame_or_rows(client, service):
    frame = client.history(page_size=100)  # three pages
    # The same days as one page of 1,000 read without the client: none lost or repeated.
    whole = httpx.get(f"{service.url}/regimes", params={"limit": 1000}, timeout=10).json()
    assert isinstance(frame, pd.DataFrame) and len(frame) > 200
    assert list(frame.index) == list(pd.to_datetime([row["date"] for row in whole["items"]]))
    assert set(frame.index) <= set(market_days()) and frame.index[-1] == pd.Timestamp(LAST_DAY)
    assert frame.loc[pd.Timestamp(LAST_DAY), ["regime", "exposure", "votes"]].tolist() == [
        "risk-off",
        0.0,
        2,
    ]
    full = frame[frame["available"] == 3]
    assert set(full["regime"].iloc[:-1]) == {"risk-on"}

    rows = client.history(start="2012-04-02", end=LAST_DAY, as_frame=False)
    assert all(isinstance(row, RegimeRow) for row in rows)
    assert [row.date.day for row in rows] == [2, 3, 4, 5]
    assert [row.exposure for row in rows] == [1.0, 1.0, 1.0, 0.0]


def test_publications_page_through_the_ledger(client):
    everything = client.publications()
    assert isinstance(everything, PublicationPage) and everything.next_after_id is None
    assert everything.count >= 2  # rules and ensemble at least
    first = client.publications(limit=1)
    assert first.count == 1 and first.next_after_id == first.items[0].id
    rest = client.publications(after_id=first.next_after_id)
    assert [p.id for p in first.items + rest.items] == [p.id for p in everything.items]

    (rules,) = client.publications(policy="rules").items
    assert rules.id == client.today().publication_id
    assert (rules.day, rules.body["regime"], rules.body["exposure"]) == (LAST_DAY, "risk-off", 0.0)


def test_a_backtest_is_run_stored_and_answered_once_per_idempotency_key(client, service, market):
    result = client.backtest(BACKTEST, idempotency_key="desk-a-0001")
    assert isinstance(result, BacktestResult)
    assert result.period.end == LAST_DAY
    # Buy & hold earns SPY's close to close from the day before the period to its end.
    spy = market["SPY"]
    entry = spy[spy.index < pd.Timestamp(result.period.start)].iloc[-1]
    hold = result.strategy("Buy & hold")
    assert math.isclose(hold.metrics.cumulative_return, spy.iloc[-1] / entry - 1, rel_tol=1e-9)
    assert hold.metrics.time_invested.full == 1.0

    stored = httpx.get(f"{service.url}/backtest/{result.run_id}", timeout=10).json()
    assert stored["result"]["period"]["days"] == result.period.days
    again = client.backtest(BACKTEST, idempotency_key="desk-a-0001")
    assert again.run_id == result.run_id
    assert client.backtest(BACKTEST).run_id != result.run_id  # a new key: a new run


def test_problems_carry_status_detail_and_the_fields_named(client):
    with pytest.raises(ProblemError) as missing:
        client.regime("2000-01-03")
    assert missing.value.status == 404 and "not a trading day" in missing.value.detail
    with pytest.raises(ProblemError) as bad_page:
        client.history(page_size=0)
    assert (bad_page.value.status, bad_page.value.fields) == (422, ["query.limit"])
    assert bad_page.value.title == "Unprocessable Entity"
    with pytest.raises(ProblemError) as bad_body:
        client.backtest({"strategies": []})
    assert bad_body.value.status == 422 and bad_body.value.fields == ["body.strategies"]


def test_a_sweep_is_queued_read_and_cancelled(service):
    with Client(service.url, api_key=API_KEY) as client:  # queuing a sweep needs a key
        queued = client.create_sweep(SWEEP)  # the service runs no sweeps here (sweep_poll_s=0)
        assert (queued.status, queued.variants, queued.finished) == ("queued", 4, False)
        assert client.sweep(queued.id).status == "queued"
        with pytest.raises(ProblemError) as not_done:
            client.sweep_results(queued.id)
        assert not_done.value.status == 409
        cancelled = client.cancel_sweep(queued.id)
        assert (cancelled.status, cancelled.finished) == ("cancelled", True)
        with pytest.raises(ProblemError) as unknown:
            client.sweep("no-such-sweep")
        assert unknown.value.status == 404
