"""Load benchmark of the REST service on loopback.

    python benchmarks/bench_api.py [--database-url URL] [--seconds 10] [--connections 32]
                                   [--backtests 30] [--json FILE] [--short]

Starts one uvicorn worker for the service (on a copy of ./var/deepregime.db by
default, so stored backtest runs do not pile up there) and, in turn, one for a
bare FastAPI app whose only endpoint returns a constant JSON. A keep-alive
asyncio HTTP/1.1 client with N connections then hammers each for the same
duration. Prints throughput and p50/p99 latency of the bare endpoint and of
GET /regime/today, their ratio, and the p50 of POST /backtest with six
strategies over the full history (sequential, httpx).

Targets: /regime/today >= 60% of the bare throughput, p99 < 20 ms; POST /backtest p50 < 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = ROOT / "var" / "deepregime.db"
SIX_STRATEGIES = {
    "strategies": [
        {"kind": "buy_and_hold"},
        {"kind": "rules"},
        {"kind": "single_filter", "filter": "trend"},
        {"kind": "single_filter", "filter": "volatility"},
        {"kind": "single_filter", "filter": "credit"},
        {"kind": "rules", "preset": "platform"},
    ],
    "equity_sampling": "weekly",
    # The full history: SPY from 1993 plus the SMA200 warm-up. Without a start the
    # period would begin where every strategy has input (2009, VIX3M).
    "start": "1994-01-03",
}


def bare_app() -> FastAPI:
    """The reference: FastAPI with one endpoint returning a constant JSON."""
    app = FastAPI()

    @app.get("/constant")
    async def constant() -> dict[str, object]:
        return {"status": "ok", "regime": "risk-on", "exposure": 1.0}

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(target: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        target,
        "--app-dir",
        str(ROOT / "benchmarks") if target.startswith("bench_api") else str(ROOT),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{target} did not start on port {port}")


async def _one_connection(
    port: int, path: str, stop_at: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n"
    payload = request.encode()
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def hammer(port: int, path: str, seconds: float, connections: int) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *(_one_connection(port, path, stop_at, latencies, errors) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "errors": len(errors),
        "throughput_rps": len(ordered) / elapsed,
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


def run_client(coroutine):  # type: ignore[no-untyped-def]
    """uvloop when installed (uvicorn[standard] brings it): the client then takes less
    of the CPU the server needs, for both endpoints alike."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def measure(target: str, path: str, env: dict[str, str], seconds: float, n: int) -> dict:
    port = free_port()
    server = start_server(target, port, env)
    try:
        run_client(hammer(port, path, min(2.0, seconds), n))  # warm-up
        return run_client(hammer(port, path, seconds, n))
    finally:
        server.terminate()
        server.wait(timeout=30)


def measure_backtests(env: dict[str, str], count: int) -> dict:
    port = free_port()
    server = start_server("app.main:create_app", port, env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            first = client.post("/backtest", json=SIX_STRATEGIES)
            first.raise_for_status()
            timings = []
            for _ in range(count):
                started = time.perf_counter()
                client.post("/backtest", json=SIX_STRATEGIES).raise_for_status()
                timings.append(1000 * (time.perf_counter() - started))
        period = first.json()["period"]
        return {
            "runs": count,
            "days": period["days"],
            "period": f"{period['start']} .. {period['end']}",
            "p50_ms": statistics.median(timings),
            "max_ms": max(timings),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="Populated database (default: a copy of var/).")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--backtests", type=int, default=30)
    parser.add_argument("--json", type=Path, help="Write the figures here.")
    parser.add_argument("--short", action="store_true", help="3 s per load test, 10 backtests.")
    args = parser.parse_args()
    seconds, backtests = (3.0, 10) if args.short else (args.seconds, args.backtests)

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    try:
        url = args.database_url
        if url is None:
            if not DEFAULT_DB.exists():
                print(f"no database at {DEFAULT_DB}: run `deepregime ingest` and `signals` first")
                return 1
            shutil.copy(DEFAULT_DB, workdir / "bench.db")
            url = f"sqlite:///{workdir / 'bench.db'}"
        env = {"DEEPREGIME_DATABASE_URL": url}
        n = args.connections
        print(f"loopback, 1 uvicorn worker each, {n} connections, {seconds:g} s per endpoint")
        bare = measure("bench_api:bare_app", "/constant", env, seconds, n)
        today = measure("app.main:create_app", "/regime/today", env, seconds, n)
        runs = measure_backtests(env, backtests)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ratio = today["throughput_rps"] / bare["throughput_rps"]
    for label, figures in (("bare constant JSON", bare), ("GET /regime/today", today)):
        print(
            f"{label:20s} {figures['throughput_rps']:8.0f} req/s  p50 {figures['p50_ms']:6.2f} ms"
            f"  p99 {figures['p99_ms']:6.2f} ms  ({figures['requests']} requests, "
            f"{figures['errors']} errors)"
        )
    print(
        f"/regime/today throughput = {ratio:.0%} of bare (target >= 60%), "
        f"p99 {today['p99_ms']:.2f} ms (target < 20 ms)"
    )
    print(
        f"POST /backtest, 6 strategies, {runs['days']} days ({runs['period']}): "
        f"p50 {runs['p50_ms']:.0f} ms, max {runs['max_ms']:.0f} ms over {runs['runs']} runs "
        "(target p50 < 300 ms)"
    )
    figures = {"bare": bare, "regime_today": today, "ratio": ratio, "backtest": runs}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    met = ratio >= 0.6 and today["p99_ms"] < 20 and runs["p50_ms"] < 300
    print("targets met" if met else "targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
