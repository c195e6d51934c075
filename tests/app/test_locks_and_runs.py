"""store.locks (the single-refresh lock) and store.backtest_runs, on SQLite and PostgreSQL.

Crashes, outages and processes racing for a lock are in tests/faults/test_locks_outages.py.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from store.backtest_runs import load_run, save_run
from store.db import make_engine
from store.locks import (
    LockHeldError,
    acquire,
    advisory_key,
    current_lock,
    held_lock,
    new_holder,
    release,
)
from store.repository import utcnow

NOW = dt.datetime(2024, 6, 3, 12, 0, tzinfo=dt.UTC)


def assert_recent(moment: dt.datetime) -> None:
    assert moment.tzinfo is not None
    assert abs(utcnow() - moment) < dt.timedelta(seconds=30)


def test_a_lock_is_held_by_one_holder_until_released(engine):
    assert current_lock(engine, "refresh") is None
    with held_lock(engine, "refresh", holder="host-a:1") as holder:
        assert holder == "host-a:1"
        held_by, since = current_lock(engine, "refresh")
        assert held_by == "host-a:1"
        assert_recent(since)
        with pytest.raises(LockHeldError, match=r"lock 'refresh' is held by host-a:1 since 20"):
            with held_lock(engine, "refresh", holder="host-b:2"):
                pytest.fail("two holders at once")
        with held_lock(engine, "other", holder="host-b:2"):  # names are independent
            assert current_lock(engine, "other")[0] == "host-b:2"
        assert current_lock(engine, "refresh")[0] == "host-a:1"  # the failed attempt took nothing
    assert current_lock(engine, "refresh") is None
    assert current_lock(engine, "other") is None


def test_lock_held_error_names_the_holder_and_time():
    error = LockHeldError("refresh", "host-a:1", NOW)
    assert str(error) == "lock 'refresh' is held by host-a:1 since 2024-06-03T12:00:00+00:00"
    assert (error.name, error.holder, error.acquired_at) == ("refresh", "host-a:1", NOW)


def test_acquire_and_release_pair_up_by_holder(engine):
    holder = acquire(engine, "refresh", "host-a:1")
    assert holder == "host-a:1"
    assert release(engine, "refresh", "host-b:2") is False  # not the holder: nothing released
    assert current_lock(engine, "refresh")[0] == "host-a:1"
    assert release(engine, "refresh", "host-a:1") is True
    assert release(engine, "refresh", "host-a:1") is False  # already released
    assert current_lock(engine, "refresh") is None
    generated = acquire(engine, "refresh")  # no holder given: a fresh one
    assert generated.count(":") == 2 and len(generated) <= 63
    assert release(engine, "refresh", generated) is True


def test_held_lock_releases_on_error(engine):
    with pytest.raises(ValueError, match="boom"):
        with held_lock(engine, "refresh", holder="me:1"):
            assert current_lock(engine, "refresh")[0] == "me:1"
            raise ValueError("boom")
    assert current_lock(engine, "refresh") is None


def test_stale_after_is_accepted_and_ignored(engine):
    with held_lock(engine, "refresh", stale_after=dt.timedelta(seconds=0)) as holder:
        assert current_lock(engine, "refresh")[0] == holder
        with pytest.raises(LockHeldError):
            with held_lock(engine, "refresh", stale_after=dt.timedelta(seconds=0)):
                pass


def test_wait_s_waits_for_the_holder_to_finish(engine):
    taken, finish = threading.Event(), threading.Event()

    def hold() -> None:
        with held_lock(engine, "refresh", holder="first:1"):
            taken.set()
            finish.wait(10)
            time.sleep(0.5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert taken.wait(10)
        started = time.monotonic()
        with pytest.raises(LockHeldError, match="held by first:1"):
            with held_lock(engine, "refresh", wait_s=0.4):
                pass
        assert 0.4 <= time.monotonic() - started < 3
        finish.set()
        with held_lock(engine, "refresh", holder="second:2", wait_s=10):
            assert current_lock(engine, "refresh")[0] == "second:2"
        assert time.monotonic() - started < 8
    finally:
        finish.set()
        thread.join(10)


def test_in_memory_sqlite_uses_a_lock_local_to_the_process():
    engine = make_engine("sqlite://")
    try:
        with held_lock(engine, "refresh", holder="me:1"):
            assert current_lock(engine, "refresh")[0] == "me:1"
            with pytest.raises(LockHeldError, match="held by me:1"):
                acquire(engine, "refresh", "me:2")
        assert current_lock(engine, "refresh") is None
    finally:
        engine.dispose()


def test_the_sqlite_lock_file_lies_beside_the_database(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with held_lock(engine, "refresh", holder="me:1"):
            assert '"holder": "me:1"' in (tmp_path / "store.db.refresh.lock").read_text()
        assert (tmp_path / "store.db.refresh.lock").read_text() == ""  # emptied, kept
    finally:
        engine.dispose()


def test_lock_names_and_keys():
    assert advisory_key("refresh") == advisory_key("refresh")
    assert advisory_key("refresh") != advisory_key("other")
    assert -(2**63) <= advisory_key("refresh") < 2**63
    assert new_holder() != new_holder()
    engine = make_engine("sqlite://")
    with pytest.raises(ValueError, match="lock name"):
        current_lock(engine, "../escape")
    engine.dispose()


def test_backtest_runs_round_trip(engine):
    request = {"strategies": [{"kind": "buy_and_hold"}], "start": "2020-01-02"}
    result = {"period": {"days": 3}, "values": [1.0, 1.01, None]}
    with engine.begin() as connection:
        saved = save_run(
            connection, request=request, result=result, duration_ms=12.5, created_at=NOW
        )
    with engine.connect() as connection:
        loaded = load_run(connection, run_id=saved.id)
        assert load_run(connection, run_id="00000000-0000-0000-0000-000000000000") is None
    assert loaded == saved
    assert (loaded.request, loaded.result, loaded.created_at) == (request, result, NOW)
