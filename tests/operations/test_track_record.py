"""The track record's rules on hand-made ledgers, the labels and scores cross-checked
against the training code and scikit-learn, and ``deepregime track-record``."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from cli.main import app as cli
from inference.card import LabelSummary, Period
from operations.track_record import (
    card_labels,
    exposure_record,
    probability_record,
    probability_scores,
    split_first_publications,
)
from store.ledger import Publication, body_digest, canonical_json
from tests.app.conftest import load_market, market_days, market_frame, write_csv_folder
from tests.inference.closed_form import closed_form_card, closed_form_onnx
from training.calibration import expected_calibration_error, reliability_table
from training.config import LabelConfig
from training.labels import fit_labeler

runner = CliRunner()


def _publication(id_: int, day: str, exposure: float, p: float | None = None) -> Publication:
    model = {"available": p is not None, "version": "v", "p_distressed": p, "target": "label"}
    text = canonical_json({"as_of": day, "exposure": exposure, "model": model | {"horizon": 0}})
    return Publication(
        id=id_,
        day=dt.date.fromisoformat(day),
        policy="model:filter",
        rule_set_version="r",
        model_version="v",
        data_fingerprint="0" * 64,
        run_id=None,
        published_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=id_),
        body=text,
        body_sha256=body_digest(text),
    )


def test_only_the_first_publication_of_a_day_counts_and_corrections_are_listed():
    ledger = [
        _publication(1, "2024-01-02", 1.0, 0.2),
        _publication(2, "2024-01-02", 0.0, 0.9),  # a later correction of the same day
        _publication(3, "2024-01-03", 0.5, 0.4),
    ]
    firsts, corrections = split_first_publications(ledger)
    assert firsts["publication_id"].tolist() == [1, 3]
    assert firsts["exposure"].tolist() == [1.0, 0.5]
    assert firsts["p_distressed"].tolist() == [0.2, 0.4]
    [correction] = corrections
    assert (correction["publication_id"], correction["corrects"]) == (2, 1)
    assert (correction["day"], correction["exposure"]) == ("2024-01-02", 0.0)


def test_exposures_earn_the_next_session_and_wait_for_it():
    # Sessions Tue 2, Wed 3, Thu 4 (closes 100, 110, 99); published Tue, Wed and Thu.
    closes = pd.Series(
        [100.0, 110.0, 99.0], index=pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04"])
    )
    ledger = [_publication(1, "2024-01-02", 0.5), _publication(2, "2024-01-03", 1.5)]
    ledger.append(_publication(3, "2024-01-04", 1.0))
    firsts, _ = split_first_publications(ledger)
    record = exposure_record(firsts, closes)
    # Tue's 50% earns Wed's +10%; Wed's 150% earns Thu's -10%; Thu's has no next session.
    assert (record["sessions"], record["pending"]) == (2, 1)
    assert [d["session"] for d in record["days"]] == ["2024-01-03", "2024-01-04"]
    assert record["cumulative_return"] == pytest.approx(1.05 * 0.85 - 1)
    assert record["buy_and_hold_cumulative_return"] == pytest.approx(0.99 - 1)
    assert record["years"] == [
        {
            "year": 2024,
            "return": pytest.approx(1.05 * 0.85 - 1),
            "buy_and_hold": pytest.approx(-0.01),
        }
    ]


def test_card_labels_are_the_labels_training_fits():
    """Standardised KMeans labels rebuilt from the card's summary equal training's."""
    rng = np.random.default_rng(3)
    days = pd.bdate_range("2020-01-01", periods=400)
    features = pd.DataFrame(
        {"rv_20d": np.abs(rng.normal(0.15, 0.08, 400)), "vix": rng.normal(20, 6, 400)},
        index=days,
    )
    features.iloc[7, 1] = np.nan
    config = LabelConfig(features=("rv_20d", "vix"), standardise=True, n_clusters=3)
    labeler = fit_labeler(features, config, fit_until=days[299])
    summary = LabelSummary(
        preset="test",
        n_clusters=3,
        features=["rv_20d", "vix"],
        standardise=True,
        fit_period=Period(start=labeler.fit_start.date(), end=labeler.fit_end.date()),
        leaks_future=False,
        distressed_clusters=list(labeler.distressed_clusters),
        centroids=labeler.centroids.tolist(),
    )
    card = closed_form_card(closed_form_onnx(), labels=summary)
    mine = card_labels(card, features)
    expected = labeler.labels(features)
    pd.testing.assert_series_equal(mine, expected, check_names=False)
    assert 0 < np.nansum(mine) < 399


def test_scores_agree_with_scikit_learn_and_the_training_scores():
    rng = np.random.default_rng(5)
    p = rng.uniform(0, 1, 200)
    y = (rng.uniform(0, 1, 200) < p).astype(float)
    scores = probability_scores(y, p)
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert scores["ece"] == pytest.approx(expected_calibration_error(y, p))
    assert scores["brier"] == pytest.approx(np.mean((p - y) ** 2))
    table = reliability_table(y, p)
    assert [row["days"] for row in scores["reliability"]] == table["days"].tolist()
    assert [row["observed"] for row in scores["reliability"]] == table["observed"].tolist()
    assert probability_scores(np.ones(3), np.array([0.1, 0.5, 0.9]))["roc_auc"] is None


def test_the_command_prints_the_record(cli_env, tmp_path):
    """Three daily cycles, rules only: 100% on the first two days, each held over the
    next session (+0.1% each); the last day waits for its next session."""
    days = market_days()
    frame = market_frame(days)
    for i in (len(days) - 3, len(days) - 2, len(days) - 1):
        folder = write_csv_folder(tmp_path / f"day{i}", frame.iloc[: i + 1])
        load_market(cli_env, folder, days[i].date())
    result = runner.invoke(cli, ["track-record", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert (record["ledger_policy"], record["published_days"]) == ("rules", 3)
    assert record["exposures"]["cumulative_return"] == pytest.approx(1.001**2 - 1, rel=1e-9)
    assert [d["exposure"] for d in record["exposures"]["days"]] == [1.0, 1.0]
    text = runner.invoke(cli, ["track-record"])
    assert text.exit_code == 0, text.output
    assert "2 sessions held (1 pending), cumulative +0.20% against buy & hold +0.20%" in text.output
    refused = runner.invoke(cli, ["track-record", "--market", "NOPE"])
    assert refused.exit_code == 1 and "unknown market 'NOPE'" in refused.output


def test_a_probability_waits_for_its_horizon_and_a_missing_card_is_named():
    """Horizon 2, target 'label': day t's outcome is the label of session t + 2, by the
    card's centroids (VIX 15 calm, 25 distressed); the last two days are pending."""
    days = pd.bdate_range("2024-01-01", periods=5)
    features = pd.DataFrame({"vix": [14.0, 16.0, 26.0, 24.0, 13.0]}, index=days)
    card = closed_form_card(closed_form_onnx(), horizon=2)
    ledger = [
        _publication(i + 1, f"{day:%Y-%m-%d}", 1.0, 0.1 * (i + 1)) for i, day in enumerate(days)
    ]
    firsts, _ = split_first_publications(ledger)
    firsts["horizon"] = 2
    [record] = probability_record(firsts, features, {"v": card})
    assert (record["published"], record["resolved"], record["pending"]) == (5, 3, 2)
    # Outcomes of days 1..3 are the labels of days 3..5: 26 -> 1, 24 -> 1, 13 -> 0.
    assert [d["outcome"] for d in record["days"]] == [1, 1, 0]
    expected = ((0.1 - 1) ** 2 + (0.2 - 1) ** 2 + (0.3 - 0) ** 2) / 3
    assert record["brier"] == pytest.approx(expected)
    assert record["roc_auc"] == 0.0  # the distressed days got the lower probabilities
    [unknown] = probability_record(firsts, features, {"v": None})
    assert (unknown["resolved"], unknown["pending"]) == (0, 5)
    assert unknown["reason"] == "model card of v not found"
