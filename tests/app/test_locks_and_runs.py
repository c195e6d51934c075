"""store.locks (the single-refresh lock) and store.backtest_runs, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from store.backtest_runs import load_run, save_run
from store.locks import LockHeldError, acquire, current_lock, held_lock, release

NOW = dt.datetime(2024, 6, 3, 12, 0, tzinfo=dt.UTC)


def test_a_lock_is_held_by_one_holder_until_released(engine):
    acquire(engine, "refresh", "host-a:1", now=NOW)
    with pytest.raises(LockHeldError, match=r"held by host-a:1 since 2024-06-03T12:00:00"):
        acquire(engine, "refresh", "host-b:2", now=NOW + dt.timedelta(minutes=59))
    assert current_lock(engine, "refresh") == ("host-a:1", NOW)
    assert release(engine, "refresh", "host-b:2") is False  # not the holder: nothing released
    assert release(engine, "refresh", "host-a:1") is True
    acquire(engine, "refresh", "host-b:2", now=NOW)
    acquire(engine, "other", "host-a:1", now=NOW)  # names are independent
    assert current_lock(engine, "other") == ("host-a:1", NOW)


def test_a_stale_lock_is_taken_over(engine):
    acquire(engine, "refresh", "dead-host:1", now=NOW)
    later = NOW + dt.timedelta(hours=1, seconds=1)
    acquire(engine, "refresh", "host-b:2", now=later, stale_after=dt.timedelta(hours=1))
    assert current_lock(engine, "refresh") == ("host-b:2", later)
    # The dead holder coming back cannot release the new holder's lock.
    assert release(engine, "refresh", "dead-host:1") is False


def test_held_lock_releases_on_error(engine):
    with pytest.raises(ValueError, match="boom"):
        with held_lock(engine, "refresh", holder="me:1"):
            assert current_lock(engine, "refresh")[0] == "me:1"
            raise ValueError("boom")
    assert current_lock(engine, "refresh") is None


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
