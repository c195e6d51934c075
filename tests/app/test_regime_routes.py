"""GET /regime/today, /regime/{day} and /regimes on the hand-built market (see conftest)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math

import numpy as np
import pandas as pd
import pytest

from tests.app.conftest import LAST_DAY, N_DAYS, admin, market_days, running, write_csv_folder
from tests.store.days import xnys_days

GROWTH = 1.001


def trend_value_by_formula(day_index: int) -> float:
    """close / SMA200 of 100 * g**i at day i, from the geometric series' closed form."""
    close = GROWTH**day_index
    sma = GROWTH ** (day_index - 199) * (GROWTH**200 - 1) / (GROWTH - 1) / 200
    return close / sma


def last_day_credit_z() -> float:
    """z-score of HYG/IEF on the last day over its 252-day window, by plain numpy."""
    i = np.arange(N_DAYS - 252, N_DAYS)
    ratio = (50.0 + 0.5 * (-1.0) ** i) / 100.0
    ratio[-1] = 0.40
    return float((ratio[-1] - ratio.mean()) / ratio.std(ddof=1))


def test_today_gives_filters_votes_regime_and_exposure(client):
    response = client.get("/regime/today")
    assert response.status_code == 200
    body = response.json()
    assert body["as_of"] == "2012-04-05"
    assert body["stale"] is False  # Monday before the open after Good Friday
    assert body["expected_as_of"] == "2012-04-05"
    assert (body["regime"], body["exposure"], body["policy"]) == ("risk-off", 0.0, "rules")
    rules = body["rules"]
    assert (rules["votes"], rules["available"], rules["enabled"]) == (2, 3, 3)
    trend, vol, credit = (rules["filters"][name] for name in ("trend", "volatility", "credit"))
    assert trend["state"] == "clear" and trend["threshold"] == 1.0
    assert trend["value"] == pytest.approx(trend_value_by_formula(N_DAYS - 1), rel=1e-12)
    assert trend["detail"] == "close / SMA200"
    assert vol == {
        "state": "firing",
        "value": pytest.approx(1.1),
        "threshold": 1.0,
        "detail": "VIX / VIX3M",
    }
    assert credit["state"] == "firing" and credit["threshold"] == -1.0
    assert credit["value"] == pytest.approx(last_day_credit_z(), rel=1e-9)
    assert credit["detail"] == "HYG/IEF z-score, 252d"
    assert body["model"]["available"] is False
    assert "no model version found" in body["model"]["reason"]


@pytest.mark.parametrize(
    ("now", "stale", "expected"),
    [
        (dt.datetime(2012, 4, 5, 19, 0, tzinfo=dt.UTC), False, "2012-04-04"),  # before close
        (dt.datetime(2012, 4, 6, 22, 0, tzinfo=dt.UTC), False, "2012-04-05"),  # Good Friday
        (dt.datetime(2012, 4, 9, 20, 30, tzinfo=dt.UTC), True, "2012-04-09"),  # Monday closed
    ],
    ids=["before-the-close", "exchange-holiday", "next-session-closed"],
)
def test_stale_flag_follows_the_nyse_calendar(settings, now, stale, expected):
    with running(settings, now=now) as client:
        body = client.get("/regime/today").json()
    assert (body["stale"], body["expected_as_of"], body["as_of"]) == (stale, expected, "2012-04-05")


def test_one_day_by_date_and_unknown_or_malformed_dates(client):
    day_before = client.get("/regime/2012-04-04").json()
    assert (day_before["regime"], day_before["exposure"], day_before["rules"]["votes"]) == (
        "risk-on",
        1.0,
        0,
    )
    credit = day_before["rules"]["filters"]["credit"]
    assert credit["value"] == pytest.approx(math.sqrt(251 / 252), rel=1e-9)
    assert day_before["stale"] is None  # staleness is about today only

    holiday = client.get("/regime/2012-04-06")
    assert holiday.status_code == 404
    assert holiday.headers["content-type"] == "application/problem+json"
    assert "2012-04-06" in holiday.json()["detail"]

    malformed = client.get("/regime/2012-13-01")
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["field"] == "path.day"


