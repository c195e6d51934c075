"""Mixed load on loopback: many requests, many connections, zero errors allowed.

    python benchmarks/bench_load.py [--database-url URL] [--requests 50000]
                                    [--connections 64] [--json FILE] [--short]

One uvicorn worker serves the app; N keep-alive connections send a fixed mix
(per 100 requests: 80 GET /regime/today, 18 GET /regimes pages, 2 POST
/backtest of two strategies over one year) until the total is reached. Prints
per-endpoint p50/p99, errors (any status outside 2xx), and the server's
resident memory (with its research processes) after a warm-up at the same
concurrency and after the run (bound: growth under 64 MB; what a leak would show,
not first-touch allocation). The mixed case with the bare reference beside it is
bench_api.py's "+ 4 backtest posters".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api import DEFAULT_DB, free_port, run_client, start_server  # noqa: E402

MEMORY_GROWTH_BOUND_MB = 64
BACKTEST_BODY = json.dumps(
    {
        "strategies": [{"kind": "buy_and_hold"}, {"kind": "rules"}],
        "start": "2024-01-02",
        "end": "2024-12-31",
        "equity_sampling": "none",
    }
).encode()


def request_mix() -> list[tuple[str, bytes]]:
    """One cycle of 100 raw HTTP/1.1 requests in the stated proportions."""

    def get(path: str) -> tuple[str, bytes]:
        return "GET /regime/today" if path == "/regime/today" else "GET /regimes", (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n".encode()
        )

    post = (
        "POST /backtest",
        (
            "POST /backtest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BACKTEST_BODY)}\r\n\r\n"
        ).encode()
        + BACKTEST_BODY,
    )
    pages = [f"/regimes?start=20{y:02d}-01-01&end=20{y:02d}-12-31&limit=100" for y in range(10, 19)]
    cycle = [get("/regime/today")] * 80 + [get(pages[i % len(pages)]) for i in range(18)]
    return cycle + [post] * 2


def resident_mb(pid: int) -> float:
    """Resident memory of ``pid`` and every process under it (the research processes)."""
    total = 0.0
    for process in _tree(pid):
        try:
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except FileNotFoundError:
            continue
    return total


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        process = pending.pop()
        found.append(process)
        pending += children.get(process, [])
    return found


async def _connection(port: int, schedule: list, counter: list[int], total: int, out: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while counter[0] < total:
            label, payload = schedule[counter[0] % len(schedule)]
            counter[0] += 1
            started = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            entry = out.setdefault(label, {"latencies": [], "errors": 0})
            entry["latencies"].append(time.perf_counter() - started)
            if not 200 <= status < 300:
                entry["errors"] += 1
    finally:
        writer.close()


async def load(port: int, total: int, connections: int) -> tuple[dict, float]:
    schedule = request_mix()
    counter = [0]
    out: dict = {}
    started = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, schedule, counter, total, out) for _ in range(connections))
    )
    return out, time.perf_counter() - started


def summary(out: dict) -> dict:
    figures = {}
    for label, entry in sorted(out.items()):
        ordered = sorted(entry["latencies"])
        figures[label] = {
            "requests": len(ordered),
            "errors": entry["errors"],
            "p50_ms": 1000 * ordered[len(ordered) // 2],
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="Populated database (default: a copy of var/).")
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--short", action="store_true", help="5,000 requests.")
    args = parser.parse_args()
    total = 5_000 if args.short else args.requests

    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        url = args.database_url
        if url is None:
            if not DEFAULT_DB.exists():
                print(f"no database at {DEFAULT_DB}: run `make data` first")
                return 1
            shutil.copy(DEFAULT_DB, workdir / "load.db")
            url = f"sqlite:///{workdir / 'load.db'}"
        port = free_port()
        # The server runs as the image runs it (Dockerfile): two malloc arenas, so the
        # figure below is what a leak would show, not glibc's per-thread fragmentation.
        # One client stands for many: no rate limit on its backtests, and room in the
        # research queue for the connections' share of history pages and backtests.
        env = {
            "DEEPREGIME_DATABASE_URL": url,
            "MALLOC_ARENA_MAX": "2",
            "DEEPREGIME_BACKTEST_RATE_PER_MINUTE": "0",
            "DEEPREGIME_RESEARCH_QUEUE": str(args.connections),
        }
        server = start_server("app.main:create_app", port, env)
        try:
            # Warm-up at full concurrency: caches, the first backtest inputs, and one
            # malloc arena per busy thread are in place before memory is read.
            run_client(load(port, 2_000, args.connections))
            before = resident_mb(server.pid)
            out, elapsed = run_client(load(port, total, args.connections))
            after = resident_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    figures = summary(out)
    errors = sum(f["errors"] for f in figures.values())
    done = sum(f["requests"] for f in figures.values())
    print(
        f"{done} requests over {args.connections} connections in {elapsed:.1f} s "
        f"({done / elapsed:.0f} req/s), {errors} errors"
    )
    for label, f in figures.items():
        print(
            f"  {label:18s} {f['requests']:6d} requests  p50 {f['p50_ms']:7.2f} ms  "
            f"p99 {f['p99_ms']:7.2f} ms  errors {f['errors']}"
        )
    growth = after - before
    print(
        f"server memory: {before:.0f} MB before, {after:.0f} MB after "
        f"(growth {growth:+.1f} MB, bound {MEMORY_GROWTH_BOUND_MB} MB)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "endpoints": figures,
                    "errors": errors,
                    "requests": done,
                    "seconds": elapsed,
                    "rss_before_mb": before,
                    "rss_after_mb": after,
                },
                indent=2,
            )
        )
    ok = errors == 0 and growth < MEMORY_GROWTH_BOUND_MB
    print("zero errors, memory bounded" if ok else "FAILED: errors or memory growth")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
