"""Dates and times in query strings and paths are ISO text on every route.

A route declaring ``dt.date`` or ``dt.datetime`` parameters would otherwise take
``?start=1325376000`` (Unix seconds) as a day, and a time whose offset pushes it
past year 9999 would fail deep inside the route. This app-wide dependency checks
the raw text of every such parameter the matched route declares (its own and its
dependencies', as app.query_names reads the names) with core.isodates, before the
route parses it, and answers 422 naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from core.isodates import iso_date, iso_datetime

Check = Callable[[Any], Any]


def _check_for(annotation: Any) -> Check | None:
    """The ISO check of a parameter typed ``date``/``datetime`` (or optional, or annotated)."""
    candidates = [annotation]
    while candidates:
        kind = candidates.pop()
        if kind is dt.datetime:
            return iso_datetime
        if kind is dt.date:
            return iso_date
        origin = typing.get_origin(kind)
        if origin is typing.Annotated:
            candidates.append(typing.get_args(kind)[0])
        elif origin in (typing.Union, types.UnionType):
            candidates.extend(typing.get_args(kind))
    return None


def _temporal(dependant: Dependant) -> list[tuple[str, str, Check]]:
    found = []
    for location, params in (("query", dependant.query_params), ("path", dependant.path_params)):
        for param in params:
            check = _check_for(param.field_info.annotation)
            if check is not None:
                found.append((location, param.alias, check))
    for dependency in dependant.dependencies:
        found.extend(_temporal(dependency))
    return found


def require_iso_dates(request: Request) -> None:
    """An app-wide dependency: 422 naming each date or time parameter that is not ISO text."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    checks = _CHECKS.get(id(route))
    if checks is None:
        checks = _CHECKS[id(route)] = _temporal(route.dependant)
    errors = []
    for location, name, check in checks:
        values = (
            request.query_params.getlist(name)
            if location == "query"
            else [request.path_params[name]]
            if name in request.path_params
            else []
        )
        for value in values:
            try:
                check(value)
            except ValueError as error:
                errors.append(
                    {
                        "type": "value_error",
                        "loc": (location, name),
                        "msg": str(error),
                        "input": value,
                    }
                )
    if errors:
        raise RequestValidationError(errors)


_CHECKS: dict[int, list[tuple[str, str, Check]]] = {}
