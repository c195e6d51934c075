"""Interactive docs without internet, and an example for every request body and the
main responses, each valid against its schema."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from app.openapi import examples
from app.schemas import ModelList, Readiness, StoredBacktest
from backtest.schemas import BacktestRequest, BacktestResult
from operations.answers import RegimePage, RegimeReport

MAIN_RESPONSES: list[tuple[str, str, str, type[BaseModel]]] = [
    ("get", "/regime/today", "200", RegimeReport),
    ("get", "/regime/{day}", "200", RegimeReport),
    ("get", "/regimes", "200", RegimePage),
    ("post", "/backtest", "201", BacktestResult),
    ("get", "/backtest/{run_id}", "200", StoredBacktest),
    ("get", "/ready", "200", Readiness),
    ("get", "/models", "200", ModelList),
]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_the_app(client, page):
    html = client.get(page).text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 0
    assert "googleapis" not in html and "cdn." not in html


def test_the_packaged_swagger_ui_bundle_is_served(client):
    bundle = client.get("/docs/static/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert "SwaggerUIBundle" in bundle.text[:5000] or "SwaggerUIBundle" in bundle.text
    assert client.get("/docs/static/redoc.standalone.js").status_code == 200


def test_every_request_body_has_an_example_that_validates(client):
    schema = client.get("/openapi.json").json()
    bodies = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if "requestBody" not in operation:
                continue
            bodies += 1
            content = operation["requestBody"]["content"]["application/json"]
            has_example = "example" in content or "examples" in content
            component = content["schema"].get("$ref", "").rsplit("/", 1)[-1]
            component_examples = schema["components"]["schemas"].get(component, {})
            assert has_example or "examples" in component_examples, f"{method} {path}"
    assert bodies >= 2
    BacktestRequest.model_validate(examples()["POST /backtest request"])


@pytest.mark.parametrize(("method", "path", "code", "model"), MAIN_RESPONSES)
def test_main_responses_carry_a_valid_example(client, method, path, code, model):
    operation = client.get("/openapi.json").json()["paths"][path][method]
    example = operation["responses"][code]["content"]["application/json"]["example"]
    model.model_validate(example)
