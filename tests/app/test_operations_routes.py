"""/health, /ready, /metrics, problem details, CORS, and start-up against the schema."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient

from app.deps import get_model
from app.main import create_app
from app.settings import Settings
from app.startup import StartupError
from store.migrations import upgrade
from tests.app.conftest import running


def test_health_and_a_degraded_readiness_without_a_model(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    checks = body["checks"]
    assert {name: check["ok"] for name, check in checks.items()} == {
        "database": True,
        "migrations": True,
        "data": True,
        "model": False,
    }
    assert checks["data"]["detail"].startswith("as of 2012-04-05, 0 session(s) behind 2012-04-05")
    assert checks["model"]["required"] is False


def test_stale_data_degrades_readiness_and_not_ready_when_the_policy_needs_the_model(settings):
    with running(settings, now=dt.datetime(2012, 4, 13, 22, tzinfo=dt.UTC)) as client:
        ready = client.get("/ready")
        today = client.get("/regime/today").json()
        metrics = client.get("/metrics").text
    # Stale data is still served, flagged: readiness stays 200 and says degraded.
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    data = ready.json()["checks"]["data"]
    # Sessions 04-09 .. 04-13 closed since the data ends: 5 > 3.
    assert data["ok"] is False and data["required"] is False
    assert "5 session(s) behind 2012-04-13 (stale: stale beyond 3)" in data["detail"]
    assert today["stale"] is True and today["expected_as_of"] == "2012-04-13"
    assert "deepregime_data_lag_sessions 5.0" in metrics
    assert "deepregime_data_stale 1.0" in metrics

    model_first = Settings(**{**settings.model_dump(), "default_policy": "model"}, _env_file=None)
    with running(model_first) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["model"]["required"] is True
        assert client.get("/regime/today").status_code == 503


def test_metrics_count_requests_per_route_template_and_data_age(client):
    client.get("/regime/2012-04-04")
    client.get("/regime/2012-04-03")
    client.get("/no/such/path")
    text = client.get("/metrics").text
    assert (
        'deepregime_http_requests_total{method="GET",route="/regime/{day}",status="200"} 2.0'
        in text
    )
    assert 'route="<unmatched>",status="404"' in text
    assert re.search(r'duration_seconds_count\{method="GET",route="/regime/\{day\}"\} 2\.0', text)
    # Clock: Monday 2012-04-09; data: Thursday 2012-04-05 (Friday was a holiday).
    assert "deepregime_data_age_days 4.0" in text
    assert "deepregime_data_lag_sessions 0.0" in text
    assert "deepregime_data_stale 0.0" in text
    assert "deepregime_active_model{" not in text


def test_unexpected_errors_are_500_problems_without_internals(settings):
    def broken():
        raise RuntimeError("secret connection string postgres://user:pw@host")

    app = create_app(settings)
    app.dependency_overrides[get_model] = broken
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/models")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "internal error; the server log has the details",
    }


def test_cors_is_closed_unless_origins_are_configured(settings):
    preflight = {
        "Origin": "https://desk.example",
        "Access-Control-Request-Method": "GET",
    }
    with running(settings) as client:
        closed = client.options("/regime/today", headers=preflight)
        assert "access-control-allow-origin" not in closed.headers
    opened = Settings(
        **{**settings.model_dump(), "cors_origins": ["https://desk.example"]}, _env_file=None
    )
    with running(opened) as client:
        allowed = client.options("/regime/today", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://desk.example"
        other = client.options(
            "/regime/today", headers={**preflight, "Origin": "https://x.example"}
        )
        assert "access-control-allow-origin" not in other.headers


def test_openapi_documents_the_routes_with_examples(client):
    spec = client.get("/openapi.json").json()
    assert {
        "/regime/today",
        "/regime/{day}",
        "/regimes",
        "/backtest",
        "/backtest/{run_id}",
        "/models",
        "/models/{version}",
        "/health",
        "/ready",
        "/metrics",
        "/admin/refresh",
        "/admin/models/{version}/activate",
    } <= set(spec["paths"])
    today = {p["name"]: p for p in spec["paths"]["/regime/today"]["get"]["parameters"]}
    assert today["policy"]["schema"]["enum"] == [
        "rules",
        "model",
        "ensemble",
        "model:filter",
        "model:leveraged",
    ]
    assert today["mapping"]["schema"]["enum"] == ["filter", "leveraged"]
    report = spec["components"]["schemas"]["RegimeReport"]
    assert report["examples"][0]["rules"]["filters"]["volatility"]["state"] == "firing"


def test_a_schema_behind_the_migrations_refuses_to_start_unless_told_to_migrate(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0003")
    behind = Settings(database_url=url, model_dir=tmp_path / "models", _env_file=None)
    with pytest.raises(StartupError, match=r"revision 0003, behind the migrations' head"):
        with running(behind):
            pass
    migrating = Settings(**{**behind.model_dump(), "migrate_on_start": True}, _env_file=None)
    with running(migrating) as client:
        assert client.get("/ready").json()["checks"]["migrations"]["ok"] is True
        no_data = client.get("/regime/today")
        assert no_data.status_code == 503
        assert "no regimes computed yet" in no_data.json()["detail"]
