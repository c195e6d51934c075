"""Sweeps as jobs on both databases: the use cases, the API (202, progress, pages,
cancel, 422s) and a restart, on made-up market data loaded through the daily cycle."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from app.settings import Settings
from core.errors import DataValidationError
from operations.sweeps import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    ClusterSettings,
    claim,
    cluster_client,
    create_sweep,
    execute_sweep,
    load_sweep,
    recover_stale,
    request_cancel,
    rerun,
    sweep_results,
)
from research.grid import SweepRequest
from store.db import make_engine
from store.tables import sweeps
from tests.app.conftest import API_KEY, admin, running

BODY = {
    "name": "small",
    "grid": {
        "base": {"credit": {"window": 60}},
        "trend": {"windows": [20, 50], "thresholds": [1.0, 0.99]},
        "volatility": {"thresholds": [1.0, 1.05]},
        "hysteresis": [{}, {"confirm_days": 3}],
        "cost_bps": [0, 5],
    },
    "walk_forward": {"first_in_sample_years": 2},
    "pbo_blocks": 6,
}
SIZE = 2 * 2 * 2 * 2 * 2


def _settings(url: str, tmp_path: Path, **changes) -> Settings:
    return Settings(
        database_url=url,
        model_dir=tmp_path / "no-models",
        dask_processes=False,
        dask_workers=1,
        sweep_poll_s=0.2,
        api_key=API_KEY,
        _env_file=None,
        **changes,
    )


def test_a_sweep_job_runs_pages_and_is_cancelled_or_rerun(market_url: str) -> None:
    engine = make_engine(market_url)
    try:
        request = SweepRequest.model_validate(BODY)
        created = create_sweep(engine, request=request, max_variants=1000)
        assert created.status == QUEUED and created.variants == SIZE
        running_sweep = claim(engine, scheduler="here")
        assert running_sweep is not None and running_sweep.status == RUNNING
        assert claim(engine, scheduler="elsewhere") is None  # taken once only
        seen = []
        done = execute_sweep(
            engine,
            running_sweep,
            client=None,
            chunk_variants=7,
            progress=lambda n, total: seen.append((n, total)),
        )
        assert done.status == DONE, done.message
        assert seen[-1] == (SIZE, SIZE) and len(seen) == 5  # ceil(32 / 7) chunks
        summary = done.summary
        assert summary["variants"] == SIZE
        assert 0.0 <= summary["overfitting"]["pbo"] <= 1.0
        assert summary["overfitting"]["splits"] == 20  # C(6, 3)
        assert 0.0 <= summary["chosen"]["deflated_sharpe"] <= 1.0
        windows = summary["walk_forward"]["windows"]
        assert [w["out_of_sample_period"][0][:4] for w in windows] == ["2012", "2013", "2014"]
        with engine.connect() as connection:
            _, first = sweep_results(connection, sweep_id=done.id, page=1, page_size=10)
            _, last = sweep_results(connection, sweep_id=done.id, page=4, page_size=10)
        assert [row["rank"] for row in first] == list(range(1, 11))
        assert [row["rank"] for row in last] == [31, 32]
        assert first[0]["variant"] == summary["chosen"]["variant"]
        objectives = [row["objective"] for row in first]
        assert objectives == sorted(objectives, reverse=True)

        queued = create_sweep(engine, request=request, max_variants=1000)
        assert request_cancel(engine, sweep_id=queued.id).status == CANCELLED
        assert rerun(engine, sweep_id=queued.id).status == QUEUED
    finally:
        engine.dispose()


def test_too_large_a_grid_is_refused_naming_the_field(engine) -> None:
    request = SweepRequest.model_validate(BODY)
    with pytest.raises(DataValidationError) as refused:
        create_sweep(engine, request=request, max_variants=SIZE - 1)
    assert refused.value.field == "body.grid" and f"{SIZE} variants" in str(refused.value)


def test_a_sweep_whose_process_stopped_is_queued_again_then_failed(engine) -> None:
    request = SweepRequest.model_validate(BODY)
    start = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)
    sweep = create_sweep(engine, request=request, max_variants=1000, clock=lambda: start)
    claim(engine, scheduler="a", clock=lambda: start)
    # A heartbeat 30 s old is alive; 120 s old is a stopped process.
    assert (
        recover_stale(
            engine, stale_s=60, max_attempts=2, clock=lambda: start + dt.timedelta(seconds=30)
        )
        == []
    )
    later = start + dt.timedelta(seconds=120)
    assert recover_stale(engine, stale_s=60, max_attempts=2, clock=lambda: later) == [sweep.id]
    with engine.connect() as connection:
        again = load_sweep(connection, sweep_id=sweep.id)
    assert again.status == QUEUED and "stopped" in again.message
    claim(engine, scheduler="b", clock=lambda: later)  # second attempt, also dies
    much_later = later + dt.timedelta(seconds=120)
    recover_stale(engine, stale_s=60, max_attempts=2, clock=lambda: much_later)
    with engine.connect() as connection:
        failed = load_sweep(connection, sweep_id=sweep.id)
    assert failed.status == FAILED and "2 attempt(s)" in failed.message


def _wait_done(client, sweep_id: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(f"/sweeps/{sweep_id}").json()
        if body["status"] not in (QUEUED, RUNNING):
            return body
        time.sleep(0.2)
    raise AssertionError(f"sweep {sweep_id} still {body['status']} after {timeout_s} s")


def test_the_api_runs_a_sweep_as_a_job(market_url: str, tmp_path: Path) -> None:
    with running(
        _settings(market_url, tmp_path, sweep_max_variants=100), headers=admin()
    ) as client:
        posted = client.post("/sweeps", json=BODY)
        assert posted.status_code == 202, posted.text
        sweep_id = posted.json()["id"]
        assert posted.headers["Location"] == f"/sweeps/{sweep_id}"
        body = _wait_done(client, sweep_id)
        assert body["status"] == DONE, body["message"]
        assert body["progress"] == 1.0 and body["done_variants"] == SIZE
        assert body["summary"]["overfitting"]["pbo"] is not None
        page = client.get(f"/sweeps/{sweep_id}/results", params={"page": 2, "page_size": 20})
        assert page.status_code == 200
        assert page.json()["pages"] == 2 and len(page.json()["variants"]) == SIZE - 20
        listed = client.get("/sweeps").json()
        assert listed["total"] == 1 and listed["items"][0]["id"] == sweep_id
        assert listed["items"][0]["summary"] is None  # the list stays small
        # Bad requests: 422 naming the field; unknown ids 404.
        bad = client.post("/sweeps", json={**BODY, "grid": {"trend": {"windows": [1]}}})
        assert bad.status_code == 422 and "grid.trend" in bad.json()["detail"]
        big = {**BODY, "grid": {**BODY["grid"], "cost_bps": [0, 1, 2, 3, 4, 5, 6]}}  # 112 > 100
        too_large = client.post("/sweeps", json=big)
        assert too_large.status_code == 422
        assert too_large.json()["errors"][0]["field"] == "body.grid"
        over = client.get(f"/sweeps/{sweep_id}/results", params={"page_size": 10_000})
        assert over.status_code == 422 and over.json()["errors"][0]["field"] == "query.page_size"
        assert client.get("/sweeps/nope").status_code == 404
        assert client.post("/sweeps/nope/cancel").status_code == 404
        assert client.post(f"/sweeps/{sweep_id}/rerun").status_code == 409


def test_a_sweep_interrupted_by_a_restart_is_resumed(market_url: str, tmp_path: Path) -> None:
    engine = make_engine(market_url)
    try:
        sweep = create_sweep(engine, request=SweepRequest.model_validate(BODY), max_variants=100)
        claim(engine, scheduler="a process that was killed")
        with engine.begin() as connection:  # its last heartbeat, long ago
            connection.execute(
                update(sweeps)
                .where(sweeps.c.id == sweep.id)
                .values(heartbeat_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), done_variants=7)
            )
        with running(_settings(market_url, tmp_path), headers=admin()) as client:
            body = _wait_done(client, sweep.id)
            results = client.get(f"/sweeps/{sweep.id}/results").json()
            queued = client.post("/sweeps", json=BODY).json()
            cancelled = client.post(f"/sweeps/{queued['id']}/cancel").json()
        assert body["status"] == DONE and body["attempts"] == 2
        assert len(results["variants"]) == SIZE
        assert cancelled["status"] in (CANCELLED, RUNNING, DONE)
    finally:
        engine.dispose()


def test_the_local_cluster_runs_tasks_below_the_serving_priority() -> None:
    cluster = ClusterSettings(scheduler=None, workers=1, processes=True, chunk_variants=1, nice=5)
    with cluster_client(cluster) as client:
        worker_nice = client.submit(os.nice, 0, pure=False).result()
    assert worker_nice == min(19, os.nice(0) + 5)
