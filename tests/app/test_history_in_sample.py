"""History rows say which days' model outputs come from a version trained on them."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.app.conftest import admin, running
from tests.app.model_factory import write_tiny_model

TRAINED_UNTIL = dt.date(2011, 12, 30)


@pytest.fixture
def version(models_dir):
    return write_tiny_model(models_dir, trained_until=TRAINED_UNTIL)


def test_rows_flag_in_sample_outputs(settings, version):
    with running(settings) as client:
        assert client.post(f"/admin/models/{version}/activate", headers=admin()).status_code == 200
        span = {"start": "2011-12-20", "end": "2012-01-10"}
        own = client.get("/regimes", params={**span, "model_history": "in_sample"}).json()
        flags = {row["date"]: row["in_sample"] for row in own["items"]}
        assert flags and all(
            flag is (dt.date.fromisoformat(day) <= TRAINED_UNTIL) for day, flag in flags.items()
        )
        # Without a walk-forward history the default history serves the version's own
        # outputs, and each row says which of them it was trained on.
        served = client.get("/regimes", params=span).json()["items"]
        assert {row["date"]: row["in_sample"] for row in served} == flags
        assert all(row["model_regime"] is not None for row in served)
