"""HTTP limits on a real server (uvicorn with app.limits): oversized and slow requests
are cut, silent and idle connections closed, open connections bounded in all and per
client address without idle ones ever turning a request away, and /regime/today keeps
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
    "http_first_byte_timeout_s": 0.5,
    "http_max_connections": 4,
    "http_max_connections_per_client": 2,
    "forwarded_allow_ips": "127.0.0.1",
}
# 127.0.0.1 is trusted as a proxy here (FORWARDED_ALLOW_IPS), so it has no per-address
# cap: the capped client connects from another loopback address.
OTHER_CLIENT = "127.0.0.2"


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


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def start_slow_post(sock: socket.socket) -> None:
    """A request whose head is complete and whose body never ends: a request in flight."""
    sock.sendall(
        b"POST /backtest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"strategies"'
    )


def closed_by_server(sock: socket.socket, within_s: float = 5.0) -> bool:
    sock.settimeout(within_s)
    try:
        return read_all(sock) == b""
    except TimeoutError:
        return False


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


def test_a_silent_connection_is_closed_without_an_answer(port):
    with connect(port) as silent:
        started = time.monotonic()
        assert closed_by_server(silent)
        assert time.monotonic() - started < LIMITS["http_first_byte_timeout_s"] + 2


def test_idle_connections_are_closed_to_make_room_never_refusing_a_request(port):
    held = [connect(port) for _ in range(LIMITS["http_max_connections"])]
    try:
        time.sleep(0.1)  # accepted: the server holds them all
        assert today_answers(port)  # over the cap: the oldest idle one made room
        assert closed_by_server(held[0], within_s=0.4)  # before its first-byte timeout
    finally:
        for sock in held:
            sock.close()


@pytest.fixture
def slow_body_port(settings: Settings) -> Iterator[int]:
    """Bodies may take 10 s: a started POST keeps its connection busy through a test."""
    bounds = LIMITS | {"http_body_timeout_s": 10.0}
    with serving(settings.model_copy(update=bounds)) as port:
        yield port


def test_connections_all_busy_over_the_cap_are_answered_503(slow_body_port):
    port = slow_body_port
    held = [connect(port) for _ in range(LIMITS["http_max_connections"])]
    try:
        for sock in held:
            start_slow_post(sock)
        time.sleep(0.2)
        answer = httpx.get(f"http://127.0.0.1:{port}/regime/today", timeout=10)
        assert answer.status_code == 503
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "DEEPREGIME_HTTP_MAX_CONNECTIONS" in answer.json()["detail"]
        assert answer.headers["retry-after"] == "1"
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while not today_answers(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert today_answers(port)


def test_one_address_over_its_cap_is_answered_429_and_others_are_served(slow_body_port):
    port = slow_body_port
    held = [connect(port, OTHER_CLIENT) for _ in range(LIMITS["http_max_connections_per_client"])]
    try:
        for sock in held:
            start_slow_post(sock)
        time.sleep(0.2)
        local = httpx.HTTPTransport(local_address=OTHER_CLIENT)
        with httpx.Client(transport=local, timeout=10) as same_address:
            answer = same_address.get(f"http://127.0.0.1:{port}/regime/today")
        assert answer.status_code == 429
        assert "DEEPREGIME_HTTP_MAX_CONNECTIONS_PER_CLIENT" in answer.json()["detail"]
        assert today_answers(port)  # another address is not affected
    finally:
        for sock in held:
            sock.close()


def test_idle_connections_of_one_address_make_room_for_its_requests(port):
    held = [connect(port, OTHER_CLIENT) for _ in range(LIMITS["http_max_connections_per_client"])]
    try:
        time.sleep(0.1)
        local = httpx.HTTPTransport(local_address=OTHER_CLIENT)
        with httpx.Client(transport=local, timeout=10) as same_address:
            assert same_address.get(f"http://127.0.0.1:{port}/regime/today").status_code == 200
        assert closed_by_server(held[0], within_s=0.4)
    finally:
        for sock in held:
            sock.close()
