"""The database goes away: /health stays up, /ready says why, data routes answer 503
quickly, and the service recovers by itself when the database returns."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.engine import make_url

from app.settings import Settings
from tests.app.conftest import running
from tests.app.tcp_proxy import TcpProxy

CLOSED_PORT_URL = "postgresql+psycopg://postgres@127.0.0.1:1/deepregime"


def timed_get(client, path: str, **options):
    started = time.perf_counter()
    response = client.get(path, **options)
    return response, time.perf_counter() - started


def test_unreachable_database_at_start(tmp_path):
    settings = Settings(
        database_url=CLOSED_PORT_URL, model_dir=tmp_path / "models", db_timeout_s=1, _env_file=None
    )
    with running(settings) as client:
        assert client.get("/health").status_code == 200
        ready, _ = timed_get(client, "/ready")
        assert ready.status_code == 503
        database = ready.json()["checks"]["database"]
        assert database["ok"] is False and database["detail"].startswith("unreachable:")
        for path, params in (("/regime/today", {}), ("/regimes", {}), ("/regime/2012-04-05", {})):
            response, seconds = timed_get(client, path, params=params)
            assert response.status_code == 503, path
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["detail"] == "database unavailable; retry shortly"
            assert seconds < 2.0, path
        started = time.perf_counter()
        posted = client.post("/backtest", json={"strategies": [{"kind": "buy_and_hold"}]})
        assert posted.status_code == 503 and time.perf_counter() - started < 2.0
        assert "deepregime_data_age_days NaN" in client.get("/metrics").text


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_the_service_recovers_when_the_database_returns(settings):
    target = make_url(settings.database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).start()
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    through_proxy = Settings(
        **{**settings.model_dump(), "database_url": proxied, "cache_ttl_s": 0, "db_timeout_s": 1},
        _env_file=None,
    )
    try:
        with running(through_proxy) as client:
            assert client.get("/regime/today").status_code == 200
            proxy.stop()
            down, seconds = timed_get(client, "/regime/today")
            assert down.status_code == 503 and seconds < 2.0
            assert client.get("/health").status_code == 200
            assert client.get("/ready").status_code == 503
            proxy.start()  # same port: the database is back
            assert client.get("/regime/today").status_code == 200
            assert client.get("/ready").status_code == 200
    finally:
        proxy.stop()
