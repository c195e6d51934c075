"""Start-up time of ``deepregime serve`` beside a bare FastAPI app, in the same run.

    python benchmarks/bench_startup.py [--database-url URL] [--market DIR] [--rounds 5]
                                       [--json FILE] [--short]

Each round starts, in turn, a bare FastAPI app under uvicorn (one ``/health``
endpoint: the floor any Python web service pays to import and bind) and
``deepregime serve`` on a populated SQLite database (a copy of ``--database-url``,
by default a fresh one loaded from ``--market`` through the daily cycle), and
measures from the process's start to its first 200 on ``GET /health``. For the
service it also measures the first ``POST /backtest`` answered (its research
processes start in the background) and, after SIGTERM, whether the shutdown was
clean: no process of its own left, no multiprocessing semaphore reported leaked,
no Dask worker killed. Medians over the rounds; the target is the service
answering ``/health`` within 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_api import free_port

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 2.0
SHUTDOWN_FAULTS = ("leaked semaphore", "still alive after", "Traceback")
BACKTEST = {"strategies": [{"kind": "buy_and_hold"}, {"kind": "rules"}], "store": False}


# The reference, written to a file of its own so that its process imports only what any
# FastAPI service imports (not this script's imports).
BARE_APP = """from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
"""


def deepregime_command() -> list[str]:
    """The installed command, as a user runs it (``python -m cli.main`` without one)."""
    script = Path(sys.executable).with_name("deepregime")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def populated_database(folder: Path, market: Path) -> Path:
    """A SQLite file with ``market`` run through the daily cycle, as `make run` builds."""
    path = folder / "startup.db"
    env = {**os.environ, "DEEPREGIME_DATABASE_URL": f"sqlite:///{path}"}
    for args in (["db", "upgrade"], ["update", "--source", "csv", "--path", str(market)]):
        subprocess.run(
            [*deepregime_command(), *args], cwd=ROOT, env=env, check=True, capture_output=True
        )
    return path


def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise SystemExit(f"--database-url must be a SQLite file (the shipped default): {url}")
    return Path(url.removeprefix("sqlite:///"))


def wait_for(url: str, process: subprocess.Popen, started: float, timeout_s: float) -> float:
    """Seconds from ``started`` to the first 200 from ``url`` (polled every 5 ms)."""
    deadline = started + timeout_s
    with httpx.Client(timeout=1.0) as client:
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                _, stderr = process.communicate()
                raise RuntimeError(
                    f"the server exited ({process.returncode}) before answering: "
                    f"{(stderr or '').strip()[-1000:]}"
                )
            try:
                if client.get(url).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.005)
    raise RuntimeError(f"no 200 from {url} within {timeout_s:g} s")


def stop(process: subprocess.Popen) -> str:
    """SIGTERM, as a process manager stops the service; the server's stderr."""
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        stderr += "\n(killed: no exit within 60 s of SIGTERM)"
    return stderr


def bare_round(scratch: Path) -> float:
    (scratch / "bare_health.py").write_text(BARE_APP)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bare_health:app",
        "--app-dir",
        str(scratch),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        return wait_for(f"http://127.0.0.1:{port}/health", process, started, 60)
    finally:
        stop(process)


def service_round(database: Path, scratch: Path) -> dict[str, object]:
    copy = scratch / "serving.db"
    shutil.copyfile(database, copy)  # every round starts from the same file
    port = free_port()
    env = {**os.environ, "DEEPREGIME_DATABASE_URL": f"sqlite:///{copy}"}
    command = [*deepregime_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        health_s = wait_for(f"http://127.0.0.1:{port}/health", process, started, 120)
        answered = httpx.post(f"http://127.0.0.1:{port}/backtest", json=BACKTEST, timeout=120)
        backtest_s = time.perf_counter() - started
        if answered.status_code != 200:
            raise RuntimeError(f"POST /backtest answered {answered.status_code}: {answered.text}")
    finally:
        stderr = stop(process)
    faults = [line for line in stderr.splitlines() if any(f in line for f in SHUTDOWN_FAULTS)]
    return {"health_s": health_s, "first_backtest_s": backtest_s, "shutdown_faults": faults}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="populated SQLite database (copied per round)")
    parser.add_argument("--market", type=Path, default=ROOT.parent / "shared" / "data" / "market")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--short", action="store_true", help="Two rounds.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rounds = 2 if args.short else args.rounds
    scratch = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        database = (
            sqlite_path(args.database_url)
            if args.database_url
            else populated_database(scratch, args.market)
        )
        bare, service = [], []
        for _ in range(rounds):  # taking turns, so a change of load touches both alike
            bare.append(bare_round(scratch))
            service.append(service_round(database, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    health = [r["health_s"] for r in service]
    backtest = [r["first_backtest_s"] for r in service]
    faults = [fault for r in service for fault in r["shutdown_faults"]]  # type: ignore[attr-defined]
    figures = {
        "rounds": rounds,
        "bare_health_s": statistics.median(bare),
        "service_health_s": statistics.median(health),
        "service_health_max_s": max(health),
        "service_over_bare": statistics.median(health) / statistics.median(bare),
        "first_backtest_s": statistics.median(backtest),
        "target_s": TARGET_S,
        "met": max(health) <= TARGET_S,
        "shutdown_faults": faults,
    }
    print(f"start to first 200 on /health, median of {rounds} alternating rounds:")
    print(f"  bare FastAPI app (uvicorn)       {figures['bare_health_s']:.2f} s")
    print(
        f"  deepregime serve (SQLite, data)  {figures['service_health_s']:.2f} s "
        f"(max {figures['service_health_max_s']:.2f} s; {figures['service_over_bare']:.1f}x "
        f"bare; target {TARGET_S:g} s: {'met' if figures['met'] else 'NOT met'})"
    )
    print(f"  first POST /backtest answered    {figures['first_backtest_s']:.2f} s after start")
    print(f"  shutdown on SIGTERM: {'clean' if not faults else '; '.join(faults)}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main())
