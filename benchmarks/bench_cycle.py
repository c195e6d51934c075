"""One new trading day through the whole daily cycle, per step, on SQLite and PostgreSQL.

    python benchmarks/bench_cycle.py [--market DIR] [--postgres URL] [--days N] [--short]
                                     [--json FILE]

Loads the real history to a date, then feeds the next N trading days one at a
time as new yfinance-layout files through ``operations.update.run_update`` with
the shipped model and the default universe (every market's rule set computed and
published), and prints the median time of each step (ingest, revisions,
features, regimes, model, publish, notify) and of the whole update. Beside it,
measured in the same run on the same database: the reference, recomputing the
same last day the non-incremental way (features and regimes over the whole
history, the model over every day). Targets: one day under 1 s on SQLite and
under 3 s on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratch_postgres import scratch_database  # noqa: E402

from app.settings import Settings  # noqa: E402
from core.rules import rule_set_preset  # noqa: E402
from operations.markets import load_universe  # noqa: E402
from operations.models import load_active_model  # noqa: E402
from operations.update import run_update  # noqa: E402
from store.db import make_engine  # noqa: E402
from store.migrations import upgrade  # noqa: E402
from store.pipeline import refresh_features, refresh_regimes  # noqa: E402
from store.repository import load_features  # noqa: E402
from tests.operations.replay import ETFS, read_market, write_day, write_history  # noqa: E402

# Every input of the default universe: each market's rule set is computed and published.
UNIVERSE_ETFS = tuple(sorted(set(ETFS) | set(load_universe().symbols)))

TARGET_S = {"sqlite": 1.0, "postgres": 3.0}
STEPS = ("ingest", "revisions", "features", "regimes", "model", "publish", "notify")


def bench(url: str, label: str, market: Path, days: int, scratch: Path) -> dict[str, float]:
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(
        database_url=url, data_source="csv", model_dir=ROOT / "models", _env_file=None
    )
    model = load_active_model(engine, settings.model_dir)
    bars = read_market(market, etfs=UNIVERSE_ETFS)
    calendar = bars["SPY"].frame.index
    new_days = calendar[-days:]
    history_end = calendar[-days - 1]
    try:
        run_update(
            engine,
            settings=settings,
            model=model,
            trigger="cli",
            path=write_history(
                scratch / f"{label}-history", market, history_end, etfs=UNIVERSE_ETFS
            ),
        )
        per_step: dict[str, list[float]] = {step: [] for step in STEPS}
        totals = []
        previous = history_end
        for day in new_days:
            folder = write_day(
                scratch / f"{label}-{day:%Y%m%d}", bars, previous, day, etfs=UNIVERSE_ETFS
            )
            previous = day
            started = time.perf_counter()
            report = run_update(engine, settings=settings, model=model, trigger="cli", path=folder)
            totals.append(time.perf_counter() - started)
            assert report.status == "published", report.summary_lines()
            for step in report.steps:
                per_step[step.name].append(step.seconds)
        reference = _full_recompute(engine, model)
    finally:
        engine.dispose()
    figures = {f"{label}_{step}_s": statistics.median(values) for step, values in per_step.items()}
    figures[f"{label}_update_s"] = statistics.median(totals)
    figures[f"{label}_full_recompute_s"] = reference
    steps = "  ".join(f"{step} {statistics.median(per_step[step]) * 1000:.0f}" for step in STEPS)
    verdict = "meets" if figures[f"{label}_update_s"] < TARGET_S[label] else "MISSES"
    print(
        f"{label:8s} one day: {figures[f'{label}_update_s']:.2f} s (median of {days}; "
        f"{verdict} the {TARGET_S[label]:.0f} s target)  | reference, full recompute of the "
        f"same day: {reference:.2f} s"
    )
    print(f"{'':8s} steps, ms: {steps}")
    return figures


def _full_recompute(engine, model) -> float:  # type: ignore[no-untyped-def]
    """The same day the non-incremental way: every day's features, regimes and model
    outputs recomputed (nothing written: the stored rows already match)."""
    rule_set = rule_set_preset("published").validate()
    started = time.perf_counter()
    with engine.begin() as connection:
        refresh_features(connection)
        refresh_regimes(connection, rule_set)
        if model.predictor is not None:
            model.predictor.predict_daily(load_features(connection))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--market", type=Path, default=ROOT.parent / "shared" / "data" / "market")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--short", action="store_true", help="Three days.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    days = 3 if args.short else args.days
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        figures |= bench(f"sqlite:///{scratch / 'cycle.db'}", "sqlite", args.market, days, scratch)
        with scratch_database(args.postgres) as url:
            figures |= bench(url, "postgres", args.market, days, scratch)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
