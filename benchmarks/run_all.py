"""Run every benchmark of the project in one go and collect the figures.

    python benchmarks/run_all.py [--out DIR] [--short] [--only NAME ...]

Runs each ``benchmarks/bench_*.py`` as its own process (so one cannot warm
another's caches), passing ``--json FILE`` and ``--short`` to the scripts that
accept them. Writes ``DIR/results.json`` (figures per benchmark, its printed
output, exit status and wall time) and prints a short table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def supported_flags(script: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout


def populated_database(folder: Path, market: Path) -> str:
    """A fresh SQLite file with the market folder run through the daily cycle and
    published, the way a user gets one (the CLI), for the benchmarks that serve the API."""
    url = f"sqlite:///{folder / 'bench.db'}"
    env = {**os.environ, "DEEPREGIME_DATABASE_URL": url}
    for args in (
        ["db", "upgrade"],
        ["update", "--source", "csv", "--path", str(market)],
    ):
        subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
    return url


def run(script: Path, out: Path, short: bool, database_url: str | None) -> dict:
    flags = supported_flags(script)
    command = [sys.executable, str(script)]
    figures_file = out / f"{script.stem}.json"
    if "--json" in flags:
        command += ["--json", str(figures_file)]
    if database_url and "--database-url" in flags:
        command += ["--database-url", database_url]
    if short and "--short" in flags:
        command.append("--short")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    entry = {
        "command": " ".join(command[1:]),
        "exit_status": done.returncode,
        "wall_s": round(time.perf_counter() - started, 2),
        "output": done.stdout.strip().splitlines(),
    }
    if done.returncode != 0:
        entry["error"] = done.stderr.strip().splitlines()[-5:]
    if figures_file.exists():
        entry["figures"] = json.loads(figures_file.read_text())
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--short", action="store_true", help="Shorter runs (CI).")
    parser.add_argument("--only", nargs="*", help="Benchmark names (e.g. bench_backtest).")
    parser.add_argument(
        "--database-url",
        help="Populated database for the API benchmarks (default: a fresh SQLite file "
        "loaded from --market).",
    )
    parser.add_argument("--market", type=Path, default=ROOT.parent / "shared" / "data" / "market")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    database_url = args.database_url or populated_database(scratch, args.market)

    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem in args.only]
    results = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "benchmarks": {},
    }
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        entry = run(script, args.out, args.short, database_url)
        results["benchmarks"][script.stem] = entry
        for line in entry["output"]:
            print(f"   {line}")
        if entry["exit_status"]:
            print(f"   FAILED ({entry['exit_status']}): {' | '.join(entry.get('error', []))}")
    shutil.rmtree(scratch, ignore_errors=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{'benchmark':28s} {'status':>6s} {'wall s':>8s}")
    for name, entry in results["benchmarks"].items():
        status = "ok" if entry["exit_status"] == 0 else "FAILED"
        print(f"{name:28s} {status:>6s} {entry['wall_s']:8.1f}")
    print(f"figures: {args.out / 'results.json'}")
    return 1 if any(e["exit_status"] for e in results["benchmarks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
