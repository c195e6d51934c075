"""One vocabulary: the ledger's policy names work as queries on every route that takes
a policy, and a query parameter a route does not know is refused, naming it."""

from __future__ import annotations

import pytest

from tests.app.conftest import LAST_DAY, admin, running
from tests.app.model_factory import write_tiny_model


@pytest.fixture
def version(models_dir):
    return write_tiny_model(models_dir)


def test_the_ledgers_policy_names_are_queries_everywhere(settings, version):
    with running(settings) as client:
        assert client.post(f"/admin/models/{version}/activate", headers=admin()).status_code == 200
        day = LAST_DAY.isoformat()
        for ledger_name, old_form in (
            ("model:filter", {"policy": "model", "mapping": "filter"}),
            ("model:leveraged", {"policy": "model", "mapping": "leveraged"}),
        ):
            named = {"policy": ledger_name}
            today = client.get("/regime/today", params=named)
            assert today.status_code == 200, today.text
            assert today.json() == client.get("/regime/today", params=old_form).json()
            assert today.json()["mapping"] == ledger_name.split(":")[1]
            on_day = client.get(f"/regime/{day}", params=named)
            assert on_day.json() == client.get(f"/regime/{day}", params=old_form).json()
            page = client.get("/regimes", params={**named, "latest": 5})
            assert page.status_code == 200, page.text
            assert page.json() == client.get("/regimes", params={**old_form, "latest": 5}).json()
            # The ledger calls the answer by the same name.
            published = client.get("/publications", params=named).json()["items"]
            assert published and {item["policy"] for item in published} == {ledger_name}

        for params, field in (
            ({"policy": "model:filter", "mapping": "leveraged"}, "query.mapping"),
            ({"policy": "rules:filter"}, "query.policy"),
            ({"policy": "model:x"}, "query.policy"),
        ):
            for path in ("/regime/today", f"/regime/{day}", "/regimes"):
                refused = client.get(path, params=params)
                assert refused.status_code == 422, (path, params, refused.text)
                assert refused.json()["errors"][0]["field"] == field


def test_unknown_query_parameters_are_refused_on_every_route(client):
    """Every GET route of the OpenAPI document, asked with a parameter it does not
    declare, answers 422 naming it, never its usual answer."""
    paths = client.get("/openapi.json").json()["paths"]
    day = LAST_DAY.isoformat()
    checked = []
    for template, operations in paths.items():
        if "get" not in operations:
            continue
        path = template.replace("{day}", day)
        for name in ("version", "id", "name", "run_id", "sweep_id", "report_id", "subscription_id"):
            path = path.replace("{" + name + "}", "x")
        answer = client.get(path, params={"asset": "QQQ"})
        assert answer.status_code == 422, (template, answer.status_code, answer.text[:200])
        assert answer.headers["content-type"] == "application/problem+json"
        body = answer.json()
        assert "'asset'" in body["detail"] and body["errors"][0]["field"] == "query.asset"
        checked.append(template)
    assert {"/regime/today", "/regime/{day}", "/regimes", "/publications", "/health"} <= set(
        checked
    )
    # Declared parameters still pass, on the hot path too.
    assert client.get("/regime/today", params={"policy": "rules"}).status_code == 200
    assert client.get("/regimes", params={"latest": 3, "order": "desc"}).status_code == 200
