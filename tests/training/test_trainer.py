import numpy as np
import pytest
import torch
from torch import nn

from training.config import TrainerConfig
from training.pipeline import seed_everything
from training.trainer import class_weights, fit, mean_loss


def _linear_model() -> nn.Module:
    """Not a Transformer: the loop must train any module."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 2, 2))


def _separable(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 2, generator=generator)
    y = (x[:, -1, 0] > 0).long()
    return x, y


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ([0, 0, 0, 1], [4 / 6, 2.0]),  # n / (2 * count)
        ([0, 1, 0, 1], [1.0, 1.0]),
        ([0, 0], [0.5, 1.0]),  # 2 / (2 * 2); class 1 absent: neutral weight
    ],
)
def test_class_weights_are_inverse_frequency(targets: list[int], expected: list[float]) -> None:
    np.testing.assert_allclose(class_weights(np.array(targets), 2), expected)


def test_the_loop_learns_a_separable_problem() -> None:
    seed_everything(0)
    model = _linear_model()
    train, val = _separable(512, 1), _separable(256, 2)
    loss_fn = nn.CrossEntropyLoss()
    before = mean_loss(model, *val, loss_fn)
    result = fit(model, train, val, loss_fn, TrainerConfig(max_epochs=30, learning_rate=0.05))
    assert result.best_val_loss < before / 3
    with torch.no_grad():
        accuracy = (model(val[0]).argmax(dim=1) == val[1]).float().mean().item()
    assert accuracy > 0.95


def test_early_stopping_keeps_the_best_epoch_weights() -> None:
    # Training on all-0 targets while validating on all-1 targets: validation loss only
    # rises, so epoch 1 stays best and the loop stops after `patience` more epochs.
    seed_everything(0)
    model = _linear_model()
    x, _ = _separable(256, 3)
    train = (x, torch.zeros(256, dtype=torch.long))
    val = (x, torch.ones(256, dtype=torch.long))
    loss_fn = nn.CrossEntropyLoss()
    config = TrainerConfig(max_epochs=50, patience=3, learning_rate=0.05)
    result = fit(model, train, val, loss_fn, config)
    assert result.stop_reason == "patience"
    assert result.best_epoch == 1
    assert len(result.history) == 4
    assert mean_loss(model, *val, loss_fn) == pytest.approx(result.best_val_loss)
    assert result.history[-1].val_loss > result.best_val_loss


def test_wall_clock_budget_stops_the_loop() -> None:
    model = _linear_model()
    train, val = _separable(2048, 4), _separable(64, 5)
    config = TrainerConfig(max_epochs=10_000, patience=1_000, max_seconds=0.2, batch_size=8)
    result = fit(model, train, val, nn.CrossEntropyLoss(), config)
    assert result.stop_reason == "max_seconds"
    assert len(result.history) < 10_000


def test_same_seed_gives_the_same_weights() -> None:
    states = []
    for _ in range(2):
        seed_everything(7)
        model = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.Dropout(0.3), nn.Linear(8, 2))
        fit(
            model,
            _separable(256, 6),
            _separable(64, 7),
            nn.CrossEntropyLoss(),
            TrainerConfig(max_epochs=3, seed=7),
        )
        states.append(model.state_dict())
    for name, tensor in states[0].items():
        assert torch.equal(tensor, states[1][name]), name


def test_split_loss_does_not_depend_on_the_evaluation_batch_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With class weights a mean of batch means is not the split's weighted mean.
    torch.manual_seed(0)
    model = _linear_model()
    x, _ = _separable(50, 8)
    y = torch.tensor([0] * 45 + [1] * 5)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor([50 / 90, 50 / 10]))
    with torch.no_grad():
        expected = float(loss_fn(model(x), y))
    monkeypatch.setattr("training.trainer.EVAL_BATCH", 7)
    assert mean_loss(model, x, y, loss_fn) == pytest.approx(expected, rel=1e-6)
    monkeypatch.setattr("training.trainer.EVAL_BATCH", 4096)
    assert mean_loss(model, x, y, loss_fn) == pytest.approx(expected, rel=1e-6)
