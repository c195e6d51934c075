import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from core.features import MODEL_FEATURES
from tests.training.conftest import fast_setup
from training.baselines import BaselineConfig
from training.config import STANDARDISED_LABELS
from training.economics import EconomicsConfig
from training.evaluation import evaluate, report_json, report_markdown, report_text, write_plots
from training.labels import fit_labeler
from training.walkforward import METHODS, WalkForwardConfig, shipped_history, walk_forward

CONFIG = WalkForwardConfig(
    first_test_year=2014,
    last_test_year=2015,
    setup=fast_setup(epochs=1),
    baselines=BaselineConfig(hmm_iterations=20),
)


@pytest.fixture(scope="module")
def report(long_features: pd.DataFrame):  # type: ignore[no-untyped-def]
    fast = EconomicsConfig(n_resamples=100, n_permutations=49)
    return evaluate(long_features, CONFIG, with_reproduction=True, economics=fast)


def test_every_test_day_belongs_to_its_year_and_has_every_method(report) -> None:  # type: ignore[no-untyped-def]
    predictions = report.predictions
    assert (predictions.index.year == predictions["year"]).all()
    assert sorted(predictions["year"].unique()) == [2014, 2015]
    for method in METHODS:
        assert predictions[f"{method}_call"].isin([0.0, 1.0]).all(), method
    assert list(report.overall.index) == list(METHODS)


def test_every_fit_reads_only_days_before_its_test_year(report) -> None:  # type: ignore[no-untyped-def]
    for refit in report.refits:
        year_start = pd.Timestamp(refit["year"], 1, 1)
        assert pd.Timestamp(refit["fit_until"]) < year_start
        assert pd.Timestamp(refit["labeler_fit_end"]) < year_start


