"""Hostile and malformed requests: each gets a clear problem and writes nothing.

Every row of the table is one request, the status it must get, and a fragment
its problem detail must contain; after each, the row counts of every table the
service writes are compared with those before.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from store.db import make_engine
from store.tables import backtest_runs, features, model_activations, prices, regimes
from tests.app.conftest import API_KEY, admin, running

WRITTEN_TABLES = (prices, features, regimes, backtest_runs, model_activations)
RULES = {"kind": "rules"}

CASES = [
    # (id, method, path, json body, headers, status, fragment of the detail)
    (
        "sql in a date",
        "GET",
        "/regimes?start=2012-01-01';DROP TABLE regimes;--",
        None,
        {},
        422,
        "query.start",
    ),
    ("sql in a path date", "GET", "/regime/2012-01-01' OR '1'='1", None, {}, 422, "path.day"),
    ("huge page size", "GET", "/regimes?limit=1000000000", None, {}, 422, "query.limit"),
    ("negative page size", "GET", "/regimes?limit=-1", None, {}, 422, "query.limit"),
    ("impossible date", "GET", "/regime/2012-02-30", None, {}, 422, "path.day"),
    ("start after end", "GET", "/regimes?start=2012-03-01&end=2012-01-01", None, {}, 422, "after"),
    ("unknown policy", "GET", "/regime/today?policy=all-in", None, {}, 422, "query.policy"),
    # An encoded slash becomes a real one: no route matches, nothing is opened.
    (
        "path-like model version",
        "GET",
        "/models/..%2F..%2Fetc%2Fpasswd",
        None,
        {},
        404,
        "Not Found",
    ),
    ("dotted model version", "GET", "/models/..passwd", None, {}, 422, "not a valid name"),
    (
        "path-like activation",
        "POST",
        "/admin/models/..%2Fetc%2Fpasswd/activate",
        None,
        admin(),
        404,
        "Not Found",
    ),
    (
        "dotted activation",
        "POST",
        "/admin/models/..passwd/activate",
        None,
        admin(),
        422,
        "not a valid name",
    ),
    ("admin without key", "POST", "/admin/refresh", None, {}, 401, "X-API-Key"),
    (
        "admin with wrong key",
        "POST",
        "/admin/refresh",
        None,
        {"X-API-Key": API_KEY[:-1] + "x"},
        403,
        "not valid",
    ),
    (
        "admin with sql key",
        "POST",
        "/admin/refresh",
        None,
        {"X-API-Key": "' OR 1=1 --"},
        403,
        "not valid",
    ),
    (
        "unknown strategy",
        "POST",
        "/backtest",
        {"strategies": [{"kind": "martingale"}]},
        {},
        422,
        "body.strategies.0",
    ),
    (
        "rule set never registered",
        "POST",
        "/backtest",
        {"strategies": [{"kind": "vol_target", "base": {"kind": "rule_set", "rule_set": "x'--"}}]},
        {},
        422,
        "body.strategies[0].base.rule_set",
    ),
    (
        "defensive asset not stored",
        "POST",
        "/backtest",
        {"strategies": [{"kind": "allocation", "defensive": "NOPE"}]},
        {},
        422,
        "body.strategies[0].defensive",
    ),
    (
        "threshold of the wrong type",
        "POST",
        "/backtest",
        {"strategies": [{"kind": "rules", "trend": {"threshold": "high"}}]},
        {},
        422,
        "threshold",
    ),
    (
        "absurd leverage",
        "POST",
        "/backtest",
        {"strategies": [{"kind": "model", "calm_exposure": 100}]},
        {},
        422,
        "calm_exposure",
    ),
    ("look-ahead lag", "POST", "/backtest", {"strategies": [RULES], "lag": 0}, {}, 422, "lag"),
    (
        "start after end",
        "POST",
        "/backtest",
        {"strategies": [RULES], "start": "2012-03-01", "end": "2012-01-01"},
        {},
        422,
        "start",
    ),
    (
        "period before any data",
        "POST",
        "/backtest",
        {"strategies": [RULES], "start": "1990-01-01", "end": "1990-12-31"},
        {},
        422,
        "1990",
    ),
    ("no strategies", "POST", "/backtest", {"strategies": []}, {}, 422, "body.strategies"),
    (
        "sql in a strategy name",
        "POST",
        "/backtest",
        {
            "strategies": [
                {"kind": "rules", "name": "x'); DROP TABLE backtest_runs;--", "preset": "nope"}
            ]
        },
        {},
        422,
        "preset",
    ),
    (
        "unknown field",
        "POST",
        "/backtest",
        {"strategies": [RULES], "leverage": 10},
        {},
        422,
        "body.leverage",
    ),
    ("oversized body", "POST", "/backtest", {"strategies": [RULES] * 20_000}, {}, 413, "bytes"),
    (
        "not json",
        "POST",
        "/backtest",
        "strategies=all",
        {"Content-Type": "application/json"},
        422,
        "body",
    ),
]


def row_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in WRITTEN_TABLES
            }
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "headers", "status", "fragment"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_hostile_request_gets_a_named_problem_and_writes_nothing(
    settings, case, method, path, body, headers, status, fragment
):
    before = row_counts(settings.database_url)
    with running(settings) as client:
        if isinstance(body, str):
            response = client.request(method, path, content=body, headers=headers)
        else:
            response = client.request(method, path, json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert fragment in problem["detail"] + str(problem.get("errors", ""))
    assert "Traceback" not in response.text
    assert row_counts(settings.database_url) == before
    with running(settings) as client:  # the schema survived whatever the request held
        assert client.get("/regime/today").status_code == 200


def test_the_api_key_is_compared_in_constant_time(settings, monkeypatch):
    import app.deps

    compared = []

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return False

    monkeypatch.setattr(app.deps.hmac, "compare_digest", spy)
    with running(settings) as client:
        assert client.post("/admin/refresh", headers={"X-API-Key": "guess"}).status_code == 403
    assert compared == [(b"guess", API_KEY.encode())]
