import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans

from core.errors import NoDataError
from core.features import MODEL_FEATURES
from training.config import AS_PUBLISHED_LABELS, JUMP_LABELS, STANDARDISED_LABELS
from training.labels import fit_labeler


def _rows(vix: list[float], start: str = "2020-01-01") -> pd.DataFrame:
    """Feature rows whose volatility moves with VIX (rv_20d = VIX / 1000)."""
    dates = pd.bdate_range(start, periods=len(vix), name="date")
    vix_values = np.asarray(vix, dtype=float)
    return pd.DataFrame(
        {
            "ret_1d": 0.0,
            "ret_5d": 0.0,
            "ret_20d": 0.0,
            "rv_5d": vix_values / 1000,
            "rv_20d": vix_values / 1000,
            "vix": vix_values,
        },
        index=dates,
    )


def _two_regimes(seed: int = 3, stressed_first: bool = True) -> pd.DataFrame:
    """40 stressed days (high vol, falling prices) and 60 calm ones, with noise."""
    rng = np.random.default_rng(seed)
    calm = {"ret_1d": 0.001, "ret_5d": 0.004, "ret_20d": 0.015, "rv_5d": 0.006, "rv_20d": 0.007}
    stressed = {"ret_1d": -0.01, "ret_5d": -0.04, "ret_20d": -0.1, "rv_5d": 0.03, "rv_20d": 0.03}
    blocks = []
    for centre, vix, n in ((stressed, 40.0, 40), (calm, 13.0, 60)):
        block = {name: value * (1 + 0.1 * rng.standard_normal(n)) for name, value in centre.items()}
        block["vix"] = vix * (1 + 0.05 * rng.standard_normal(n))
        blocks.append(pd.DataFrame(block))
    frame = pd.concat(blocks if stressed_first else blocks[::-1], ignore_index=True)
    frame.index = pd.bdate_range("2020-01-01", periods=len(frame), name="date")
    return frame.loc[:, list(MODEL_FEATURES)]


@pytest.mark.parametrize("stressed_first", [True, False])
def test_the_high_volatility_cluster_is_regime_1_whatever_kmeans_numbers_it(
    stressed_first: bool,
) -> None:
    frame = _two_regimes(stressed_first=stressed_first)
    labels = fit_labeler(frame, STANDARDISED_LABELS).labels(frame)
    stressed = frame["vix"] > 25
    assert stressed.sum() == 40
    assert (labels[stressed] == 1).all()
    assert (labels[~stressed] == 0).all()


def test_a_refit_on_other_data_keeps_the_meaning_of_the_labels() -> None:
    first = _two_regimes(seed=1)
    second = _two_regimes(seed=2, stressed_first=False)
    probe = _two_regimes(seed=9)
    a = fit_labeler(first, STANDARDISED_LABELS).labels(probe)
    b = fit_labeler(second, STANDARDISED_LABELS).labels(probe)
    pd.testing.assert_series_equal(a, b)


def test_clusters_match_sklearn_predict_up_to_the_volatility_ordering() -> None:
    frame = _two_regimes()
    labeler = fit_labeler(frame, STANDARDISED_LABELS)
    values = frame.to_numpy()
    scaled = (values - values.mean(axis=0)) / values.std(axis=0)
    reference = KMeans(n_clusters=2, n_init=10, random_state=0).fit(scaled)
    calm_first = np.argsort(reference.cluster_centers_[:, MODEL_FEATURES.index("rv_20d")])
    rank = np.argsort(calm_first)
    expected = rank[reference.predict(scaled)].astype(float)
    np.testing.assert_array_equal(labeler.clusters(frame).to_numpy(), expected)


def test_scaler_and_kmeans_see_only_days_up_to_fit_until() -> None:
    frame = _two_regimes()
    fit_until = frame.index[49]
    labeler = fit_labeler(frame, STANDARDISED_LABELS, fit_until=fit_until)
    np.testing.assert_allclose(labeler.mean, frame.iloc[:50].mean().to_numpy())
    np.testing.assert_allclose(labeler.scale, frame.iloc[:50].std(ddof=0).to_numpy())
    assert labeler.fit_end == fit_until


def test_appending_future_rows_never_changes_earlier_labels() -> None:
    frame = _rows([10, 10, 11, 11, 12, 12] * 3 + [16, 17, 18, 30, 31, 32] * 3)
    fit_until = frame.index[-1]
    before = fit_labeler(frame, STANDARDISED_LABELS, fit_until=fit_until).labels(frame)
    longer = pd.concat([frame, _rows([80, 81, 82] * 3, start="2021-01-01")])
    after = fit_labeler(longer, STANDARDISED_LABELS, fit_until=fit_until).labels(longer)
    pd.testing.assert_series_equal(before, after.iloc[: len(frame)], check_freq=False)


