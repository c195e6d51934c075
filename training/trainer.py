"""A supervised training loop that knows nothing about the model it trains.

Adam on mini-batches (shuffled WITHIN the training split by a seeded
generator), evaluation on the validation split after every epoch, early
stopping on validation loss, and the weights of the best epoch restored at the
end. Seeding the global RNG (dropout, initial weights) is the caller's job.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from training.config import TrainerConfig

log = logging.getLogger(__name__)

EVAL_BATCH = 512  # windows per forward pass when evaluating; bounds attention memory


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    seconds: float


@dataclass(frozen=True)
class FitResult:
    history: tuple[EpochRecord, ...]
    best_epoch: int
    best_val_loss: float
    stop_reason: str  # "patience", "max_epochs" or "max_seconds"
    seconds: float


def class_weights(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights n / (n_classes * count_c); 1.0 each when balanced.

    A class absent from ``targets`` gets weight 1.0 (it never contributes a term).
    """
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    weights = np.ones(n_classes)
    present = counts > 0
    weights[present] = len(targets) / (n_classes * counts[present])
    return weights


def mean_loss(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: nn.Module
) -> float:
    """``loss_fn`` over a whole split at once, in eval mode (dropout off).

    The forward pass runs in batches (memory), but the loss sees every output
    together: a class-weighted mean is not the size-weighted mean of batch means,
    so the result must not depend on the batch size.
    """
    model.eval()
    with torch.no_grad():
        outputs = [
            model(inputs[start : start + EVAL_BATCH]) for start in range(0, len(inputs), EVAL_BATCH)
        ]
        return float(loss_fn(torch.cat(outputs), targets)) if outputs else float("nan")


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    loss_fn: nn.Module,
    config: TrainerConfig,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> FitResult:
    """Train ``model`` in place on (inputs, targets) pairs; returns the epoch history.
    ``on_epoch`` is called after each epoch (e.g. to advance a progress bar)."""
    config.validate()
    train_x, train_y = train
    val_x, val_y = val
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    best_loss, best_epoch, best_state = float("inf"), 0, copy.deepcopy(model.state_dict())
    history: list[EpochRecord] = []
    stop_reason = "max_epochs"
    started = time.perf_counter()
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        running, seen = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = loss_fn(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.item() * len(batch)
            seen += len(batch)
        val_loss = mean_loss(model, val_x, val_y, loss_fn)
        elapsed = time.perf_counter() - started
        train_loss = running / seen
        history.append(EpochRecord(epoch, train_loss, val_loss, elapsed))
        log.info("epoch %d train %.4f val %.4f (%.1fs)", epoch, train_loss, val_loss, elapsed)
        if on_epoch is not None:
            on_epoch(history[-1])
        if val_loss < best_loss:
            best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= config.patience:
            stop_reason = "patience"
            break
        if config.max_seconds is not None and elapsed >= config.max_seconds:
            stop_reason = "max_seconds"
            break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(
        history=tuple(history),
        best_epoch=best_epoch,
        best_val_loss=best_loss,
        stop_reason=stop_reason,
        seconds=time.perf_counter() - started,
    )
