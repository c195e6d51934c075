"""Chronological train / validation / test splits with gaps, never shuffled across time.

Layout over windows in date order: [train][gap][validation][gap][test]. A gap of
window + horizon windows means no two windows from different splits share an
input day or a target day. Windows dropped for NaN only widen the gaps in days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import NoDataError
from training.config import SplitConfig, WindowConfig


@dataclass(frozen=True)
class WindowSplit:
    """Indices into a date-ordered WindowSet, each increasing."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def chronological_split(n_windows: int, *, n_val: int, n_test: int, gap: int) -> WindowSplit:
    """The last ``n_test`` windows are test, ``gap`` before them are skipped, the
    ``n_val`` before that are validation, ``gap`` more are skipped, the rest train."""
    test_start = n_windows - n_test
    val_end = test_start - gap if n_test > 0 else n_windows
    val_start = val_end - n_val
    train_end = val_start - gap
    if n_val < 1 or train_end < 1:
        raise NoDataError(
            f"{n_windows} windows cannot hold {n_val} validation and {n_test} test windows "
            f"plus gaps of {gap} and at least one training window"
        )
    return WindowSplit(
        train=np.arange(0, train_end),
        val=np.arange(val_start, val_end),
        test=np.arange(test_start, n_windows),
    )


def fraction_split(n_windows: int, split: SplitConfig, windows: WindowConfig) -> WindowSplit:
    """Split by fractions of the windows that remain once the gaps are set aside."""
    split.validate(windows)
    gap = split.gap_for(windows)
    usable = n_windows - gap * (2 if split.test_fraction > 0 else 1)
    n_test = round(usable * split.test_fraction)
    n_val = max(1, round(usable * split.val_fraction))
    return chronological_split(n_windows, n_val=n_val, n_test=n_test, gap=gap)
