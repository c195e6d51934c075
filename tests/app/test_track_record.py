"""GET /track-record on a ledger written day by day by the real daily cycle, with the
tiny closed-form model serving: every expected figure is worked out here by hand from
the made-up market (VIX 12, then 20 over the last 10 days; SPY up 0.1% a day)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from operations.models import load_slot
from store.db import make_engine
from store.model_registry import activate_predictor
from tests.app.conftest import (
    API_KEY,
    load_market,
    market_days,
    market_frame,
    running,
    write_csv_folder,
)
from tests.app.model_factory import WINDOW, expected_p_distressed, write_tiny_model

FED_DAYS = 15  # the last 15 sessions are published one daily cycle at a time


@pytest.fixture
def fed(database_url: str, tmp_path: Path) -> tuple[Settings, list[float]]:
    """The market up to 15 sessions before its end, the tiny model activated, then one
    daily cycle per remaining session; returns the app's settings and the VIX closes."""
    days = market_days()
    frame = market_frame(days)
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    version = write_tiny_model(models_dir)
    first_fed = len(days) - FED_DAYS
    before = days[first_fed - 1]
    load_market(database_url, write_csv_folder(tmp_path / "start", frame.loc[:before]), before)
    slot = load_slot(models_dir, version)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            activate_predictor(connection, predictor=slot.predictor)
    finally:
        engine.dispose()
    for i in range(first_fed, len(days)):
        folder = write_csv_folder(tmp_path / f"day{i}", frame.iloc[: i + 1])
        load_market(database_url, folder, days[i].date(), model=slot)
    settings = Settings(
        database_url=database_url,
        model_dir=models_dir,
        data_source="csv",
        data_path=tmp_path / "start",
        api_key=API_KEY,
        _env_file=None,
    )
    return settings, frame["^VIX"].tolist()


def test_the_track_record_scores_what_was_published(fed):
    settings, vix = fed
    n = len(vix)
    published = range(n - FED_DAYS, n)
    # By hand: p from the closed form; the outcome (target "label", horizon 0) is the
    # card's nearest centroid of the day's VIX among 12 (calm) and 20 (distressed).
    p = [expected_p_distressed(vix[i - WINDOW + 1 : i + 1]) for i in published]
    y = [1 if vix[i] == 20.0 else 0 for i in published]
    assert sum(y) == 10 and len(y) == 15
    brier = sum((pi - yi) ** 2 for pi, yi in zip(p, y, strict=True)) / len(p)
    pairs = [
        (a, b)
        for a, ya in zip(p, y, strict=True)
        if ya
        for b, yb in zip(p, y, strict=True)
        if not yb
    ]
    auc = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    bins: dict[int, list[int]] = {}
    for k, pi in enumerate(p):
        bins.setdefault(min(int(pi * 10), 9), []).append(k)
    ece = sum(
        abs(sum(p[k] for k in ks) / len(ks) - sum(y[k] for k in ks) / len(ks)) * len(ks)
        for ks in bins.values()
    ) / len(p)
    # model:filter holds 100% when calm (p < 0.5), 0% when distressed, over the next
    # session, which returns 0.1%; the last published day has no next session yet.
    held_in = [1.0 if pi < 0.5 else 0.0 for pi in p[:-1]]

    with running(settings) as client:
        answer = client.get("/track-record", params={"policy": "model:filter"})
        assert answer.status_code == 200, answer.text
        record = answer.json()
        ledger = client.get("/publications", params={"policy": "model:filter"}).json()["items"]
        rules = client.get("/track-record").json()
        refusals = {
            field: client.get("/track-record", params=params)
            for params, field in (
                ({"colour": "red"}, "query.colour"),
                ({"market": "NOPE"}, "query.market"),
                ({"policy": "model:x"}, "query.policy"),
                ({"rule_set": "no-such-rule-set"}, "query.rule_set"),
            )
        }

    assert record["ledger_policy"] == "model:filter"
    assert record["market"] == "SPY" and record["symbol"] == "SPY"
    assert record["published_days"] == FED_DAYS == len(ledger)
    assert record["corrections"] == []
    [model] = record["probabilities"]
    assert (model["target"], model["horizon"]) == ("label", 0)
    assert (model["published"], model["resolved"], model["pending"]) == (15, 15, 0)
    assert [d["p_distressed"] for d in model["days"]] == pytest.approx(p, rel=1e-5)
    assert [d["outcome"] for d in model["days"]] == y
    assert model["brier"] == pytest.approx(brier, abs=1e-6)
    assert model["roc_auc"] == pytest.approx(auc)
    assert model["ece"] == pytest.approx(ece, abs=1e-6)
    assert sum(b["days"] for b in model["reliability"]) == 15
    assert {round(b["lower"] * 10) for b in model["reliability"]} == set(bins)
    assert model["rolling_brier"][-1]["brier"] == pytest.approx(brier, abs=1e-6)

    exposures = record["exposures"]
    assert (exposures["sessions"], exposures["pending"]) == (14, 1)
    assert [d["exposure"] for d in exposures["days"]] == held_in
    assert held_in.count(1.0) == 6
    assert exposures["cumulative_return"] == pytest.approx(1.001**6 - 1, rel=1e-9)
    assert exposures["buy_and_hold_cumulative_return"] == pytest.approx(1.001**14 - 1, rel=1e-9)
    [year] = exposures["years"]
    assert year["year"] == 2012
    assert year["return"] == pytest.approx(1.001**6 - 1, rel=1e-9)
    # Recomputable from the ledger: the days scored are the ledger's days, in order.
    assert [d["day"] for d in model["days"]] == [row["day"] for row in ledger]

    # Rules (the default policy) were published from the day before the first fed one:
    # risk-on (100%) on all 16 days; the last is pending.
    assert rules["ledger_policy"] == "rules"
    assert [d["exposure"] for d in rules["exposures"]["days"]] == [1.0] * 15
    assert rules["exposures"]["cumulative_return"] == pytest.approx(1.001**15 - 1, rel=1e-9)

    for field, refused in refusals.items():
        assert refused.status_code == 422, (field, refused.text)
        assert refused.json()["errors"][0]["field"] == field, refused.json()
