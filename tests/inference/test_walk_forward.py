"""The walk-forward out-of-sample history a version ships: file, activation, serving."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from backtest.schemas import BacktestRequest
from core.enums import Policy
from core.errors import ConfigError, NotFoundError
from core.features import compute_features
from inference import walk_forward
from inference.in_sample import ModelHistory
from inference.predictor import RegimePredictor
from inference.registry import read_card
from operations.activation import activate_model
from operations.backtests import run_and_store_backtest
from operations.models import ModelSlot
from store import model_registry
from store.db import make_engine
from store.repository import (
    load_served_model_outputs,
    load_walk_forward_outputs,
    write_features,
    write_model_outputs,
    write_walk_forward_outputs,
)
from tests.app.conftest import load_market, market_days, market_frame, write_csv_folder
from tests.conftest import make_closes
from tests.inference.closed_form import write_closed_form_model

CUTOFF = pd.Timestamp("2011-12-30")  # the closed-form card's in-sample cut-off
SUMMARY = {"brier": 0.1, "ece": 0.02, "folds": [{"year": 2011, "fold_cutoff": "2010-12-31"}]}


def _history(days: pd.DatetimeIndex) -> pd.DataFrame:
    """Made-up refit outputs: p = 0.9 on even positions, 0.2 on odd; fold = previous year."""
    p = np.where(np.arange(len(days)) % 2 == 0, 0.9, 0.2)
    return pd.DataFrame(
        {
            "p_distressed": p,
            "regime": (p >= 0.5).astype(int),
            "fold_cutoff": [dt.date(day.year - 1, 12, 31) for day in days],
        },
        index=pd.DatetimeIndex(days, name="date"),
    )


@pytest.fixture
def version(tmp_path: Path) -> str:
    return write_closed_form_model(tmp_path)


def test_the_file_round_trips_and_the_card_records_its_digest(tmp_path, version) -> None:  # type: ignore[no-untyped-def]
    days = pd.bdate_range("2011-01-03", "2011-12-30")
    card = walk_forward.attach(tmp_path, version, _history(days), SUMMARY)
    assert card.walk_forward["days"] == len(days)
    assert (card.walk_forward["first"], card.walk_forward["last"]) == ("2011-01-03", "2011-12-30")
    assert read_card(tmp_path, version).walk_forward == card.walk_forward
    back = walk_forward.read(tmp_path, card)
    pd.testing.assert_frame_equal(back, _history(days), check_freq=False, check_dtype=False)


def test_a_changed_file_is_refused(tmp_path, version) -> None:  # type: ignore[no-untyped-def]
    card = walk_forward.attach(
        tmp_path, version, _history(pd.bdate_range("2011-06-01", periods=5)), SUMMARY
    )
    path = tmp_path / version / walk_forward.WALK_FORWARD_FILE
    path.write_text(path.read_text().replace("0.90000000", "0.10000000"))
    with pytest.raises(ConfigError, match="sha256"):
        walk_forward.read(tmp_path, card)


def test_outputs_that_are_not_out_of_sample_are_refused(tmp_path, version) -> None:  # type: ignore[no-untyped-def]
    past_cutoff = _history(pd.bdate_range("2011-12-29", periods=3))  # runs to 2012-01-02
    with pytest.raises(ConfigError, match="past the in-sample cut-off"):
        walk_forward.attach(tmp_path, version, past_cutoff, SUMMARY)
    own_day = _history(pd.bdate_range("2011-06-01", periods=3))
    own_day["fold_cutoff"] = [day.date() for day in own_day.index]  # fitted on its own day
    with pytest.raises(ConfigError, match="fitted on data up to its own day"):
        walk_forward.attach(tmp_path, version, own_day, SUMMARY)
    assert read_card(tmp_path, version).walk_forward is None  # nothing written


def test_activation_loads_the_history_and_serves_it_out_of_sample_by_default(
    engine: Engine, tmp_path: Path, version: str
) -> None:
    features = compute_features(make_closes(700))  # 2010-01-04 .. 2012-09
    wf_days = features.index[(features.index.year == 2011)]
    walk_forward.attach(tmp_path, version, _history(wf_days), SUMMARY)
    with engine.begin() as connection:
        write_features(connection, table=features)
    _, activation = activate_model(
        engine,
        models_dir=tmp_path,
        version=version,
        rule_set_name="published",
        default_policy=Policy.RULES,
        model_mapping="filter",
    )
    assert activation.walk_forward_days == len(wf_days)
    with engine.connect() as connection:
        served = load_served_model_outputs(connection, model_version=version)
        own = load_served_model_outputs(
            connection, model_version=version, history=ModelHistory.IN_SAMPLE
        )
        stored = load_walk_forward_outputs(connection, model_version=version)
    assert (stored["fold_cutoff"] == _history(wf_days)["fold_cutoff"].to_numpy()).all()
    # In-sample days: the refits' outputs where they exist, nothing in 2010 (no refit).
    inside = served.loc[served.index <= CUTOFF]
    assert list(inside.index.date) == list(wf_days.date)
    np.testing.assert_allclose(inside["p_distressed"], _history(wf_days)["p_distressed"])
    # After the cut-off: the version's own outputs, which are forecasts.
    after = served.loc[served.index > CUTOFF]
    pd.testing.assert_frame_equal(after, own.loc[own.index > CUTOFF])
    assert (served["in_sample"] == 0.0).all()
    # in_sample: the version's own outputs on every day, flagged.
    assert own.index[0] < wf_days[0]
    assert (own.loc[own.index <= CUTOFF, "in_sample"] == 1.0).all()


def test_reactivation_replaces_the_history_and_a_version_without_one_serves_its_own(
    engine: Engine, tmp_path: Path, version: str
) -> None:
    features = compute_features(make_closes(700))
    loaded = RegimePredictor.load(tmp_path, version)
    assert loaded.card.walk_forward is None
    with engine.begin() as connection:
        write_features(connection, table=features)
        model_registry.activate_predictor(
            connection, predictor=loaded, walk_forward=_history(features.index[300:310])
        )
        model_registry.activate_predictor(connection, predictor=loaded)  # none this time
        assert load_walk_forward_outputs(connection, model_version=version).empty
        served = load_served_model_outputs(connection, model_version=version)
    assert (served.loc[served.index <= CUTOFF, "in_sample"] == 1.0).all()  # flagged, as before


def test_an_unknown_version_is_not_found_before_its_history_is_read(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFoundError):
        activate_model(
            engine,
            models_dir=tmp_path,
            version="2011-12-30-abcdef",
            rule_set_name="published",
            default_policy=Policy.RULES,
            model_mapping="filter",
        )


def test_a_backtest_reads_the_out_of_sample_history_unless_asked(
    database_url: str, tmp_path: Path, version: str
) -> None:
    market = market_frame(market_days())
    load_market(database_url, write_csv_folder(tmp_path / "m", market))
    days = market.index
    own = pd.DataFrame(
        {"regime": 0.0, "p_distressed": 0.1, "in_sample": days[100:] <= days[150]},
        index=pd.DatetimeIndex(days[100:], name="date"),
    )
    history = _history(days[120:151]).assign(
        fold_cutoff=[days[119].date()] * 31  # one refit fitted up to the day before
    )
    engine = make_engine(database_url)
    slot = ModelSlot(predictor=RegimePredictor.load(tmp_path, version), version=version)
    try:
        with engine.begin() as connection:
            write_model_outputs(connection, table=own, model_version=version)
            write_walk_forward_outputs(connection, table=history, model_version=version)
        default = BacktestRequest(strategies=[{"kind": "model"}], store=False)
        answer = json.loads(
            run_and_store_backtest(engine, request=default, max_strategies=5, model=slot).body
        )
        assert not any("inside the training data" in note for note in answer["notes"])
        # the model strategy starts where out-of-sample outputs start (day 120), not day 100
        assert dt.date.fromisoformat(answer["period"]["start"]) > days[119].date()
        asked = BacktestRequest(
            strategies=[{"kind": "model"}], store=False, model_history="in_sample"
        )
        answer = json.loads(
            run_and_store_backtest(engine, request=asked, max_strategies=5, model=slot).body
        )
        assert any(f"51 of {len(days) - 100} model output day(s)" in n for n in answer["notes"])
    finally:
        engine.dispose()


def test_the_regimes_route_serves_the_out_of_sample_history_unless_asked(
    database_url: str, tmp_path: Path, version: str
) -> None:
    """/regimes: walk-forward outputs up to the cut-off by default, the version's own
    (in-sample) ones with ?model_history=in_sample; /regime/today carries the summary."""
    from app.settings import Settings
    from tests.app.conftest import API_KEY, admin, running

    market = market_frame(market_days())  # 2011-02 .. 2012-04-05
    load_market(database_url, write_csv_folder(tmp_path / "m", market))
    days = market.index
    refit_days = days[(days >= "2011-11-01") & (days <= CUTOFF)]
    walk_forward.attach(tmp_path, version, _history(refit_days), SUMMARY)
    settings = Settings(
        database_url=database_url,
        model_dir=tmp_path,
        data_source="csv",
        data_path=tmp_path / "m",
        api_key=API_KEY,
        research_processes=0,
        _env_file=None,
    )
    with running(settings) as client:
        assert client.post(f"/admin/models/{version}/activate", headers=admin()).status_code == 200
        span = {"start": "2011-10-25", "end": "2012-01-06"}
        served = client.get("/regimes", params=span).json()["items"]
        own = client.get("/regimes", params=span | {"model_history": "in_sample"}).json()["items"]
        by_day = {row["date"]: row["p_distressed"] for row in served}
        expected = _history(refit_days)["p_distressed"]
        for day, p in expected.items():
            assert by_day[day.date().isoformat()] == pytest.approx(p)
        assert by_day["2011-10-31"] is None  # in sample, and no refit covers it
        own_by_day = {row["date"]: row["p_distressed"] for row in own}
        assert own_by_day["2011-10-31"] is not None
        after = [d for d in by_day if d > "2011-12-30"]
        assert after and all(by_day[d] == own_by_day[d] for d in after)
        bad = client.get("/regimes", params={"model_history": "sometimes"})
        assert bad.status_code == 422 and "model_history" in bad.text
        today = client.get("/regime/today", params={"policy": "model"}).json()["model"]
        summary = today["out_of_sample"]
        assert summary["source"] == "walk-forward" and summary["brier"] == 0.1
        assert summary["in_sample_until"] == "2011-12-30" and "folds" not in summary
