"""Ingest and feature timings on the real data.

    python benchmarks/bench_foundation.py [--market DIR] [--postgres URL] [--repeat N] [--json FILE]

Prints: full ingest of the market folder into a fresh SQLite file and a fresh
PostgreSQL database, an unchanged re-run, a forced re-read (every file parsed
and compared, nothing written), and compute_features over the full SPY history
(median of N). Targets: SQLite < 10 s, Postgres < 20 s, re-run < 2 s, features < 0.5 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path

from scratch_postgres import scratch_database

from core.features import FEATURE_INPUT_SYMBOLS, compute_features
from store.db import make_engine
from store.ingest import ingest_csv_folder
from store.migrations import upgrade
from store.repository import load_closes

ROOT = Path(__file__).resolve().parents[1]


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def bench_database(url: str, market: Path, label: str) -> dict[str, float]:
    upgrade(url)
    engine = make_engine(url)
    today = dt.date.today()
    try:
        full, results = timed(lambda: ingest_csv_folder(engine, market, today=today))
        rows = sum(r.inserted for r in results)
        rerun, _ = timed(lambda: ingest_csv_folder(engine, market, today=today))
        forced, _ = timed(lambda: ingest_csv_folder(engine, market, today=today, force=True))
    finally:
        engine.dispose()
    print(
        f"{label:9s} full ingest {full:6.2f} s ({rows} rows)  re-run {rerun:5.3f} s  "
        f"forced re-read {forced:5.2f} s"
    )
    return {
        f"{label}_full_ingest_s": full,
        f"{label}_rerun_s": rerun,
        f"{label}_forced_reread_s": forced,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--market", type=Path, default=ROOT.parent / "shared" / "data" / "market")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--short", action="store_true", help="Fewer repeats.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    if args.short:
        args.repeat = 5

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        sqlite_url = f"sqlite:///{folder}/bench.db"
        figures |= bench_database(sqlite_url, args.market, "sqlite")
        engine = make_engine(sqlite_url)
        with engine.connect() as connection:
            closes = load_closes(connection, symbols=FEATURE_INPUT_SYMBOLS)
        engine.dispose()

    with scratch_database(args.postgres) as url:
        figures |= bench_database(url, args.market, "postgres")

    samples = [timed(lambda: compute_features(closes))[0] for _ in range(args.repeat)]
    figures["features_full_history_s"] = statistics.median(samples)
    print(
        f"features  {len(closes['SPY'])} SPY days: median "
        f"{figures['features_full_history_s'] * 1000:.1f} ms over {args.repeat} runs"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
