"""The environment of a test that drives the command line (`deepregime update`, ...)
and the app it then reads: the database under test, no model, the test admin key, and
no backtest rate limit (these tests post many)."""

from __future__ import annotations

import pytest

from app.settings import get_settings
from tests.app.conftest import API_KEY


@pytest.fixture
def cli_env(monkeypatch, database_url, tmp_path):
    monkeypatch.setenv("DEEPREGIME_DATABASE_URL", database_url)
    monkeypatch.setenv("DEEPREGIME_MODEL_DIR", str(tmp_path / "no-models"))
    monkeypatch.setenv("DEEPREGIME_API_KEY", API_KEY)
    monkeypatch.setenv("DEEPREGIME_BACKTEST_RATE_PER_MINUTE", "0")
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()
