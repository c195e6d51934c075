"""The OpenAPI document, with every error response documented as problem details.

FastAPI documents declared error responses as ``application/json`` and its own
422 with a body the service never sends. This rewrites each error response to
the ``application/problem+json`` body the handlers in app/problems.py return,
and adds the statuses any operation can answer: 422 (bad input), 500 (last
resort) and, for routes that read the database, 503.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

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


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _with_problem_schemas(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
