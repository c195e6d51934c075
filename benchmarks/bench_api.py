"""Load benchmark of the REST service on loopback, every figure beside a bare endpoint.

    python benchmarks/bench_api.py [--database-url URL] [--seconds 10] [--connections 32]
                                   [--backtests 30] [--rounds 3] [--json FILE] [--short]

Starts one uvicorn worker for a bare FastAPI app whose only endpoint returns a
constant JSON and one for the service (on a copy of ./var/deepregime.db by
default), both with the service's HTTP limits (app.limits). wrk (one thread, N
keep-alive connections) measures, in this run, the bare endpoint and
``/regime/today`` taking turns over ``--rounds`` rounds (medians reported, so a
change of load on the machine touches both alike):

- the bare endpoint: throughput and p99, the reference;
- ``GET /regime/today``: throughput as a share of the bare one (floor 90%), p99 as
  a multiple of the bare p99 (floor 2x); and its 304 answer to ``If-None-Match``;
- ``GET /regime/today?market=QQQ`` (another market, answered by its rule set):
  throughput as a share of the default market's, rounds alternating (floor 90%);
- ``GET /regime/today`` while four clients post six-strategy backtests back to
  back: p99 as a multiple of the bare p99 (floor 3x);
- ``POST /backtest`` with six strategies over the full history, sequential: p50
  (floor 20 ms).

Without wrk on the PATH (``apt-get install wrk``) an asyncio client stands in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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
    """One uvicorn worker for ``target`` with the service's HTTP limits (the same for
    the bare app and the service, so they are compared on equal terms)."""
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
        "--http",
        "app.limits:LimitedHttpToolsProtocol",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    process = subprocess.Popen(command, cwd=ROOT, env=environment)
    deadline = time.monotonic() + 180  # the service starts its research processes first
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{target} did not start on port {port}")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


WRK_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    port: int, path: str, seconds: float, connections: int, headers: dict | None = None
) -> dict:
    """wrk's throughput and p50/p99 (ms) for GET ``path``; non-2xx/3xx answers are errors."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    out = done.stdout
    latency = {f"p{q}_ms": float(v) * WRK_UNITS[u] for q, v, u in WRK_LATENCY.findall(out)}
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": requests,
        "errors": (int(bad.group(1)) if bad else 0)
        + (sum(int(n) for n in errors.groups()) if errors else 0),
        "throughput_rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        **latency,
    }


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


def load(port: int, path: str, seconds: float, n: int, headers: dict | None = None) -> dict:
    if shutil.which("wrk"):
        return wrk(port, path, seconds, n, headers)
    return run_client(hammer(port, path, seconds, n))


def median_figures(rounds: list[dict]) -> dict:
    """Per figure, the median over rounds (the rounds alternate with the other server's,
    so a load change on the machine touches both sides alike)."""
    keys = ("throughput_rps", "p50_ms", "p99_ms")
    merged = {key: statistics.median(r[key] for r in rounds) for key in keys}
    merged["requests"] = sum(r["requests"] for r in rounds)
    merged["errors"] = sum(r["errors"] for r in rounds)
    merged["rounds"] = len(rounds)
    return merged


