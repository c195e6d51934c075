"""Property-based fuzzing of every operation from the service's own OpenAPI schema.

On SQLite and PostgreSQL, generated requests (valid and invalid) must never get
a 5xx, every status must be one the schema documents, and every body must match
its documented schema. Bounded (examples per operation) so CI stays in minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.app.conftest import admin, running
from tests.app.model_factory import write_tiny_model

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 60
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(settings, models_dir, csv_folder, market) -> Iterator[schemathesis.BaseSchema]:
    # Cash-rate series and an active model with stored outputs, so every policy,
    # strategy and cost option can answer.
    add_cash_rates(csv_folder, market.index)
    version = write_tiny_model(models_dir)
    with running(settings) as client:
        refreshed = client.post("/admin/refresh", headers=admin())
        assert refreshed.status_code == 200, refreshed.text
        activated = client.post(f"/admin/models/{version}/activate", headers=admin())
        assert activated.status_code == 200, (
            activated.text
        )  # lifespan has run: engine, calendar, model slot
        yield schemathesis.openapi.from_asgi("/openapi.json", client.app)


def add_cash_rates(folder: Path, days: pd.DatetimeIndex) -> None:
    (folder / "DFF.csv").write_text(
        "date,value\n" + "".join(f"{day:%Y-%m-%d},0.10\n" for day in days)
    )
    header = "Price,Price,Close,High,Low,Open,Volume\nTicker,BIL,BIL,BIL,BIL,BIL,BIL\nDate,,,,,,\n"
    rows = "".join(
        f"{day:%Y-%m-%d} 00:00:00,{90 * 1.00001**i},91,91,91,91,100\n" for i, day in enumerate(days)
    )
    (folder / "BIL.csv").write_text(header + rows)


def fuzz_operation(operation) -> None:
    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case) -> None:
        case.call_and_validate(checks=CHECKS)

    check()


def test_no_server_error_and_responses_match_the_schema(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    assert "GET /regime/today" in labels and "POST /backtest" in labels
    failures = []
    for operation in operations:
        try:
            fuzz_operation(operation)
        except Exception as error:  # noqa: BLE001 - collected, reported together below
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)
