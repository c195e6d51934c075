"""Honest history: every stored model output records whether its day was in sample."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from backtest.schemas import BacktestRequest
from core.features import compute_features
from inference.in_sample import in_sample_note
from inference.predictor import RegimePredictor
from operations.backtests import run_and_store_backtest
from operations.models import ModelSlot
from operations.update import score_new_days
from store import model_registry
from store.db import make_engine
from store.repository import load_model_outputs, write_features, write_model_outputs
from tests.app.conftest import load_market, market_days, market_frame, write_csv_folder
from tests.conftest import make_closes
from tests.inference.closed_form import closed_form_card, closed_form_onnx, write_closed_form_model

CUTOFF = dt.date(2011, 12, 30)  # the closed-form card's training_period.end


@pytest.fixture
def predictor(tmp_path: Path) -> RegimePredictor:
    return RegimePredictor.load(tmp_path, write_closed_form_model(tmp_path))


def test_the_card_cut_off_decides_in_sample_days() -> None:
    days = pd.DatetimeIndex(["2011-12-29", "2011-12-30", "2012-01-02"])
    old_card = closed_form_card(closed_form_onnx())
    assert old_card.sample_cutoff == CUTOFF
    assert old_card.in_sample(days).tolist() == [True, True, False]
    later = closed_form_card(closed_form_onnx(), in_sample_until=dt.date(2012, 1, 2))
    assert later.in_sample(days).tolist() == [True, True, True]


def test_activation_stores_the_flag_for_every_day(engine: Engine, predictor) -> None:  # type: ignore[no-untyped-def]
    features = compute_features(make_closes(700))
    with engine.begin() as connection:
        write_features(connection, table=features)
        model_registry.activate_predictor(connection, predictor=predictor)
    with engine.connect() as connection:
        stored = load_model_outputs(
            connection, model_version=predictor.version, with_in_sample=True
        )
        plain = load_model_outputs(connection, model_version=predictor.version)
    assert "in_sample" not in plain  # existing readers see the columns they always did
    expected = (stored.index <= pd.Timestamp(CUTOFF)).astype(float)
    np.testing.assert_array_equal(stored["in_sample"].to_numpy(), expected)
    assert 0 < expected.sum() < len(expected)


def test_scoring_new_days_flags_them_and_keeps_the_past(engine: Engine, predictor) -> None:  # type: ignore[no-untyped-def]
    features = compute_features(make_closes(700))
    slot = ModelSlot(predictor=predictor, version=predictor.version)
    with engine.begin() as connection:
        write_features(connection, table=features.iloc[:480])
        score_new_days(connection, model=slot, since=None)
        before = load_model_outputs(
            connection, model_version=predictor.version, with_in_sample=True
        )
        write_features(connection, table=features)
        score_new_days(connection, model=slot, since=None)
        after = load_model_outputs(connection, model_version=predictor.version, with_in_sample=True)
    assert len(after) > len(before)
    pd.testing.assert_frame_equal(after.loc[before.index], before)  # no look-ahead
    assert (after.loc[after.index > pd.Timestamp(CUTOFF), "in_sample"] == 0.0).all()
    assert (after.loc[after.index <= pd.Timestamp(CUTOFF), "in_sample"] == 1.0).all()


def test_the_note_counts_in_sample_and_unrecorded_days() -> None:
    days = pd.bdate_range("2011-12-26", periods=6)
    flags = pd.Series([np.nan, 1.0, 1.0, 1.0, 0.0, 0.0], index=days)
    whole = in_sample_note(flags, version="v", start=None, end=None)
    assert whole is not None
    assert "3 of 6 model output day(s) (2011-12-27 to 2011-12-29)" in whole
    assert "1 model output day(s) do not record" in whole
    assert in_sample_note(flags, version="v", start=days[4].date(), end=None) is None
    later = in_sample_note(flags, version="v", start=days[3].date(), end=days[4].date())
    assert later is not None and later.startswith("1 of 2 model output day(s)")


def test_a_backtest_over_in_sample_days_says_so(database_url, tmp_path, predictor) -> None:  # type: ignore[no-untyped-def]
    market = market_frame(market_days())
    load_market(database_url, write_csv_folder(tmp_path / "m", market))
    days = market.index
    outputs = pd.DataFrame(
        {"regime": 0.0, "p_distressed": 0.1, "in_sample": days[100:] <= days[150]},
        index=pd.DatetimeIndex(days[100:], name="date"),
    )
    engine = make_engine(database_url)
    slot = ModelSlot(predictor=predictor, version=predictor.version)
    try:
        with engine.begin() as connection:
            write_model_outputs(connection, table=outputs, model_version=predictor.version)
        request = BacktestRequest(strategies=[{"kind": "model"}], store=False)
        answer = run_and_store_backtest(engine, request=request, max_strategies=5, model=slot)
        notes = json.loads(answer.body)["notes"]
        assert any(f"51 of {len(days) - 100} model output day(s)" in note for note in notes)
        later = BacktestRequest(strategies=[{"kind": "model"}], start=days[151].date(), store=False)
        answer = run_and_store_backtest(engine, request=later, max_strategies=5, model=slot)
        assert not any("inside the training data" in n for n in json.loads(answer.body)["notes"])
    finally:
        engine.dispose()
