"""Bounded backtests: rate limit, idempotency, `store: false`, retention, saturation
(SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from app.rate_limit import RateLimited, RateLimiter
from app.settings import Settings
from store.backtest_runs import prune_runs, save_run
from store.db import make_engine
from store.tables import backtest_runs, rate_limit_buckets
from tests.app.conftest import admin, running

ONE = {"strategies": [{"kind": "buy_and_hold"}], "equity_sampling": "none"}
TWO = {"strategies": [{"kind": "rules"}], "equity_sampling": "none"}


def with_options(settings: Settings, **options: object) -> Settings:
    return settings.model_copy(update=options)


def stored_runs(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(backtest_runs)).scalar()
    finally:
        engine.dispose()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_token_bucket_refills_at_its_rate(engine):
    clock = FakeClock()
    limiter = RateLimiter(engine, per_minute=6, burst=2, clock=clock)  # a token every 10 s
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(RateLimited) as refused:
        limiter.take("a")
    assert refused.value.retry_after_s == 10
    limiter.take("b")  # another client has its own bucket
    clock.now += 4  # 0.4 of a token: still refused, 6 s to go
    with pytest.raises(RateLimited) as refused:
        limiter.take("a")
    assert refused.value.retry_after_s == 6
    clock.now += 6
    limiter.take("a")
    with pytest.raises(RateLimited):
        limiter.take("a")
    clock.now += 1000  # a long pause refills to the burst, not beyond
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(RateLimited):
        limiter.take("a")
    assert RateLimiter(engine, per_minute=0, burst=1).enabled is False


def test_the_limit_holds_across_processes_sharing_the_database(engine, database_url):
    # Two workers (two limiters on their own engines) and many threads racing: the
    # bucket of 5 gives exactly 5 tokens in all, never one per worker.
    from concurrent.futures import ThreadPoolExecutor

    clock = FakeClock()  # frozen: no refill during the race
    engines = [make_engine(database_url, timeout_s=10) for _ in range(2)]
    workers = [RateLimiter(e, per_minute=1, burst=5, clock=clock) for e in engines]

    def attempt(i: int) -> bool:
        try:
            workers[i % 2].take("shared-client")
            return True
        except RateLimited:
            return False

    try:
        with ThreadPoolExecutor(8) as pool:
            granted = list(pool.map(attempt, range(40)))
    finally:
        for e in engines:
            e.dispose()
    assert sum(granted) == 5


def test_full_buckets_are_forgotten(engine):
    clock = FakeClock()
    limiter = RateLimiter(engine, per_minute=60, burst=2, clock=clock)
    for client in ("a", "b", "c"):
        limiter.take(client)
    with engine.connect() as connection:
        assert (
            connection.execute(select(func.count()).select_from(rate_limit_buckets)).scalar() == 3
        )
    clock.now += 120  # every bucket full again: the next take deletes them
    limiter.take("d")
    with engine.connect() as connection:
        rows = connection.execute(select(rate_limit_buckets.c.client)).scalars().all()
    assert rows == ["d"]


def test_post_backtest_is_rate_limited_per_client(settings):
    limited = with_options(settings, backtest_rate_per_minute=1, backtest_rate_burst=2)
    with running(limited) as client:
        answers = [client.post("/backtest", json=ONE) for _ in range(3)]
        assert [a.status_code for a in answers] == [201, 201, 429]
        refused = answers[2]
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # A client identified by its API key has a bucket of its own; reads are not limited.
        assert client.post("/backtest", json=ONE, headers=admin()).status_code == 201
        assert client.get("/regime/today").status_code == 200


def test_a_retried_post_with_an_idempotency_key_neither_runs_nor_stores_twice(settings):
    with running(settings) as client:
        key = {"Idempotency-Key": "order-2024-0001"}
        first = client.post("/backtest", json=ONE, headers=key)
        retried = client.post("/backtest", json=ONE, headers=key)
        assert first.status_code == retried.status_code == 201, retried.text
        assert retried.headers["X-Backtest-Id"] == first.headers["X-Backtest-Id"]
        assert retried.headers["Idempotent-Replayed"] == "true"
        assert retried.json() == first.json()
        assert stored_runs(settings.database_url) == 1
        # The same key for another request is refused, naming the header.
        reused = client.post("/backtest", json=TWO, headers=key)
        assert reused.status_code == 422
        assert reused.json()["errors"][0]["field"] == "header.Idempotency-Key"
        assert stored_runs(settings.database_url) == 1
        # A new key is a new run.
        other = client.post("/backtest", json=ONE, headers={"Idempotency-Key": "order-2"})
        assert other.headers["X-Backtest-Id"] != first.headers["X-Backtest-Id"]
        assert stored_runs(settings.database_url) == 2


def test_store_false_answers_without_keeping_the_run(settings):
    with running(settings) as client:
        answer = client.post("/backtest", json={**ONE, "store": False})
        assert answer.status_code == 200, answer.text
        assert "Location" not in answer.headers
        assert answer.json()["strategies"][0]["name"] == "Buy & hold"
    assert stored_runs(settings.database_url) == 0


def test_stored_runs_are_kept_within_the_configured_count(settings):
    with running(with_options(settings, backtest_keep_runs=2)) as client:
        ids = [client.post("/backtest", json=ONE).headers["X-Backtest-Id"] for _ in range(3)]
        assert client.get(f"/backtest/{ids[0]}").status_code == 404
        assert all(client.get(f"/backtest/{i}").status_code == 200 for i in ids[1:])
    assert stored_runs(settings.database_url) == 2


def test_retention_drops_the_oldest_by_count_size_and_age(engine):
    now = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)

    def store(run_id: str, days_ago: float, size: int) -> None:
        with engine.begin() as connection:
            save_run(
                connection,
                request={},
                result={},
                duration_ms=1.0,
                run_id=run_id,
                created_at=now - dt.timedelta(days=days_ago),
                size_bytes=size,
            )

    def left() -> list[str]:
        with engine.connect() as connection:
            rows = connection.execute(select(backtest_runs.c.id).order_by(backtest_runs.c.id))
            return [row.id for row in rows]

    for number, days_ago in enumerate([40, 5, 4, 3, 2, 1]):
        store(f"run-{number}", days_ago, 100)

    def prune(**bounds: object) -> int:
        options = {"keep_runs": 100, "keep_bytes": 10_000, "older_than": now - dt.timedelta(30)}
        with engine.begin() as connection:
            return prune_runs(connection, **{**options, **bounds})  # type: ignore[arg-type]

    assert prune() == 1  # 40 days old
    assert left() == ["run-1", "run-2", "run-3", "run-4", "run-5"]
    assert prune(keep_runs=4) == 1  # the oldest of five
    assert left() == ["run-2", "run-3", "run-4", "run-5"]
    assert prune(keep_bytes=250) == 2  # 100 bytes each: the newest two fit
    assert left() == ["run-4", "run-5"]
    store("run-big", 0, 5_000)
    assert prune(keep_bytes=1_000) == 2  # the newest stays even over the bound alone
    assert left() == ["run-big"]


def test_saturated_research_answers_503_with_retry_after(settings):
    with running(with_options(settings, research_processes=1, research_queue=0)) as client:
        pool = client.app.state.service.research
        pool.busy = pool.capacity  # every slot taken
        try:
            backtest = client.post("/backtest", json=ONE)
            page = client.get("/regimes")
        finally:
            pool.busy = 0
        for answer in (backtest, page):
            assert answer.status_code == 503
            assert int(answer.headers["retry-after"]) >= 1
        assert client.get("/regime/today").status_code == 200
        assert client.post("/backtest", json=ONE).status_code == 201
