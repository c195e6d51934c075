"""A flood of idle connections against `deepregime serve` with its default settings.

A hostile client opens up to 1,000 TCP connections and sends nothing on them,
opening new ones as the server closes them (at most 2,000 connections in all, at
most 30 s). Meanwhile /health and /regime/today keep answering 200, to a client on
another address and to one on the flooding address itself; the idle connections
are closed within seconds (SQLite and PostgreSQL).

The flood comes once from 127.0.0.1, which the server is told to trust as a proxy
(FORWARDED_ALLOW_IPS) and so caps only in all (DEEPREGIME_HTTP_MAX_CONNECTIONS),
and once from 127.0.0.2, also capped per address
(DEEPREGIME_HTTP_MAX_CONNECTIONS_PER_CLIENT, 64).
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.app.test_workers import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FLOOD = 1000  # idle connections held at once, at most
MAX_OPENED = 2000  # connections opened in all, at most
MAX_SECONDS = 30.0
DEFAULTS = Settings(_env_file=None)


@pytest.fixture
def served(populated_url: str, models_dir: Path, tmp_path: Path) -> Iterator[int]:
    """`deepregime serve` on the test database, every HTTP setting at its default."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DEEPREGIME_HTTP_") and key != "FORWARDED_ALLOW_IPS"
    }
    env |= {
        "DEEPREGIME_DATABASE_URL": populated_url,
        "DEEPREGIME_MODEL_DIR": str(models_dir),
        "FORWARDED_ALLOW_IPS": "127.0.0.1",  # a proxy on loopback, as behind HAProxy
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while "Uvicorn running on" not in log_path.read_text():  # listening
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(log_path.read_text()[-2000:])
                time.sleep(0.2)
            yield port
        finally:
            server.terminate()
            server.wait(timeout=60)


class Flood:
    """Idle connections from one address, refilled as the server closes them."""

    def __init__(self, port: int, source: str) -> None:
        self.port, self.source = port, source
        self.open: dict[socket.socket, float] = {}  # each with when it was opened
        self.opened = 0
        self.most_held = 0
        self.lifetimes: list[float] = []  # seconds from opening to the server closing it
        self.selector = selectors.DefaultSelector()

    def fill(self) -> None:
        while len(self.open) < FLOOD and self.opened < MAX_OPENED:
            sock = socket.create_connection(
                ("127.0.0.1", self.port), timeout=5, source_address=(self.source, 0)
            )
            sock.setblocking(False)
            self.open[sock] = time.monotonic()
            self.selector.register(sock, selectors.EVENT_READ)
            self.opened += 1
        self.most_held = max(self.most_held, len(self.open))

    def reap(self, wait_s: float = 0.0) -> None:
        """Forget the connections the server closed (readable, with nothing to read)."""
        for key, _ in self.selector.select(timeout=wait_s):
            sock = key.fileobj
            try:
                closed = sock.recv(1) == b""  # type: ignore[union-attr]
            except (ConnectionResetError, BlockingIOError):
                closed = True
            if closed:
                self.lifetimes.append(time.monotonic() - self.open.pop(sock))  # type: ignore[arg-type]
                self.selector.unregister(sock)
                sock.close()  # type: ignore[union-attr]

    def close(self) -> None:
        for sock in self.open:
            sock.close()
        self.selector.close()


def answers(port: int, source: str) -> tuple[int, int]:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
        return c.get("/health").status_code, c.get("/regime/today").status_code


@pytest.mark.parametrize("flood_from", ["127.0.0.1", "127.0.0.2"])
def test_idle_connections_never_deny_service(served, flood_from):
    flood = Flood(served, flood_from)
    started = time.monotonic()
    rounds = []
    held = []  # connections still open half a second after each refill
    try:
        while time.monotonic() - started < MAX_SECONDS and flood.opened < MAX_OPENED:
            flood.fill()
            rounds.append((answers(served, "127.0.0.3"), answers(served, flood_from)))
            flood.reap(wait_s=0.5)
            held.append(len(flood.open))
        # What is left is closed within the first-byte timeout (select returns as soon as
        # one connection is closed: reap until the deadline).
        deadline = time.monotonic() + DEFAULTS.http_first_byte_timeout_s + 3
        while flood.open and time.monotonic() < deadline:
            flood.reap(wait_s=0.2)
        left = len(flood.open)
    finally:
        flood.close()
    assert len(rounds) >= 3
    assert all(both == ((200, 200), (200, 200)) for both in rounds), rounds
    assert flood.opened <= MAX_OPENED
    # Never held longer than the first-byte timeout, plus scheduling slack.
    assert max(flood.lifetimes) < DEFAULTS.http_first_byte_timeout_s + 3
    assert left == 0  # every idle connection was closed by the server
    if flood_from != "127.0.0.1":  # an address with a cap of its own: the rest made room
        assert max(held) <= DEFAULTS.http_max_connections_per_client, held
    print(
        f"flood from {flood_from}: {flood.opened} connections opened, up to "
        f"{flood.most_held} held at once ({max(held)} still open 0.5 s after a refill), "
        f"{len(rounds)} rounds of requests all answered 200, "
        f"idle connections closed after {max(flood.lifetimes):.2f} s at most"
    )
