import pytest

from core.errors import ConfigError
from training.config import (
    AS_PUBLISHED_LABELS,
    STANDARDISED_LABELS,
    DistressedRule,
    LabelConfig,
    ModelConfig,
    SplitConfig,
    TrainerConfig,
    TrainingSetup,
    WindowConfig,
    label_preset,
)


def test_default_labels_are_the_readme_design() -> None:
    assert STANDARDISED_LABELS.n_clusters == 2
    assert STANDARDISED_LABELS.features == (
        "ret_1d",
        "ret_5d",
        "ret_20d",
        "rv_5d",
        "rv_20d",
        "vix",
    )
    assert STANDARDISED_LABELS.standardise
    assert not STANDARDISED_LABELS.leaks_future


def test_as_published_preset_is_the_authors_code_and_says_it_leaks() -> None:
    preset = label_preset("as-published")
    assert preset is AS_PUBLISHED_LABELS
    assert preset.n_clusters == 3
    assert preset.features == ("ret_1d", "ret_20d", "rv_20d", "vix")
    assert not preset.standardise
    assert preset.distressed is DistressedRule.ALL_BUT_CALMEST
    assert preset.leaks_future


def test_model_defaults_are_the_published_architecture() -> None:
    config = ModelConfig()
    assert (config.window, config.d_model, config.n_layers, config.n_heads, config.d_ff) == (
        60,
        64,
        2,
        4,
        128,
    )
    assert config.dropout == 0.1
    assert config.n_classes == 2


def test_unknown_preset_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'nope'.*as-published.*standardised-2"):
        label_preset("nope")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            lambda: LabelConfig(n_clusters=1).validate(),
            r"n_clusters must be between 2 and 10, got 1",
        ),
        (lambda: LabelConfig(features=("spy_close",)).validate(), r"\['spy_close'\]"),
        (
            lambda: LabelConfig(features=("vix",)).validate(),
            r"volatility_feature 'rv_20d' must be one of the label features \['vix'\]",
        ),
        (lambda: WindowConfig(window=1).validate(), r"window must be between 2 and 512, got 1"),
        (lambda: WindowConfig(horizon=-1).validate(), r"horizon must be between 0 and 250, got -1"),
        (
            lambda: SplitConfig(gap=10).validate(WindowConfig(window=60)),
            r"gap must be at least the window length 60, got 10",
        ),
        (
            lambda: SplitConfig(val_fraction=0.9).validate(WindowConfig()),
            r"val_fraction must be between 0.01 and 0.5, got 0.9",
        ),
        (lambda: ModelConfig(d_model=30).validate(), r"divisible by n_heads, got 4"),
        (lambda: TrainerConfig(learning_rate=5.0).validate(), r"learning_rate .* got 5.0"),
        (
            lambda: TrainingSetup(model=ModelConfig(window=30)).validate(),
            r"model window 30 must equal the data window 60",
        ),
    ],
)
def test_bad_settings_are_refused_quoting_value_and_range(config, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message):
        config()


def test_default_gap_is_window_plus_horizon() -> None:
    assert SplitConfig().gap_for(WindowConfig(window=60, horizon=5)) == 65
    assert SplitConfig(gap=100).gap_for(WindowConfig()) == 100
