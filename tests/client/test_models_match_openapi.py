"""The client's models and requests against the service's own OpenAPI document.

Every field of every client model must exist in the service's schema, with a type
the client accepts every value of, and be required by the service when the client
requires it; every operation must answer the model the client reads and declare
every query parameter the client sends. A change of the service breaks these
tests, not the trading systems using the client.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from deepregime_client import _calls, models
from deepregime_client._exchange import Call
from pydantic import BaseModel

from app.main import create_app
from app.settings import Settings
from operations import rule_sets

# Client model -> the OpenAPI component it reads.
OPENAPI: dict[type[BaseModel], str] = {
    models.FilterReading: "FilterReading",
    models.RulesPart: "RulesPart",
    models.ModelPart: "ModelPart",
    models.RegimeReport: "RegimeReport",
    models.RegimeRow: "RegimeRow",
    models.RegimePage: "RegimePage",
    models.Publication: "PublicationOut",
    models.PublicationPage: "PublicationPage",
    models.Period: "Period",
    models.TimeInvested: "TimeInvested",
    models.StrategyMetrics: "StrategyMetrics",
    models.StrategyResult: "StrategyResult",
    models.EquityCurves: "EquityCurves",
    models.BacktestResult: "BacktestResult",
    models.SweepStatus: "SweepStatus",
    models.VariantRow: "VariantRow",
    models.SweepResultsPage: "SweepResultsPage",
    models.Problem: "Problem",
}
# Answers the OpenAPI document leaves out (a rule set's answers are served by the same
# routes but documented as RegimeReport / RegimePage): checked against the service's
# own models instead.
SERVICE_MODELS: dict[type[BaseModel], type[BaseModel]] = {
    models.RuleSetInfo: rule_sets.RuleSetInfo,
    models.RuleSetReading: rule_sets.RuleSetReading,
    models.RuleSetReport: rule_sets.RuleSetReport,
    models.RuleSetRow: rule_sets.RuleSetRow,
    models.RuleSetPage: rule_sets.RuleSetPage,
}
# Webhook payloads are not in the OpenAPI document: tests/client/test_webhooks.py reads
# them from deliveries the service signed.
WEBHOOK_MODELS = {models.RegimeChange, models.WebhookEvent}

# The operation each client call makes, the status it reads and the models it reads.
ANSWERS = (models.RegimeReport, models.RuleSetReport)
PAGES = (models.RegimePage, models.RuleSetPage)
OPERATIONS: list[tuple[Any, str, str, tuple[type[BaseModel], ...]]] = [
    (_calls.today, "/regime/today", "200", ANSWERS),
    (_calls.regime, "/regime/{day}", "200", ANSWERS),
    (_calls.history, "/regimes", "200", PAGES),
    (_calls.publications, "/publications", "200", (models.PublicationPage,)),
    (_calls.backtest, "/backtest", "201", (models.BacktestResult,)),
    (_calls.create_sweep, "/sweeps", "202", (models.SweepStatus,)),
    (_calls.sweep, "/sweeps/{sweep_id}", "200", (models.SweepStatus,)),
    (_calls.sweep_results, "/sweeps/{sweep_id}/results", "200", (models.SweepResultsPage,)),
    (_calls.cancel_sweep, "/sweeps/{sweep_id}/cancel", "200", (models.SweepStatus,)),
]
# Sent only when given; the service is gaining it. Until it declares it, the service
# answers 422 naming it, which the client raises as a ProblemError.
NOT_YET_DECLARED = {"market"}


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder: Path = tmp_path_factory.mktemp("openapi")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'unused.db'}", model_dir=folder, _env_file=None
    )
    return create_app(settings).openapi()


# --- comparing schemas -------------------------------------------------------------------


def resolve(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def alternatives(schema: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [alt for option in schema[key] for alt in alternatives(option)]
    return [schema]


def mismatch(
    client: dict[str, Any],
    client_defs: dict[str, Any],
    service: dict[str, Any],
    service_defs: dict[str, Any],
) -> str | None:
    """Why the client's schema cannot read some value the service's allows; None if it can."""
    if not client or client is True:
        return None  # Any
    for wanted in alternatives(service):
        reasons = [
            accepts(option, client_defs, wanted, service_defs) for option in alternatives(client)
        ]
        if all(reasons):
            return f"nothing in {client} reads {wanted}: {reasons}"
    return None


def accepts(
    client: dict[str, Any],
    client_defs: dict[str, Any],
    service: dict[str, Any],
    service_defs: dict[str, Any],
) -> str | None:
    """Why one alternative of the client's cannot read one of the service's; None if it can."""
    if not client:
        return None
    if "$ref" in client:
        name = client["$ref"].rsplit("/", 1)[-1]
        expected = {model.__name__: schema for model, schema in OPENAPI.items()}.get(name)
        if "$ref" in service and expected is not None:
            found = service["$ref"].rsplit("/", 1)[-1]
            return None if found == expected else f"client {name} reads {expected}, got {found}"
        client = resolve(client, client_defs)
    service = resolve(service, service_defs)
    kind, wanted = client.get("type"), service.get("type")
    if wanted == "integer" and kind == "number":
        return None
    if kind != wanted:
        return f"{kind} != {wanted}"
    if kind == "string" and client.get("format") not in (None, service.get("format")):
        return f"format {client.get('format')} != {service.get('format')}"
    if kind == "array":
        items = client.get("items", {})
        return mismatch(items, client_defs, service.get("items", {}), service_defs)
    if kind == "object" and "properties" not in client:
        values = client.get("additionalProperties", {})
        offered = list(service.get("properties", {}).values())
        if "additionalProperties" in service or not offered:
            offered.append(service.get("additionalProperties", {}))
        for value in offered:
            if value is not True and (why := mismatch(values, client_defs, value, service_defs)):
                return why
    if kind == "object" and "properties" in client:
        return "; ".join(field_mismatches(client, client_defs, service, service_defs)) or None
    return None


def field_mismatches(
    client: dict[str, Any],
    client_defs: dict[str, Any],
    service: dict[str, Any],
    service_defs: dict[str, Any],
) -> list[str]:
    problems = []
    offered, required = service.get("properties", {}), set(service.get("required", []))
    for name, field in client["properties"].items():
        if name not in offered:
            problems.append(f"{name}: not in the service's schema")
            continue
        if name in client.get("required", []) and name not in required:
            problems.append(f"{name}: required here, optional in the service")
        if why := mismatch(field, client_defs, offered[name], service_defs):
            problems.append(f"{name}: {why}")
    return problems


def client_schema(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = model.model_json_schema(mode="validation")
    return schema, schema.get("$defs", {})


# --- the tests ---------------------------------------------------------------------------


def test_every_client_model_is_checked_somewhere():
    classes = [value for value in vars(models).values() if inspect.isclass(value)]
    defined = {kind for kind in classes if issubclass(kind, models.Answer)} - {models.Answer}
    assert defined == set(OPENAPI) | set(SERVICE_MODELS) | WEBHOOK_MODELS


@pytest.mark.parametrize("model", list(OPENAPI), ids=lambda model: model.__name__)
def test_client_models_read_every_value_of_their_openapi_schema(model, openapi):
    components = openapi["components"]["schemas"]
    schema, defs = client_schema(model)
    assert field_mismatches(schema, defs, components[OPENAPI[model]], components) == []


@pytest.mark.parametrize("model", list(SERVICE_MODELS), ids=lambda model: model.__name__)
def test_rule_set_models_read_every_value_of_the_services_models(model, openapi):
    service = SERVICE_MODELS[model].model_json_schema(mode="serialization")
    schema, defs = client_schema(model)
    assert field_mismatches(schema, defs, service, service.get("$defs", {})) == []
    components = openapi["components"]["schemas"]
    if model.__name__ in components:  # where the document describes it too
        assert field_mismatches(schema, defs, components[model.__name__], components) == []


def component(model: type[BaseModel]) -> str:
    return OPENAPI.get(model, model.__name__)


def first_call(operation: Any) -> Call[Any]:
    """The call an operation makes first, every optional parameter given."""
    parameters = inspect.signature(operation.plan).parameters
    arguments = {
        name: "2012-04-05" if name in ("day", "start", "end", "since", "as_known_at") else "1"
        for name in parameters
    }
    arguments["request"] = {"strategies": []}
    arguments.pop("as_frame", None)
    plan = operation.plan(**{name: arguments[name] for name in parameters if name in arguments})
    return plan if isinstance(plan, Call) else next(plan)


@pytest.mark.parametrize(
    ("operation", "path", "status", "read"),
    OPERATIONS,
    ids=[path + " " + operation.__name__ for operation, path, _, _ in OPERATIONS],
)
def test_each_call_reads_its_operations_answer_and_sends_declared_parameters(
    operation, path, status, read, openapi
):
    call = first_call(operation)
    described = openapi["paths"][path][call.method.lower()]
    content = described["responses"][status]["content"]["application/json"]["schema"]
    documented = {option["$ref"].rsplit("/", 1)[-1] for option in alternatives(content)}
    assert OPENAPI[read[0]] in documented
    assert documented <= {component(model) for model in read}
    declared = {p["name"] for p in described.get("parameters", []) if p["in"] == "query"}
    assert set(call.params) - declared <= NOT_YET_DECLARED
    assert set(call.params) >= declared & {"policy", "rule_set", "start", "end", "since"}


class _Drifted(models.Answer):
    """A client model as it would read a service that changed under it."""

    as_of: int  # the service sends a date string
    exposure: float  # the service may send null
    mapping: str  # the service may leave it out
    renamed: str | None = None  # the service has no such field
    rules: models.ModelPart  # another schema than the service's RulesPart


def test_the_comparison_names_each_way_a_service_can_drift(openapi):
    components = openapi["components"]["schemas"]
    schema, defs = client_schema(_Drifted)
    problems = field_mismatches(schema, defs, components["RegimeReport"], components)
    assert [problem.split(":")[0] for problem in problems] == [
        "as_of",
        "exposure",
        "mapping",
        "mapping",
        "renamed",
        "rules",
    ]
    assert "client ModelPart reads ModelPart, got RulesPart" in problems[-1]