def post_backtests(port: int, stop: threading.Event, timings: list[float], body: dict) -> None:
    """POST ``body`` back to back until ``stop`` (one client of the mixed case)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.post("/backtest", json=body).raise_for_status()
            timings.append(1000 * (time.perf_counter() - started))


# A market other than the default, answered by its rule set (operations.rule_sets).
MARKET_TODAY = "/regime/today?market=QQQ"


def measure(env: dict[str, str], seconds: float, n: int, backtests: int, rounds: int) -> dict:
    """Both servers up at once; the bare endpoint and /regime/today take turns under load."""
    bare_port, port = free_port(), free_port()
    bare_server = start_server("bench_api:bare_app", bare_port, env)
    server = start_server("app.main:create_app", port, env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            first = client.post("/backtest", json=SIX_STRATEGIES)  # starts the research pool
            first.raise_for_status()
            etag = client.get("/regime/today").headers["etag"]
            timings = []
            for _ in range(backtests):
                started = time.perf_counter()
                client.post("/backtest", json=SIX_STRATEGIES).raise_for_status()
                timings.append(1000 * (time.perf_counter() - started))
        load(bare_port, "/constant", min(2.0, seconds), n)  # warm-up
        load(port, "/regime/today", min(2.0, seconds), n)
        load(port, MARKET_TODAY, min(2.0, seconds), n)
        bare_rounds, today_rounds, market_rounds = [], [], []
        for _ in range(rounds):
            bare_rounds.append(load(bare_port, "/constant", seconds, n))
            today_rounds.append(load(port, "/regime/today", seconds, n))
            market_rounds.append(load(port, MARKET_TODAY, seconds, n))
        not_modified = load(port, "/regime/today", seconds, n, {"If-None-Match": etag})
        stop, mixed_timings = threading.Event(), []
        posters = [
            threading.Thread(
                target=post_backtests, args=(port, stop, mixed_timings, SIX_STRATEGIES)
            )
            for _ in range(4)
        ]
        for poster in posters:
            poster.start()
        try:
            time.sleep(1.0)  # every client has a backtest in flight
            mixed = load(port, "/regime/today", seconds, n)
        finally:
            stop.set()
            for poster in posters:
                poster.join(timeout=120)
        period = first.json()["period"]
        return {
            "bare": median_figures(bare_rounds),
            "regime_today": median_figures(today_rounds),
            "regime_today_market": median_figures(market_rounds),
            "regime_today_304": not_modified,
            "regime_today_with_backtests": {**mixed, "backtests_done": len(mixed_timings)},
            "backtest": {
                "runs": backtests,
                "days": period["days"],
                "period": f"{period['start']} .. {period['end']}",
                "p50_ms": statistics.median(timings),
                "max_ms": max(timings),
            },
        }
    finally:
        stop_server(server)
        stop_server(bare_server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="Populated database (default: a copy of var/).")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--backtests", type=int, default=30)
    parser.add_argument("--json", type=Path, help="Write the figures here.")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    parser.add_argument(
        "--short", action="store_true", help="3 s per load test, 1 round, 10 backtests."
    )
    args = parser.parse_args()
    seconds, backtests, rounds = (
        (3.0, 10, 1) if args.short else (args.seconds, args.backtests, args.rounds)
    )

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    try:
        url = args.database_url
        if url is None:
            if not DEFAULT_DB.exists():
                print(f"no database at {DEFAULT_DB}: run `deepregime ingest` and `signals` first")
                return 1
            shutil.copy(DEFAULT_DB, workdir / "bench.db")
            url = f"sqlite:///{workdir / 'bench.db'}"
        # One client stands for many here: no rate limit on its backtests.
        env = {"DEEPREGIME_DATABASE_URL": url, "DEEPREGIME_BACKTEST_RATE_PER_MINUTE": "0"}
        n = args.connections
        tool = "wrk -t1" if shutil.which("wrk") else "asyncio client (no wrk on PATH)"
        print(
            f"loopback, 1 uvicorn worker each, {tool}, {n} connections, {seconds:g} s per case; "
            f"bare and /regime/today alternate over {rounds} round(s), medians shown"
        )
        service = measure(env, seconds, n, backtests, rounds)
        bare = service["bare"]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    today, runs = service["regime_today"], service["backtest"]
    mixed, not_modified = service["regime_today_with_backtests"], service["regime_today_304"]
    ratio = today["throughput_rps"] / bare["throughput_rps"]
    market_today = service["regime_today_market"]
    market_ratio = market_today["throughput_rps"] / today["throughput_rps"]
    p99_ratio = today["p99_ms"] / bare["p99_ms"]
    mixed_p99_ratio = mixed["p99_ms"] / bare["p99_ms"]
    for label, figures in (
        ("bare constant JSON", bare),
        ("GET /regime/today", today),
        ("  ?market=QQQ", market_today),
        ("  304 (If-None-Match)", not_modified),
        ("  + 4 backtest posters", mixed),
    ):
        print(
            f"{label:22s} {figures['throughput_rps']:8.0f} req/s  p50 {figures['p50_ms']:6.2f} ms"
            f"  p99 {figures['p99_ms']:6.2f} ms  ({figures['requests']} requests, "
            f"{figures['errors']} errors)"
        )
    print(
        f"/regime/today: throughput {ratio:.0%} of bare (floor >= 90%), "
        f"p99 {p99_ratio:.2f}x bare (floor <= 2x)"
    )
    print(
        f"/regime/today?market=QQQ: throughput {market_ratio:.0%} of the default market's "
        "(floor >= 90%)"
    )
    print(
        f"/regime/today while 4 clients post backtests ({mixed['backtests_done']} done): "
        f"p99 {mixed_p99_ratio:.2f}x bare (floor <= 3x)"
    )
    print(
        f"POST /backtest, 6 strategies, {runs['days']} days ({runs['period']}): "
        f"p50 {runs['p50_ms']:.1f} ms, max {runs['max_ms']:.0f} ms over {runs['runs']} runs "
        "(floor p50 < 20 ms)"
    )
    figures = {
        "bare": bare,
        **service,
        "ratio": ratio,
        "market_ratio": market_ratio,
        "p99_ratio": p99_ratio,
        "mixed_p99_ratio": mixed_p99_ratio,
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    met = (
        ratio >= 0.9
        and market_ratio >= 0.9
        and p99_ratio <= 2
        and mixed_p99_ratio <= 3
        and runs["p50_ms"] < 20
    )
    print("floors met" if met else "floors NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
