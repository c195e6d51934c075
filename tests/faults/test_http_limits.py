"""HTTP limits on a real server (uvicorn with app.limits): oversized and slow requests
are cut, idle connections closed, open connections bounded, and /regime/today keeps
answering meanwhile (SQLite and PostgreSQL).

The limits are set small so each case ends quickly; socket timeouts are only there
to fail a test that would otherwise hang.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from app.limits import server_options
from app.main import create_app
from app.settings import Settings

LIMITS = {
    "http_max_head_bytes": 4096,
    "http_head_timeout_s": 0.5,
    "http_body_timeout_s": 0.5,
    "http_keepalive_s": 0.5,
    "http_max_connections": 4,
}


@contextmanager
def serving(settings: Settings) -> Iterator[int]:
    """The app on a free loopback port, in a thread, with the settings' HTTP limits."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        **server_options(settings),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def port(settings: Settings) -> Iterator[int]:
    with serving(settings.model_copy(update=LIMITS)) as port:
        yield port


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def today_answers(port: int) -> bool:
    answer = httpx.get(f"http://127.0.0.1:{port}/regime/today", timeout=10)
    return answer.status_code == 200


def test_an_oversized_request_head_is_refused_431_and_closed(port):
    with connect(port) as sock:
        sock.sendall(b"GET /regime/today HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(64):  # 1 MiB of header, never finished
                sock.sendall(b"a" * 16384)
        except (BrokenPipeError, ConnectionResetError):
            pass  # cut while sending
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert today_answers(port)


def test_a_slow_request_head_is_cut_408_while_others_are_served(port):
    with connect(port) as slow, connect(port) as silent:
        slow.sendall(b"GET /regime/today HTTP/1.1\r\nHost: x\r\n")  # and never the end
        assert today_answers(port)  # others are served meanwhile
        answer = read_all(slow)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert b"connection: close" in answer.lower()
        read_all(silent)  # a connection that never sends a byte is closed as well
    assert today_answers(port)


def test_a_slow_request_body_is_cut_408(port):
    with connect(port) as sock:
        sock.sendall(
            b"POST /backtest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"strategies"'
        )
        assert today_answers(port)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert today_answers(port)


def test_an_oversized_body_is_refused_413(port):
    with connect(port) as sock:
        sock.sendall(
            b"POST /backtest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n"
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]


def test_an_idle_kept_alive_connection_is_closed(port):
    with connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_all(sock)  # served, then closed once idle past the keep-alive
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_open_connections_are_bounded_503(port):
    held = [connect(port) for _ in range(LIMITS["http_max_connections"])]
    try:
        for sock in held:  # each has sent its first byte: it is a connection, not a backlog
            sock.sendall(b"G")
        time.sleep(0.1)
        answer = httpx.get(f"http://127.0.0.1:{port}/regime/today", timeout=10)
        assert answer.status_code == 503
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while not today_answers(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert today_answers(port)
