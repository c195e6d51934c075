"""Admin routes: the API key, the single-refresh lock, and what a refresh changes."""

from __future__ import annotations

import datetime as dt

import pytest

from app.settings import Settings
from operations.rule_sets import built_in
from store.db import make_engine
from store.locks import REFRESH_LOCK, acquire, current_lock, release
from tests.app.conftest import admin, running, write_csv_folder
from tests.app.model_factory import write_tiny_model
from tests.app.test_regime_routes import appended

LATER = dt.datetime(2012, 4, 20, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), (admin("wrong-key-but-long-enough"), 403), (admin(""), 401)],
    ids=["no-key", "wrong-key", "empty-key"],
)
def test_admin_routes_need_the_right_key(client, headers, status):
    for path in ("/admin/refresh", "/admin/models/2012-01-01-abcdef/activate"):
        response = client.post(path, headers=headers)
        assert response.status_code == status, path
        assert response.headers["content-type"] == "application/problem+json"
        assert "X-API-Key" in response.json()["detail"]


def test_every_key_is_refused_when_none_is_configured(settings):
    closed = Settings(**{**settings.model_dump(), "api_key": None}, _env_file=None)
    with running(closed) as client:
        response = client.post("/admin/refresh", headers=admin())
    assert response.status_code == 403
    assert "no API key is configured" in response.json()["detail"]


def test_refresh_ingests_new_days_and_drops_the_cached_answer(settings, market, csv_folder):
    with running(settings, now=LATER) as client:
        assert client.get("/regime/today").json()["as_of"] == "2012-04-05"  # now cached
        write_csv_folder(csv_folder, appended(market, 3))
        report = client.post("/admin/refresh", headers=admin())
        assert report.status_code == 200, report.text
        body = report.json()
        assert body["source"] == "csv" and body["rejected"] == []
        assert any(line.startswith("SPY") and "inserted 3" in line for line in body["ingested"])
        steps = {step["name"]: step["detail"] for step in body["steps"]}
        assert steps["features"].startswith("features: 3 days (2012-04-09 .. 2012-04-11)")
        assert steps["model"].startswith("skipped")
        assert body["status"] == "published"
        published = {(p["day"], p["policy"]) for p in body["publications"]}
        # The default market's answers, and one per rule set published by name.
        by_name = {("2012-04-11", f"rule_set:{item.name}") for item in built_in()[1:]}
        assert published == {("2012-04-11", "rules"), ("2012-04-11", "ensemble")} | by_name
        today = client.get("/regime/today").json()
        assert (today["as_of"], today["regime"]) == ("2012-04-11", "risk-on")
        assert today["publication_id"] == body["publications"][0]["id"]
        again = client.post("/admin/refresh", headers=admin()).json()
        assert (again["status"], again["publications"]) == ("unchanged", [])
    engine = make_engine(settings.database_url)
    assert current_lock(engine, REFRESH_LOCK) is None  # released after the refresh
    engine.dispose()


def test_only_one_refresh_at_a_time(settings, models_dir):
    version = write_tiny_model(models_dir)
    engine = make_engine(settings.database_url)
    try:
        acquire(engine, REFRESH_LOCK, "other-host:1234")
        with running(settings) as client:
            busy = client.post("/admin/refresh", headers=admin())
            assert busy.status_code == 409
            assert "held by other-host:1234" in busy.json()["detail"]
            activation = client.post(f"/admin/models/{version}/activate", headers=admin())
            assert activation.status_code == 409
        release(engine, REFRESH_LOCK, "other-host:1234")
        # A holder that dies releases with its connection or process: see
        # tests/faults/test_locks_outages.py.
        with running(settings) as client:
            assert client.post("/admin/refresh", headers=admin()).status_code == 200
        assert current_lock(engine, REFRESH_LOCK) is None
    finally:
        engine.dispose()
