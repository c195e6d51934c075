"""Made-up feature tables and a fast training setup shared by the training tests."""

from __future__ import annotations

import pandas as pd
import pytest

from core.features import compute_features
from tests.conftest import make_closes
from training.config import ModelConfig, SplitConfig, TrainerConfig, TrainingSetup, WindowConfig


def fast_setup(epochs: int = 2, window: int = 20, **changes: object) -> TrainingSetup:
    """A small but complete setup: short windows and few epochs, same model shape."""
    windows = WindowConfig(window=window)
    fields: dict[str, object] = {
        "windows": windows,
        "split": SplitConfig(val_fraction=0.15, test_fraction=0.15),
        "model": ModelConfig(window=window),
        "trainer": TrainerConfig(max_epochs=epochs, patience=2, threads=1),
    }
    fields.update(changes)
    return TrainingSetup(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    """About 2.3 years of seeded business days from 2010-01-04."""
    return compute_features(make_closes(600))


@pytest.fixture(scope="module")
def long_features() -> pd.DataFrame:
    """Seeded business days 2010-01-04 .. mid 2015 (for walk-forward years 2014-2015)."""
    return compute_features(make_closes(1400))
