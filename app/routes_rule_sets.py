"""Rule sets by name: ``POST /rule-sets`` (admin), ``GET /rule-sets``, ``GET /rule-sets/{name}``.

Built-in rule sets (the presets, each market's default) and registered ones are
listed together. A registered rule set is immutable (operations.rule_sets):
registering the same definition again answers 200 with the stored one, another
definition under a taken name 409. Every rule set's regimes are served with
``?rule_set=NAME`` (or the version its answers carry) on the regime routes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Response

from app.deps import AdminDep, EngineDep
from app.problems import problem
from app.schemas import ADMIN_ERRORS, Problem
from core.errors import ConflictError
from operations import rule_sets
from operations.rule_sets import RegisteredInfo

router = APIRouter(tags=["rule sets"])

EXAMPLE = {
    "name": "trend-ema-vt",
    "filters": [
        {
            "name": "trend",
            "kind": "ema_ratio",
            "inputs": ["SPY"],
            "params": {"window": 200},
            "threshold": 1.0,
            "fires": "below",
        },
        {
            "name": "volatility",
            "kind": "level",
            "inputs": ["^VIX", "^VIX3M"],
            "threshold": 1.0,
            "fires": "above",
        },
    ],
    "hysteresis": {"confirm_days": 3, "min_dwell_days": 5},
    "vol_target": {"target_volatility": 0.12, "lookback_days": 20, "max_leverage": 1.0},
}


@router.post(
    "/rule-sets",
    response_model=RegisteredInfo,
    status_code=201,
    dependencies=[AdminDep],
    responses={
        **ADMIN_ERRORS,
        200: {"model": RegisteredInfo, "description": "Already registered, identical."},
        409: {"model": Problem, "description": "The name holds another definition."},
        422: {"model": Problem, "description": "A bad field, named."},
    },
)
def register_rule_set(
    engine: EngineDep,
    response: Response,
    document: Annotated[dict[str, Any], Body(examples=[EXAMPLE])],
) -> RegisteredInfo | Response:
    """Register a rule set (filters as data). Published from the next update on."""
    definition = rule_sets.parse_definition(document)
    try:
        with engine.begin() as connection:
            item, created = rule_sets.register(connection, definition)
    except ConflictError as error:
        return problem(409, str(error))
    response.status_code = 201 if created else 200
    return RegisteredInfo.of_item(item)


@router.get("/rule-sets", response_model=list[RegisteredInfo])
def list_rule_sets(engine: EngineDep) -> list[RegisteredInfo]:
    """Every rule set by name: the built-in ones (presets and each market's default)
    and the registered ones, with definition, fingerprint and market."""
    with engine.connect() as connection:
        return [RegisteredInfo.of_item(item) for item in rule_sets.list_rule_sets(connection)]


@router.get(
    "/rule-sets/{name}",
    response_model=RegisteredInfo,
    responses={404: {"model": Problem, "description": "No rule set of that name."}},
)
def show_rule_set(engine: EngineDep, name: Annotated[str, Path(max_length=64)]) -> RegisteredInfo:
    with engine.connect() as connection:
        return RegisteredInfo.of_item(rule_sets.get(connection, name))