def test_history_pages_follow_the_cursor_to_the_end(client):
    days = market_days()
    start = days[-25].date()
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"start": start.isoformat(), "limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/regimes", params=params).json()
        seen += [item["date"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [d.date().isoformat() for d in days[-25:]]
    last = client.get("/regimes", params={"start": LAST_DAY.isoformat()}).json()
    assert last["count"] == 1 and last["next_cursor"] is None
    assert last["items"][0]["regime"] == "risk-off"
    assert last["items"][0]["volatility_state"] == "firing"


def test_history_as_csv_by_parameter_or_accept_header(client):
    params = {"start": "2012-04-03", "end": "2012-04-05"}
    by_param = client.get("/regimes", params={**params, "format": "csv"})
    by_header = client.get("/regimes", params=params, headers={"Accept": "text/csv"})
    assert by_param.headers["content-type"].startswith("text/csv")
    assert by_param.text == by_header.text
    rows = list(csv.DictReader(io.StringIO(by_param.text)))
    assert [(r["date"], r["regime"], r["exposure"]) for r in rows] == [
        ("2012-04-03", "risk-on", "1.0"),
        ("2012-04-04", "risk-on", "1.0"),
        ("2012-04-05", "risk-off", "0.0"),
    ]
    assert rows[0]["model_regime"] == "" and rows[2]["volatility_value"] == repr(1.1)
    paged = client.get("/regimes", params={**params, "format": "csv", "limit": 2})
    assert paged.headers["X-Next-Cursor"] == "2012-04-05"


def test_history_parameters_are_bounded_and_named(client):
    too_many = client.get("/regimes", params={"limit": 5001})
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "query.limit"
    reversed_range = client.get("/regimes", params={"start": "2012-04-05", "end": "2012-01-01"})
    assert reversed_range.status_code == 422
    assert "'start'" in reversed_range.json()["detail"]
    bad_policy = client.get("/regimes", params={"policy": "magic"})
    assert bad_policy.status_code == 422
    assert bad_policy.json()["errors"][0]["field"] == "query.policy"
    today = client.get("/regime/today", params={"policy": "magic"})
    assert today.status_code == 422
    assert today.json()["errors"][0]["field"] == "query.policy"
    assert "'rules', 'model', 'ensemble'" in today.json()["detail"]
    mapping = client.get("/regime/today", params={"policy": "model", "mapping": "2x"})
    assert mapping.json()["errors"][0]["field"] == "query.mapping"
    empty = client.get("/regimes", params={"start": "2030-01-01"}).json()
    assert (empty["count"], empty["items"], empty["next_cursor"]) == (0, [], None)


def appended(frame: pd.DataFrame, extra: int) -> pd.DataFrame:
    """``frame`` plus ``extra`` later business days continuing calm markets."""
    days = xnys_days(str(frame.index[-1].date() + dt.timedelta(days=1)), periods=extra)
    i = np.arange(len(frame), len(frame) + extra)
    later = pd.DataFrame(
        {
            "SPY": 100.0 * GROWTH**i,
            "^VIX": 20.0,
            "^VIX3M": 25.0,
            "HYG": 50.0 + 0.5 * (-1.0) ** i,
            "IEF": 100.0,
        },
        index=days,
    )
    return pd.concat([frame, later])


def test_appending_future_days_never_changes_earlier_answers(settings, market, csv_folder):
    """Point in time through the whole service: ingest later days, refresh, compare."""
    with running(settings, now=dt.datetime(2012, 4, 20, 12, tzinfo=dt.UTC)) as client:
        before = client.get("/regimes", params={"limit": 5000}).json()["items"]
        write_csv_folder(csv_folder, appended(market, 10))
        refreshed = client.post("/admin/refresh", headers=admin())
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["rejected"] == []
        after = client.get("/regimes", params={"limit": 5000}).json()["items"]
        today = client.get("/regime/today").json()
    assert len(after) == len(before) + 10
    assert after[: len(before)] == before
    assert today["as_of"] == after[-1]["date"] == "2012-04-20"
