"""PNG plots of the evaluation (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import pandas as pd  # noqa: E402


def plot_probabilities(
    spy_close: pd.Series,
    predictions: pd.DataFrame,
    methods: Sequence[str],
    path: Path,
) -> Path:
    """SPY (log scale, label-distressed days shaded) above each method's score per day.

    ``predictions`` is the walk-forward table (``truth`` and ``<method>_score``).
    """
    days = predictions.index
    figure, axes = plt.subplots(
        len(methods) + 1, 1, figsize=(12, 2.0 * (len(methods) + 1)), sharex=True
    )
    top = axes[0]
    top.plot(days, spy_close.reindex(days), color="black", linewidth=0.8)
    top.set_yscale("log")
    top.set_ylabel("SPY")
    top.fill_between(
        days,
        0,
        1,
        where=predictions["truth"] >= 1,
        color="red",
        alpha=0.15,
        transform=top.get_xaxis_transform(),
        label="label: distressed",
    )
    top.legend(loc="upper left")
    top.set_title("Out-of-sample p(distressed) by method (walk-forward test days)")
    for axis, method in zip(axes[1:], methods, strict=True):
        axis.plot(days, predictions[f"{method}_score"], linewidth=0.7)
        axis.axhline(0.5, color="grey", linewidth=0.5, linestyle="--")
        axis.set_ylim(-0.05, 1.05)
        axis.set_ylabel(method)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_equity(equity: pd.DataFrame, path: Path, title: str) -> Path:
    """Wealth curves (log scale), one line per strategy."""
    figure, axis = plt.subplots(figsize=(12, 5))
    for column in equity.columns:
        axis.plot(equity.index, equity[column], linewidth=0.9, label=column)
    axis.set_yscale("log")
    axis.set_ylabel("wealth (start = 1)")
    axis.set_title(title)
    axis.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_reliability(tables: dict[str, pd.DataFrame], path: Path, title: str) -> Path:
    """Observed frequency against mean forecast probability per bin (the diagonal is
    perfect calibration); ``tables`` maps a name to training.calibration.reliability_table."""
    figure, axis = plt.subplots(figsize=(6, 6))
    axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--", label="perfect")
    for name, table in tables.items():
        axis.plot(table["mean_p"], table["observed"], marker="o", linewidth=1.0, label=name)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("forecast probability (bin mean)")
    axis.set_ylabel("observed frequency")
    axis.set_title(title)
    axis.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
