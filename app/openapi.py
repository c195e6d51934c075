"""The OpenAPI document and the interactive docs, which work without internet.

FastAPI documents declared error responses as ``application/json`` and its own
422 with a body the service never sends. This rewrites each error response to
the ``application/problem+json`` body the handlers in app/problems.py return,
and adds the statuses any operation can answer: 422 (bad input, a body that is
not JSON included), 500 (last resort) and, for routes that read the database, 503.
Creating operations carry OpenAPI ``links`` to the operations that read what
they created (``LINKS``).

Every request body and the main responses carry an example (app/openapi_examples.json,
real answers of the service on the shipped data; tests check each against its schema).

``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from
``/docs/static``, the files of the ``fastapi-offline`` package installed with the
service: no CDN, no web fonts.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.problems import PROBLEM_JSON
from app.schemas import Problem

# Routes whose own 503 body is not a problem (readiness reports its parts).
OWN_503 = {"/ready"}
NO_DATABASE = {"/health", "/metrics"}
GENERIC = {
    "422": "A bad parameter or body; the problem names the field.",
    "500": "Unexpected error; no internals are returned.",
    "503": "Database unreachable, no data yet, or the model part unavailable.",
}


def _with_problem_schemas(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("413", {"description": "The body is over the size bound."})
            for code, description in GENERIC.items():
                if code == "503" and path in NO_DATABASE:
                    continue
                responses.setdefault(code, {"description": description})
            for code, response in responses.items():
                if int(code) < 400 or (code == "503" and path in OWN_503):
                    continue
                response["content"] = {PROBLEM_JSON: {"schema": problem}}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


# OpenAPI links: where the id a creating operation answers is used next, so a client
# (or a fuzzer's stateful phase) can follow a stored run, sweep, subscription or rule
# set from its creation. (creating operation, status, parameter, where the value is,
# operations taking it as that path parameter)
LINKS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    (
        "POST /backtest",
        "201",
        "run_id",
        "$response.header.X-Backtest-Id",
        (
            "GET /backtest/{run_id}",
            "GET /backtest/{run_id}/report",
            "GET /backtest/{run_id}/figures/{figure}.{image_format}",
        ),
    ),
    (
        "POST /sweeps",
        "202",
        "sweep_id",
        "$response.body#/id",
        (
            "GET /sweeps/{sweep_id}",
            "GET /sweeps/{sweep_id}/results",
            "POST /sweeps/{sweep_id}/cancel",
            "POST /sweeps/{sweep_id}/rerun",
        ),
    ),
    (
        "POST /admin/webhooks",
        "201",
        "subscription_id",
        "$response.body#/id",
        (
            "GET /admin/webhooks/{subscription_id}",
            "GET /admin/webhooks/{subscription_id}/deliveries",
            "POST /admin/webhooks/{subscription_id}/test",
            "DELETE /admin/webhooks/{subscription_id}",
        ),
    ),
    ("POST /rule-sets", "201", "name", "$response.body#/name", ("GET /rule-sets/{name}",)),
)


def _with_links(schema: dict[str, Any]) -> dict[str, Any]:
    paths = schema.get("paths", {})

    def operation(label: str) -> dict[str, Any] | None:
        method, path = label.split(" ", 1)
        return paths.get(path, {}).get(method.lower())

    for source, status, parameter, value, targets in LINKS:
        created = operation(source)
        if created is None or status not in created.get("responses", {}):
            continue
        links = created["responses"][status].setdefault("links", {})
        for target in targets:
            found = operation(target)
            if found is None:
                continue
            links[found["operationId"]] = {
                "operationId": found["operationId"],
                "parameters": {parameter: value},
                "description": f"{target} of what this created.",
            }
    return schema


EXAMPLES_FILE = Path(__file__).resolve().parent / "openapi_examples.json"
DOCS_STATIC = "/docs/static"


@cache
def examples() -> dict[str, Any]:
    """Examples keyed ``"<METHOD> <path> <status>"`` (responses) or
    ``"<METHOD> <path> request"`` (bodies)."""
    loaded: dict[str, Any] = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
    return loaded


def _with_examples(schema: dict[str, Any]) -> dict[str, Any]:
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            key = f"{method.upper()} {path}"
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and f"{key} request" in examples():
                body["example"] = examples()[f"{key} request"]
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {}).get("application/json")
                if content is not None and f"{key} {code}" in examples():
                    content["example"] = examples()[f"{key} {code}"]
    return schema


def docs_assets() -> Path:
    """The folder of Swagger UI's and ReDoc's files inside the fastapi-offline package."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` served from packaged assets (create the app with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(DOCS_STATIC, StaticFiles(directory=docs_assets()), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_STATIC}/favicon.png",
            with_google_fonts=False,
        )


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _with_links(_with_examples(_with_problem_schemas(schema)))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
