import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import DataValidationError
from core.features import MODEL_FEATURES, compute_features
from inference.predictor import RegimePredictor
from inference.windows import complete_window_ends, sliding_windows
from tests.conftest import make_closes
from tests.inference.closed_form import WINDOW, expected_p, write_closed_form_model

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def predictor(tmp_path: Path) -> RegimePredictor:
    return RegimePredictor.load(tmp_path, write_closed_form_model(tmp_path))


def _table(vix: list[float]) -> pd.DataFrame:
    """Feature table whose other model features are constant (they do not matter here)."""
    dates = pd.bdate_range("2020-01-01", periods=len(vix), name="date")
    frame = pd.DataFrame({name: 0.01 for name in MODEL_FEATURES}, index=dates)
    frame["vix"] = vix
    return frame


def test_sliding_windows_end_on_their_day_and_read_nothing_after() -> None:
    values = np.arange(12.0).reshape(6, 2)
    windows = sliding_windows(values, 3)
    assert windows.shape == (4, 3, 2)
    np.testing.assert_array_equal(windows[0], [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(windows[3], [[6, 7], [8, 9], [10, 11]])
    assert sliding_windows(values, 7).shape == (0, 7, 2)


def test_complete_window_ends_skip_short_history_and_windows_holding_nan() -> None:
    values = np.ones((8, 2))
    values[2, 1] = np.nan
    # Windows of 3 ending on rows 2, 3 and 4 contain row 2; rows 0 and 1 lack history.
    np.testing.assert_array_equal(complete_window_ends(values, 3), [5, 6, 7])


def test_daily_output_is_the_closed_form_probability(predictor: RegimePredictor) -> None:
    vix = [10.0, 30.0, 19.0, 21.0, 20.5, 40.0]
    out = predictor.predict_daily(_table(vix))
    assert out["p_distressed"].iloc[: WINDOW - 1].isna().all()
    assert out["regime"].iloc[: WINDOW - 1].isna().all()
    expected = [expected_p(v) for v in vix[WINDOW - 1 :]]
    np.testing.assert_allclose(out["p_distressed"].iloc[WINDOW - 1 :], expected, atol=1e-6)
    # Regime 1 where p >= 0.5, i.e. where the last day's VIX is at least 20.
    assert out["regime"].iloc[WINDOW - 1 :].tolist() == [0.0, 1.0, 1.0, 1.0]


def test_a_nan_inside_the_window_gives_no_output_for_the_days_it_touches(
    predictor: RegimePredictor,
) -> None:
    table = _table([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0])
    table.iloc[3, 0] = np.nan  # ret_1d missing on the 4th day
    out = predictor.predict_daily(table)
    assert out["p_distressed"].isna().tolist() == [True, True, False, True, True, True, False]


def test_appending_future_rows_never_changes_earlier_outputs(predictor: RegimePredictor) -> None:
    features = compute_features(make_closes(300))
    short = predictor.predict_daily(features.iloc[:200])
    full = predictor.predict_daily(features)
    pd.testing.assert_frame_equal(short, full.iloc[:200])


def test_windows_of_the_wrong_shape_are_refused(predictor: RegimePredictor) -> None:
    with pytest.raises(DataValidationError, match="shape"):
        predictor.predict_windows(np.zeros((2, WINDOW + 1, 6), dtype=np.float32))


def test_missing_feature_column_is_named(predictor: RegimePredictor) -> None:
    with pytest.raises(DataValidationError) as raised:
        predictor.predict_daily(_table([20.0] * 5).drop(columns="rv_5d"))
    assert raised.value.field == "rv_5d"


def test_serving_modules_import_neither_torch_nor_sklearn() -> None:
    code = (
        "import sys, inference.predictor, inference.registry, inference.card, store.model_registry;"
        "bad = [m for m in ('torch', 'sklearn') if m in sys.modules];"
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
