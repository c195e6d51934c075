"""Property-based fuzzing of every operation from the service's own OpenAPI schema.

On SQLite and PostgreSQL, generated requests (valid and invalid) must never get
a 5xx, every status must be one the schema documents, and every body must match
its documented schema. Two phases: each operation alone, then a stateful phase
that follows the document's OpenAPI ``links`` from what a request created (a
stored backtest, a sweep, a webhook subscription, a rule set) to the operations
reading it. Webhook operations are sent with the admin key, so the stateful phase
reaches stored subscriptions.

Short by default (CI: 60 examples per operation, a few stateful scenarios).
``DEEPREGIME_FUZZ_REQUESTS=10000`` is the long mode: both phases go on until that
many requests were sent per database.
"""

from __future__ import annotations

import os
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

# Requests per database in the long mode (0: the short mode).
LONG_REQUESTS = int(os.environ.get("DEEPREGIME_FUZZ_REQUESTS", "0"))
EXAMPLES_PER_OPERATION = 300 if LONG_REQUESTS else 60
STATEFUL_SCENARIOS = 200 if LONG_REQUESTS else 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(settings, models_dir, csv_folder, market) -> Iterator[schemathesis.BaseSchema]:
    # Cash-rate series and an active model with stored outputs, so every policy,
    # strategy and cost option can answer. Generated webhook targets fail fast, and
    # generated backtests are not throttled by the per-client rate.
    add_cash_rates(csv_folder, market.index)
    version = write_tiny_model(models_dir)
    fuzzed = settings.model_copy(
        update={"webhook_timeout_s": 0.2, "backtest_rate_per_minute": 0, "sweep_poll_s": 0}
    )
    with running(fuzzed) as client:
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


class Sent:
    """How many requests the fuzzing sent (both phases)."""

    count = 0


def call_kwargs(case) -> dict:
    # The admin key on webhook operations (the others keep what was generated: a missing
    # or wrong key is fuzzed there), so subscriptions are created and read back.
    if case.operation.path.startswith("/admin/webhooks"):
        return {"headers": {**(case.headers or {}), **admin()}}
    return {}


def fuzz_operation(operation) -> None:
    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case) -> None:
        Sent.count += 1
        case.call_and_validate(checks=CHECKS, **call_kwargs(case))

    check()


def fuzz_links(schema) -> None:
    """Scenarios of several requests, each using what an earlier one created (links)."""
    machine = schema.as_state_machine()

    class Following(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case):
            return call_kwargs(case)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            Sent.count += 1
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    Following.run(
        settings=hypothesis_settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )


def test_no_server_error_and_responses_match_the_schema(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    assert "GET /regime/today" in labels and "POST /backtest" in labels
    failures = []
    Sent.count = 0
    while True:
        for operation in operations:
            try:
                fuzz_operation(operation)
            except Exception as error:  # noqa: BLE001 - collected, reported together below
                failures.append(f"{operation.label}: {error}")
        try:
            fuzz_links(api_schema)
        except Exception as error:  # noqa: BLE001 - reported with the others
            failures.append(f"stateful (links): {error}")
        if failures or Sent.count >= LONG_REQUESTS:
            break
    print(f"{Sent.count} requests sent")
    assert not failures, "\n\n".join(failures)
    assert Sent.count >= LONG_REQUESTS