def test_test_year_truth_comes_from_a_labeler_fitted_on_earlier_days_only(
    report, long_features: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    for year in (2014, 2015):
        history = long_features.loc[long_features.index < pd.Timestamp(year, 1, 1)]
        labeler = fit_labeler(history, STANDARDISED_LABELS)
        days = report.predictions.index[report.predictions["year"] == year]
        expected = labeler.labels(long_features).reindex(days)
        pd.testing.assert_series_equal(
            report.predictions.loc[days, "truth"], expected, check_names=False, check_freq=False
        )


def test_appending_future_rows_never_changes_a_test_years_predictions(
    long_features: pd.DataFrame,
) -> None:
    config = WalkForwardConfig(2014, 2014, setup=fast_setup(epochs=1), baselines=CONFIG.baselines)
    until_2014 = long_features.loc[:"2014-12-31"]
    short = walk_forward(until_2014, config)
    full = walk_forward(long_features, config)
    pd.testing.assert_frame_equal(short.predictions, full.predictions, check_freq=False)
    # the outputs a version ships (every 2014 day with a complete window) likewise
    pd.testing.assert_frame_equal(short.outputs, full.outputs, check_freq=False)


def test_refits_in_parallel_equal_refits_one_at_a_time_in_year_order(
    report, long_features: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    # Two processes take the latest year first and may finish in any order.
    parallel = walk_forward(long_features, replace(CONFIG, jobs=2))
    assert [refit.year for refit in parallel.refits] == [2014, 2015]
    assert [refit["year"] for refit in report.refits] == [2014, 2015]
    one_at_a_time = report.walk_forward
    pd.testing.assert_frame_equal(parallel.predictions, one_at_a_time.predictions)
    pd.testing.assert_frame_equal(parallel.outputs, one_at_a_time.outputs)


def test_shipped_outputs_cover_every_complete_window_of_the_year_from_an_earlier_fit(
    report, long_features: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    outputs = report.walk_forward.outputs
    complete = (
        long_features.loc[:, list(MODEL_FEATURES)].notna().all(axis=1).rolling(60).sum() == 60
    )
    expected = complete.index[complete & (complete.index.year >= 2014)]
    expected = expected[expected.year <= 2015]
    pd.testing.assert_index_equal(outputs.index, expected, check_names=False, check_freq=False)
    # later than the scored days: the last days' targets are not known yet
    assert outputs.index[-1] >= report.predictions.index[-1]
    cutoffs = pd.to_datetime(outputs["fold_cutoff"])
    assert (cutoffs < outputs.index).all()
    assert (cutoffs.dt.year == outputs.index.year - 1).all()
    scored = report.predictions.index
    pd.testing.assert_series_equal(
        outputs.loc[scored, "p_distressed"],
        report.predictions["transformer_score"],
        check_names=False,
        check_freq=False,
    )
    assert ((outputs["p_distressed"] >= 0.5) == (outputs["regime"] == 1)).all()


def test_shipped_history_ends_at_the_cut_off_and_scores_the_known_days(report) -> None:  # type: ignore[no-untyped-def]
    cutoff = pd.Timestamp("2015-06-30")
    outputs, summary = shipped_history(report.walk_forward, cutoff)
    assert outputs.index[-1] <= cutoff and outputs.index[0].year == 2014
    scored = report.predictions.loc[report.predictions.index <= cutoff]
    assert summary["scored_days"] == len(scored)
    truth, p = scored["truth"].to_numpy(), scored["transformer_score"].to_numpy()
    assert summary["brier"] == pytest.approx(((p - truth) ** 2).mean(), abs=1e-6)
    climatology = ((scored["base_rate"].to_numpy() - truth) ** 2).mean()
    assert summary["brier_skill_climatology"] == pytest.approx(
        1 - ((p - truth) ** 2).mean() / climatology, abs=1e-6
    )
    assert [fold["year"] for fold in summary["folds"]] == [2014, 2015]


def test_report_renders_as_strict_json_and_text(report) -> None:  # type: ignore[no-untyped-def]
    payload = report_json(report)
    json.dumps(payload, allow_nan=False)
    assert {row["method"] for row in payload["metrics_overall"]} == set(METHODS)
    assert len(payload["metrics_by_year"]) == 2 * len(METHODS)
    reproduction = payload["reproduction"]
    assert [row["strategy"] for row in reproduction["published"]] == [
        "Buy & hold SPY",
        "Regime filter",
        "Leveraged regime",
    ]
    strategies = {row["strategy"] for row in reproduction["walk_forward_period"]}
    assert "(c) walk-forward Transformer: regime_filter" in strategies
    text = report_text(report)
    assert "635.50%" in text  # the published buy & hold cumulative return
    assert "(a) as-published labels: leveraged_regime" in text
    for method in METHODS:
        assert method in text


def test_plots_are_png_files(report, long_features: pd.DataFrame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    paths = write_plots(report, long_features, tmp_path / "plots")
    assert [p.name for p in paths] == [
        "walkforward_probabilities.png",
        "walkforward_equity.png",
        "reliability.png",
        "reproduction_equity.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = report_markdown(report, paths)
    assert markdown.startswith("# Walk-forward evaluation 2014-2015: now-cast")
    assert "![reliability](reliability.png)" in markdown


def test_report_scores_probabilities_and_economic_value(report) -> None:  # type: ignore[no-untyped-def]
    assert list(report.probability.index) == ["transformer_raw", "transformer", "hmm", "logistic"]
    assert report.probability["brier"].between(0, 1).all()
    value = report.value
    assert value.index[0] == "buy_and_hold" and "rules" in value.index
    assert {"transformer:filter", "transformer:leveraged", "transformer:scaled"} <= set(value.index)
    assert (value["sharpe_low"] <= value["sharpe"]).all()
    assert (value["sharpe"] <= value["sharpe_high"]).all()
    assert value.drop(index="buy_and_hold")["timing_p_value"].between(0, 1).all()


def test_comparison_puts_each_methods_metrics_beside_its_filter_strategy(report) -> None:  # type: ignore[no-untyped-def]
    comparison = report.comparison
    assert list(comparison.index) == list(METHODS)
    for method in METHODS:
        backtest = report.backtest.loc[f"{method}:regime_filter"]
        assert comparison.loc[method, "filter_sharpe"] == backtest["sharpe"]
        assert comparison.loc[method, "roc_auc"] == report.overall.loc[method, "roc_auc"]
