"""``deepregime serve``: help, and a one-line refusal when the schema is behind."""

from __future__ import annotations

from typer.testing import CliRunner

from app.settings import get_settings
from cli.main import app

runner = CliRunner()


def test_serve_has_help():
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--host" in result.output and "--port" in result.output


def test_serve_refuses_a_schema_behind_the_migrations(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPREGIME_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["serve", "--port", "8123"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: database schema is at revision None")
    assert "deepregime db upgrade" in lines[0]
