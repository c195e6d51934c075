"""Unknown query parameters are refused (422 naming them) on every route.

A client asking ``/regime/today?asset=QQQ`` must not get another answer than the one
it meant with a 200 and no hint. Each route's known names are what it declares
(its parameters and their dependencies', and the ``openapi_extra`` parameters of a
route that reads its query by hand), so the OpenAPI document and this check cannot
disagree. Requests without a query string cost nothing here; /regime/today's answers
from app.hot_path take no unknown parameter (those fall through to the route).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names


def declared_query_names(route: APIRoute) -> frozenset[str]:
    names = _query_names(route.dependant)
    for parameter in (route.openapi_extra or {}).get("parameters", []):
        if parameter.get("in") == "query":
            names.add(parameter["name"])
    return frozenset(names)


def reject_unknown_query(request: Request) -> None:
    """An app-wide dependency: 422 naming every query parameter the matched route does
    not declare (the route is known here, after routing)."""
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _KNOWN.get(id(route))
    if known is None:
        known = _KNOWN[id(route)] = declared_query_names(route)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"unknown parameter {listed} on {route.path} "
                    f"(accepted: {', '.join(sorted(known)) or 'none'})",
                }
                for name in unknown
            ]
        )


_KNOWN: dict[int, frozenset[str]] = {}
