"""The data commands as a user runs them: summaries, exit codes, one-line failures."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.settings import get_settings
from cli.main import app
from tests.store.test_ingest import make_folder

runner = CliRunner()


@pytest.fixture
def env(monkeypatch, database_url):
    monkeypatch.setenv("DEEPREGIME_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_ingest_features_signals_summaries(env, tmp_path):
    folder = make_folder(tmp_path, n_days=220)
    assert run("db", "upgrade").exit_code == 0
    first = run("ingest", "--source", "csv", "--path", str(folder))
    assert first.exit_code == 0, first.output
    assert "2 series, 440 inserted, 0 updated, 0 rejected" in first.output
    again = run("ingest", "--source", "csv", "--path", str(folder))
    assert "nothing changed" in again.output
    features = run("features")
    assert "features: 220 days (2024-01-02 .. 2024-11-13), 220 written" in features.output
    signals = run("signals")
    assert signals.exit_code == 0
    assert "regimes[published-" in signals.output and "220 written" in signals.output
    assert "0 written" in run("signals").output


def test_failures_exit_non_zero_with_one_line(env, tmp_path):
    missing = run("ingest", "--source", "csv", "--path", str(tmp_path / "nowhere"))
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines() == [
        f"error: CSV folder {tmp_path / 'nowhere'} does not exist"
    ]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "SPY.csv").write_text("Price,Price,Close\n")
    rejected = run("ingest", "--source", "csv", "--path", str(bad))
    assert rejected.exit_code == 1
    assert "SPY      rejected:" in rejected.output and "missing column(s)" in rejected.output
    assert run("signals", "--rule-set", "nope").output.startswith("error: unknown rule set 'nope'")


def test_schema_behind_migrations_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPREGIME_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    get_settings.cache_clear()
    result = run("features")
    get_settings.cache_clear()
    assert result.exit_code == 1
    assert "run `deepregime db upgrade`" in result.output


def test_every_command_has_help():
    for command in (["db", "upgrade"], ["ingest"], ["features"], ["signals"], ["status"]):
        assert run(*command, "--help").exit_code == 0
