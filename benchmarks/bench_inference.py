"""Classifier inference timings: onnxruntime (as served) beside torch eager.

    python benchmarks/bench_inference.py [--market DIR] [--models DIR] [--repeat N]
                                         [--short] [--json FILE]

Prints, for the published architecture (60 x 6 windows, 64 wide, 2 layers):
- one window: p50 / p95 latency over N calls (target: onnxruntime p50 < 1 ms);
- the full history: daily outputs for every SPY day since 1993 (about 8,000
  windows) through ``RegimePredictor.predict_daily``, windowing included
  (target < 1 s), beside torch eager on the same windows.
Both runtimes use one thread and the same architecture. The timed model is the
newest version under models/ when there is one (its ONNX file, and a torch
model of the same shape for the eager column), else a one-epoch model trained
on the spot: latency does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.features import MODEL_FEATURES, compute_features
from inference.predictor import RegimePredictor
from inference.registry import list_versions
from inference.windows import complete_window_ends, feature_matrix, sliding_windows
from training.config import ModelConfig, TrainerConfig, TrainingSetup
from training.export import torch_probabilities
from training.model import RegimeTransformer
from training.pipeline import train_version

ROOT = Path(__file__).resolve().parents[1]


def read_features(market: Path) -> pd.DataFrame:
    """Feature table from the real SPY and VIX files, or a seeded stand-in of the same size."""
    spy_path, vix_path = market / "SPY.csv", market / "VIX_History.csv"
    if spy_path.exists() and vix_path.exists():
        spy = pd.read_csv(spy_path, skiprows=3, header=None).iloc[:, :2]
        spy_close = pd.Series(
            spy[1].to_numpy(float),
            index=pd.DatetimeIndex(pd.to_datetime(spy[0]).dt.normalize(), name="date"),
        )
        vix = pd.read_csv(vix_path)
        vix_close = pd.Series(
            vix["CLOSE"].to_numpy(float),
            index=pd.DatetimeIndex(pd.to_datetime(vix["DATE"], format="%m/%d/%Y"), name="date"),
        )
        return compute_features({"SPY": spy_close, "^VIX": vix_close})
    print(f"(no market data at {market}: timing on 8,038 seeded random-walk days)")
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("1993-01-29", periods=8038, name="date")
    spy = pd.Series(100 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, len(dates)))), index=dates)
    vix = pd.Series(np.exp(np.log(18) + np.cumsum(rng.normal(0, 0.015, len(dates)))), index=dates)
    return compute_features({"SPY": spy, "^VIX": vix})


def predictor_for(
    models: Path, scratch: Path, features: pd.DataFrame
) -> tuple[RegimePredictor, str]:
    """The newest shipped version, else a one-epoch model trained into ``scratch``."""
    versions = list_versions(models)
    if versions:
        return RegimePredictor.load(models, versions[-1]), f"shipped model {versions[-1]}"
    setup = TrainingSetup(trainer=TrainerConfig(max_epochs=1, threads=1))
    card, _ = train_version(features, setup, scratch)
    return RegimePredictor.load(scratch, card.version), "a one-epoch model (nothing shipped)"


def latency_ms(function, repeat: int) -> tuple[float, float]:
    for _ in range(20):  # warm-up
        function()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def best_of(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--market", type=Path, default=ROOT.parent / "shared" / "data" / "market")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--repeat", type=int, default=2000, help="single-window calls timed")
    parser.add_argument("--short", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    repeat = 300 if args.short else args.repeat
    torch.set_num_threads(1)

    features = read_features(args.market)
    with tempfile.TemporaryDirectory() as scratch:
        predictor, origin = predictor_for(args.models, Path(scratch), features)
        eager = RegimeTransformer(ModelConfig(window=predictor.card.window)).eval()

        values = feature_matrix(features, MODEL_FEATURES)
        ends = complete_window_ends(values, predictor.card.window)
        windows = np.ascontiguousarray(
            sliding_windows(values, predictor.card.window)[ends - (predictor.card.window - 1)],
            dtype=np.float32,
        )
        one = windows[-1:]
        one_tensor = torch.as_tensor(one)

        def eager_one() -> None:
            with torch.no_grad():
                eager(one_tensor)

        ort_p50, ort_p95 = latency_ms(lambda: predictor.predict_windows(one), repeat)
        torch_p50, torch_p95 = latency_ms(eager_one, repeat)
        runs = 3 if args.short else 5
        ort_full = best_of(lambda: predictor.predict_daily(features), runs)
        torch_full = best_of(lambda: torch_probabilities(eager, windows), runs)

    print(f"inference on {origin}; {len(features)} days, {len(windows)} complete windows")
    print(
        f"one window     onnxruntime p50 {ort_p50:6.3f} ms  p95 {ort_p95:6.3f} ms   "
        f"torch eager p50 {torch_p50:6.3f} ms  p95 {torch_p95:6.3f} ms   (target p50 < 1 ms)"
    )
    print(
        f"full history   onnxruntime {ort_full:6.3f} s (predict_daily, windowing included)   "
        f"torch eager {torch_full:6.3f} s   (target < 1 s)"
    )
    figures = {
        "windows": len(windows),
        "ort_one_window_p50_ms": ort_p50,
        "ort_one_window_p95_ms": ort_p95,
        "torch_one_window_p50_ms": torch_p50,
        "torch_one_window_p95_ms": torch_p95,
        "ort_full_history_s": ort_full,
        "torch_full_history_s": torch_full,
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
