import numpy as np
import pandas as pd
import pytest

from core.errors import DataValidationError, NoDataError
from core.features import MODEL_FEATURES
from training.config import SplitConfig, WindowConfig
from training.splits import chronological_split, fraction_split
from training.windows import build_windows, window_positions


def _table(n: int) -> pd.DataFrame:
    """Model features where row i holds i + column / 10, so every value names its day."""
    dates = pd.bdate_range("2021-01-04", periods=n, name="date")
    values = np.arange(n)[:, None] + np.arange(len(MODEL_FEATURES))[None, :] / 10
    return pd.DataFrame(values, index=dates, columns=list(MODEL_FEATURES))


def _labels(table: pd.DataFrame) -> pd.Series:
    """Label 1 on odd rows, 0 on even ones."""
    return pd.Series(np.arange(len(table)) % 2, index=table.index, dtype=float)


def test_a_window_holds_the_raw_features_of_its_last_days() -> None:
    table = _table(10)
    windows = build_windows(table, _labels(table), WindowConfig(window=4))
    assert windows.inputs.shape == (7, 4, 6)
    assert windows.inputs.dtype == np.float32
    np.testing.assert_allclose(windows.inputs[0, :, 0], [0, 1, 2, 3])
    np.testing.assert_allclose(windows.inputs[-1, -1], [9.0, 9.1, 9.2, 9.3, 9.4, 9.5], rtol=1e-6)
    assert list(windows.end_dates) == list(table.index[3:])


def test_nowcast_target_is_the_label_of_the_last_day() -> None:
    table = _table(10)
    windows = build_windows(table, _labels(table), WindowConfig(window=4, horizon=0))
    assert windows.targets.tolist() == [1, 0, 1, 0, 1, 0, 1]  # rows 3..9
    assert list(windows.target_dates) == list(windows.end_dates)


def test_horizon_target_is_the_label_h_days_later_and_needs_that_day() -> None:
    table = _table(10)
    windows = build_windows(table, _labels(table), WindowConfig(window=4, horizon=2))
    # Ends on rows 3..7 (rows 8 and 9 have no day 2 later); targets rows 5..9.
    assert windows.end_positions.tolist() == [3, 4, 5, 6, 7]
    assert windows.targets.tolist() == [1, 0, 1, 0, 1]
    assert list(windows.target_dates) == list(table.index[5:10])


def test_windows_with_a_nan_input_or_an_unlabelled_target_are_dropped() -> None:
    table = _table(12)
    table.iloc[4, 2] = np.nan
    labels = _labels(table)
    labels.iloc[10] = np.nan
    windows = build_windows(table, labels, WindowConfig(window=3))
    # Row 4 spoils the windows ending on rows 4, 5 and 6; row 10 has no label.
    assert windows.end_positions.tolist() == [2, 3, 7, 8, 9, 11]
    assert not np.isnan(windows.inputs).any()


def test_appending_future_rows_never_changes_earlier_windows() -> None:
    table, longer = _table(30), _table(40)
    short = build_windows(table, _labels(table), WindowConfig(window=5))
    full = build_windows(longer, _labels(longer), WindowConfig(window=5))
    n = len(short)
    np.testing.assert_array_equal(full.inputs[:n], short.inputs)
    np.testing.assert_array_equal(full.targets[:n], short.targets)


def test_a_missing_feature_column_is_named() -> None:
    with pytest.raises(DataValidationError) as raised:
        window_positions(_table(10).drop(columns="rv_20d"), WindowConfig(window=3))
    assert raised.value.field == "rv_20d"


def test_split_layout_is_train_gap_validation_gap_test() -> None:
    split = chronological_split(20, n_val=3, n_test=4, gap=2)
    assert split.train.tolist() == list(range(0, 9))
    assert split.val.tolist() == [11, 12, 13]
    assert split.test.tolist() == [16, 17, 18, 19]


def test_without_test_split_there_is_a_single_gap() -> None:
    split = chronological_split(10, n_val=3, n_test=0, gap=2)
    assert split.train.tolist() == [0, 1, 2, 3, 4]
    assert split.val.tolist() == [7, 8, 9]
    assert split.test.tolist() == []


@pytest.mark.parametrize("horizon", [0, 5])
def test_fraction_split_leaves_window_plus_horizon_between_splits(horizon: int) -> None:
    windows = WindowConfig(window=60, horizon=horizon)
    split = fraction_split(1000, SplitConfig(val_fraction=0.15, test_fraction=0.15), windows)
    assert split.val[0] - split.train[-1] - 1 == 60 + horizon
    assert split.test[0] - split.val[-1] - 1 == 60 + horizon
    assert split.test[-1] == 999
    # 1000 - 2 gaps leaves 880 (870 with horizon 5); 15% of that each.
    usable = 1000 - 2 * (60 + horizon)
    assert len(split.test) == round(0.15 * usable)
    assert len(split.val) == round(0.15 * usable)


def test_too_few_windows_for_the_gaps_is_a_clear_error() -> None:
    with pytest.raises(NoDataError, match="cannot hold"):
        chronological_split(50, n_val=10, n_test=10, gap=20)
