"""The refresh lock never outlives its holder.

- A holder killed with SIGKILL: the lock is free at once (kernel / server release).
- The database connection cut mid-refresh (PostgreSQL, through a TCP proxy):
  the server drops the lock with the connection, and the next acquire succeeds
  as soon as the database is back.
- Processes racing for the lock: exactly one wins.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from store.db import make_engine
from store.locks import REFRESH_LOCK, LockHeldError, acquire, current_lock, held_lock
from tests.app.tcp_proxy import TcpProxy

# Holds the lock as argv[2] once "go" arrives on stdin (so racers start together);
# prints "won" and keeps it until stdin closes, or prints "lost".
HOLDER = """
import sys
from store.db import make_engine
from store.locks import LockHeldError, held_lock

engine = make_engine(sys.argv[1])
engine.connect().close()  # connected before the start, so racers start level
print("ready", flush=True)
sys.stdin.readline()
try:
    with held_lock(engine, "refresh", holder=sys.argv[2]):
        print("won", flush=True)
        sys.stdin.readline()
except LockHeldError:
    print("lost", flush=True)
"""


def start_holders(url: str, *holders: str) -> list[subprocess.Popen[str]]:
    """One child per holder, started together; returns once each is ready."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER, url, holder],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for holder in holders
    ]
    assert [answer(child) for child in children] == ["ready"] * len(children)
    return children


def say(child: subprocess.Popen[str], line: str) -> None:
    assert child.stdin is not None
    child.stdin.write(line + "\n")
    child.stdin.flush()


def answer(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    return child.stdout.readline().strip()


def test_a_holder_killed_with_sigkill_leaves_the_lock_free(database_url):
    engine = make_engine(database_url)
    (child,) = start_holders(database_url, "doomed:1")
    try:
        say(child, "go")
        assert answer(child) == "won"
        assert current_lock(engine, REFRESH_LOCK)[0] == "doomed:1"
        with pytest.raises(LockHeldError, match="held by doomed:1"):
            acquire(engine, REFRESH_LOCK, "next:2")
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        started = time.monotonic()
        # The server notices the closed socket within milliseconds; the kernel at once.
        with held_lock(engine, REFRESH_LOCK, holder="next:2", wait_s=5):
            assert current_lock(engine, REFRESH_LOCK)[0] == "next:2"
        assert time.monotonic() - started < 3
        assert current_lock(engine, REFRESH_LOCK) is None
    finally:
        child.kill()
        child.wait(10)
        engine.dispose()


def test_processes_racing_for_the_lock_exactly_one_wins(database_url):
    racers = start_holders(database_url, *(f"racer:{i}" for i in range(3)))
    try:
        for child in racers:
            say(child, "go")
        answers = [answer(child) for child in racers]
        assert sorted(answers) == ["lost", "lost", "won"]
        for child in racers:
            child.communicate("done\n", timeout=10)  # the winner lets go; the others have left
            assert child.returncode == 0
    finally:
        for child in racers:
            child.kill()
            child.wait(10)
    engine = make_engine(database_url)
    assert current_lock(engine, REFRESH_LOCK) is None
    engine.dispose()


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_lock_cut_off_with_its_connection_is_free_when_the_database_returns(database_url):
    target = make_url(database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).start()
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    through_proxy, direct = make_engine(proxied, timeout_s=1), make_engine(database_url)
    try:
        with pytest.raises(OperationalError):
            with held_lock(through_proxy, REFRESH_LOCK, holder="cut-off:1"):
                assert current_lock(direct, REFRESH_LOCK)[0] == "cut-off:1"
                proxy.stop()  # the database goes away mid-refresh
                with through_proxy.connect() as connection:
                    connection.execute(text("SELECT 1"))
        # The server dropped the lock with the connection: nothing to wait out.
        deadline = time.monotonic() + 3
        while current_lock(direct, REFRESH_LOCK) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert current_lock(direct, REFRESH_LOCK) is None
        proxy.start()  # same port: the database is back
        started = time.monotonic()
        with held_lock(through_proxy, REFRESH_LOCK, holder="next:2"):
            assert current_lock(direct, REFRESH_LOCK)[0] == "next:2"
        assert time.monotonic() - started < 3
        assert current_lock(direct, REFRESH_LOCK) is None
    finally:
        proxy.stop()
        through_proxy.dispose()
        direct.dispose()
