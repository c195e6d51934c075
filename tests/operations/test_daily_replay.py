"""The daily cycle over time: history to a date, then 60+ trading days of
../shared/data/market fed one day at a time as new yfinance-layout files, each
followed by `deepregime update`, on SQLite and PostgreSQL.

After each day: the published answer equals a from-scratch computation on the
data up to that day; the model has an output for it; every route agrees; one
publication per changed answer (none on a rerun); the loopback webhook
receiver got exactly the regime changes, signatures verified; no revision.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.main import create_app
from app.settings import Settings, get_settings
from cli.main import app as cli
from core.features import compute_features
from core.rules import compute_regimes, rule_set_preset
from inference.predictor import RegimePredictor
from inference.registry import list_versions
from operations import rule_sets
from tests.app.conftest import API_KEY
from tests.operations.replay import Receiver, closes_until, read_market, write_day, write_history

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

MODELS = Path(__file__).resolve().parents[2] / "models"
HISTORY_END = pd.Timestamp("2024-09-27")
runner = CliRunner()


@pytest.fixture
def env(monkeypatch, database_url):
    monkeypatch.setenv("DEEPREGIME_DATABASE_URL", database_url)
    monkeypatch.setenv("DEEPREGIME_MODEL_DIR", str(MODELS))
    monkeypatch.setenv("DEEPREGIME_API_KEY", API_KEY)
    # The webhook receiver listens on loopback, which webhooks refuse by default.
    monkeypatch.setenv("DEEPREGIME_WEBHOOK_ALLOWED_NETWORKS", '["127.0.0.1/32"]')
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def update(path: Path) -> object:
    result = runner.invoke(cli, ["update", "--source", "csv", "--path", str(path)])
    assert result.exit_code == 0, result.output
    return result


def expected_answers(bars, day: pd.Timestamp, predictor: RegimePredictor) -> dict:
    features = compute_features(closes_until(bars, day))
    regimes = compute_regimes(features, rule_set_preset("published"))
    p_distressed = predictor.predict_daily(features.tail(predictor.card.window))["p_distressed"]
    row = regimes.loc[day]
    return {
        "regime": row["regime"],
        "exposure": float(row["exposure"]),
        "votes": int(row["votes"]),
        "trend": float(row["trend_value"]),
        "p_distressed": float(p_distressed.iloc[-1]),
    }


def test_day_by_day_replay(env, tmp_path, market_dir):
    version = list_versions(MODELS)[-1]
    predictor = RegimePredictor.load(MODELS, version)
    bars = read_market(market_dir)
    days = bars["SPY"].frame.index
    new_days = days[days > HISTORY_END]
    assert len(new_days) >= 60

    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    settings = Settings(
        database_url=env,
        model_dir=MODELS,
        api_key=API_KEY,
        publication_check_s=0.0,
        webhook_poll_s=0,
        webhook_allowed_networks=["127.0.0.1/32"],  # as the environment above
        _env_file=None,
    )
    receiver = Receiver().start()
    try:
        with TestClient(create_app(settings)) as client:
            created = client.post(
                "/admin/webhooks", json={"url": receiver.url}, headers={"X-API-Key": API_KEY}
            )
            assert created.status_code == 201, created.text
            receiver.secret = created.json()["secret"]

            update(write_history(tmp_path / "history", market_dir, HISTORY_END))
            expected_events = [HISTORY_END.date()]
            previous = expected_answers(bars, HISTORY_END, predictor)
            after = HISTORY_END
            for number, day in enumerate(new_days):
                output = update(write_day(tmp_path / f"day-{day:%Y%m%d}", bars, after, day)).output
                after = day
                expected = expected_answers(bars, day, predictor)
                if (expected["regime"], expected["exposure"]) != (
                    previous["regime"],
                    previous["exposure"],
                ):
                    expected_events.append(day.date())
                previous = expected

                # One publication per served answer that changed: all four, as the day
                # moved, and one for each rule set published by name (operations.rule_sets).
                by_name = len(rule_sets.built_in()) - 1
                assert output.count("published #") == 4 + by_name, output
                if number % 20 == 0:  # a rerun finds nothing new and publishes nothing
                    again = update(tmp_path / f"day-{day:%Y%m%d}").output
                    assert "nothing new to publish" in again and "published #" not in again

                today = client.get("/regime/today").json()
                assert today["as_of"] == f"{day:%Y-%m-%d}"
                assert today["regime"] == expected["regime"]
                assert today["exposure"] == expected["exposure"]
                assert today["rules"]["votes"] == expected["votes"]
                assert today["rules"]["filters"]["trend"]["value"] == pytest.approx(
                    expected["trend"], rel=1e-12
                )
                assert today["model"]["available"] is True
                assert today["model"]["p_distressed"] == pytest.approx(
                    expected["p_distressed"], abs=1e-6
                )
                assert isinstance(today["publication_id"], int)

                # Every route gives the same answer for the day, under every policy.
                for policy in ("rules", "ensemble", "model"):
                    latest = client.get(f"/regime/today?policy={policy}").json()
                    on_day = client.get(f"/regime/{day:%Y-%m-%d}?policy={policy}").json()
                    page = client.get(
                        f"/regimes?start={day:%Y-%m-%d}&end={day:%Y-%m-%d}&policy={policy}"
                    ).json()
                    assert latest["regime"] == on_day["regime"] == page["items"][0]["regime"]
                    assert latest["exposure"] == on_day["exposure"] == page["items"][0]["exposure"]
                    assert latest["model"] == on_day["model"]
                    assert on_day["revised"] is False

            events = [dt.date.fromisoformat(e["data"]["day"]) for e in receiver.events]
            assert receiver.failures == []
            assert [e["type"] for e in receiver.events] == ["regime.changed"] * len(events)
            assert sorted(events) == expected_events
            assert client.get("/revisions").json() == []
            ledger = client.get("/publications?policy=rules&limit=1000").json()
            assert [item["day"] for item in ledger["items"]] == [
                d.isoformat() for d in [HISTORY_END.date(), *new_days.date]
            ]
            assert np.all(np.diff([item["id"] for item in ledger["items"]]) > 0)
    finally:
        receiver.stop()
