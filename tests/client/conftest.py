"""A live service for the client: the app under uvicorn on a free 127.0.0.1 port, on the
made-up market of tests/app/conftest.py run through the daily cycle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from tests.app.conftest import (  # noqa: F401 - fixtures: the market, loaded and published
    API_KEY,
    csv_folder,
    market,
    populated_url,
)
from tests.app.test_regime_stream import Served, serving


def service_settings(database_url: str, tmp_path: Path, **changes: object) -> Settings:
    """The service as the tests run it: no model, the admin key set, history pages and
    backtests in the serving process, background webhook delivery off."""
    options: dict[str, object] = {
        "database_url": database_url,
        "model_dir": tmp_path / "no-models",
        "data_source": "csv",
        "data_path": tmp_path / "market",
        "api_key": API_KEY,
        "research_processes": 0,
        "webhook_poll_s": 0,
        "stream_poll_s": 0.1,
        "sweep_poll_s": 0,
    }
    return Settings(**{**options, **changes}, _env_file=None)


@pytest.fixture
def service(populated_url: str, tmp_path: Path) -> Iterator[Served]:  # noqa: F811
    with serving(service_settings(populated_url, tmp_path)) as served:
        yield served