def test_as_published_labels_fit_the_whole_history_and_so_change_with_the_future() -> None:
    # Unstandardised, VIX dominates the distance: three clusters {10-12}, {16-18}, {30-32}.
    frame = _rows([10, 11, 12, 16, 17, 18, 30, 31, 32] * 3)
    labeler = fit_labeler(frame, AS_PUBLISHED_LABELS, fit_until=frame.index[5])
    assert labeler.fit_end == frame.index[-1]  # fit_until ignored: the published look-ahead
    assert labeler.distressed_clusters == (1, 2)
    np.testing.assert_array_equal(labeler.mean, np.zeros(4))
    before = labeler.labels(frame)
    assert before.iloc[:9].tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1]
    # Future crash days: the best three clusters become {10-18}, {30-32}, {80-82}
    # (within-cluster sum of squares 62 against 302 for {10-12}, {16-32}, {80-82}),
    # so days with VIX 16-18 that were called distressed become calm in hindsight.
    longer = pd.concat([frame, _rows([80, 81, 82] * 3, start="2021-01-01")])
    after = fit_labeler(longer, AS_PUBLISHED_LABELS).labels(longer)
    assert after.iloc[:9].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1]


def test_days_with_a_missing_label_feature_have_no_label() -> None:
    frame = _two_regimes()
    frame.iloc[5, MODEL_FEATURES.index("vix")] = np.nan
    labels = fit_labeler(frame, STANDARDISED_LABELS).labels(frame)
    assert np.isnan(labels.iloc[5])
    assert labels.drop(labels.index[5]).notna().all()


def test_too_few_days_to_fit_is_a_clear_error() -> None:
    with pytest.raises(NoDataError, match="at least 10 days"):
        fit_labeler(_two_regimes().iloc[:9], STANDARDISED_LABELS)


# --- jump-model labels ---------------------------------------------------------------


def _blocks(order: str, seed: int, start: str = "2020-01-01") -> pd.DataFrame:
    """Blocks of 50 days, 'c' calm and 's' stressed (as in _two_regimes), with noise."""
    rng = np.random.default_rng(seed)
    calm = {"ret_1d": 0.001, "ret_5d": 0.004, "ret_20d": 0.015, "rv_5d": 0.006, "rv_20d": 0.007}
    stressed = {"ret_1d": -0.01, "ret_5d": -0.04, "ret_20d": -0.1, "rv_5d": 0.03, "rv_20d": 0.03}
    blocks = []
    for kind in order:
        centre, vix = (stressed, 40.0) if kind == "s" else (calm, 13.0)
        block = {
            name: value * (1 + 0.1 * rng.standard_normal(50)) for name, value in centre.items()
        }
        block["vix"] = vix * (1 + 0.05 * rng.standard_normal(50))
        blocks.append(pd.DataFrame(block))
    frame = pd.concat(blocks, ignore_index=True)
    frame.index = pd.bdate_range(start, periods=len(frame), name="date")
    return frame.loc[:, list(MODEL_FEATURES)]


def _known_states(order: str) -> np.ndarray:
    return np.repeat([1.0 if kind == "s" else 0.0 for kind in order], 50)


@pytest.mark.parametrize("order", ["scsc", "cscs", "ccss"])
def test_jump_labels_call_the_stressed_blocks_regime_1_whatever_order(order: str) -> None:
    frame = _blocks(order, seed=4)
    labels = fit_labeler(frame, JUMP_LABELS).labels(frame)
    np.testing.assert_array_equal(labels.to_numpy(), _known_states(order))


def test_jump_labels_keep_their_identity_across_refits_on_growing_windows() -> None:
    """Refits ending after each block (the walk-forward's expanding window) label the days
    after them online with the same identities: stressed blocks 1, calm 0, apart from the
    few days after each change the online state needs to pay the jump penalty (that
    delay differs between refits)."""
    history = _blocks("cscsc", seed=5)
    later = _blocks("sccs", seed=11, start="2021-01-01")
    frame = pd.concat([history, later])
    lag = 5  # days after a change where the online state may still be the old one
    settled = np.ones(200, dtype=bool)
    for change in (0, 50, 150):  # day 0 follows the history's last (calm) block
        settled[change : change + lag] = False
    column = list(JUMP_LABELS.features).index(JUMP_LABELS.volatility_feature)
    for end in (99, 149, 199, 249):
        labeler = fit_labeler(frame, JUMP_LABELS, fit_until=history.index[end])
        assert labeler.fit_end == history.index[end]
        assert labeler.centroids[1, column] > labeler.centroids[0, column]
        labels = labeler.labels(frame).to_numpy()
        np.testing.assert_array_equal(labels[: end + 1], _known_states("cscsc")[: end + 1])
        online = labels[250:]
        np.testing.assert_array_equal(online[settled], _known_states("sccs")[settled])


def test_jump_labels_do_not_look_ahead() -> None:
    """Rows appended after a fit's end change no label of a day before them, neither the
    fitted days' nor the online ones' after the fit."""
    frame = _blocks("cscsc", seed=6)
    fit_until = frame.index[149]
    shorter = frame.iloc[:200]
    before = fit_labeler(shorter, JUMP_LABELS, fit_until=fit_until).labels(shorter)
    after = fit_labeler(frame, JUMP_LABELS, fit_until=fit_until).labels(frame)
    pd.testing.assert_series_equal(before, after.iloc[:200])


def test_jump_labels_skip_days_with_a_missing_feature() -> None:
    frame = _blocks("cs", seed=7)
    frame.iloc[10, 0] = np.nan
    labels = fit_labeler(frame, JUMP_LABELS).labels(frame)
    assert np.isnan(labels.iloc[10])
    assert labels.drop(labels.index[10]).notna().all()
