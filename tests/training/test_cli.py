"""`deepregime train | evaluate | models ...` against a fresh database and models folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from app.settings import get_settings
from cli import models
from core.features import compute_features
from store import model_registry
from store.repository import write_features
from tests.conftest import make_closes

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _app() -> typer.Typer:
    app = typer.Typer()
    models.register(app)
    return app


@pytest.fixture
def cli(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[CliRunner, typer.Typer, Path]]:
    monkeypatch.setenv("DEEPREGIME_DATABASE_URL", database_url)
    monkeypatch.setenv("DEEPREGIME_MODEL_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    yield CliRunner(), _app(), tmp_path / "models"
    get_settings.cache_clear()


@pytest.fixture
def stored_features(engine: Engine) -> None:
    with engine.begin() as connection:
        write_features(connection, table=compute_features(make_closes(900)))


@pytest.mark.parametrize(
    "command",
    [
        ["train"],
        ["evaluate"],
        ["models", "list"],
        ["models", "show"],
        ["models", "activate"],
        ["models", "predict"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(_app(), [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_train_activate_list_show_predict(cli, stored_features, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    runner, app, models_dir = cli
    trained = runner.invoke(app, ["train", "--epochs", "1", "--activate", "--json"])
    assert trained.exit_code == 0, trained.output
    payload = json.loads(trained.stdout)
    version = payload["card"]["version"]
    assert (models_dir / version / "model.onnx").exists()
    assert payload["activation"]["days_scored"] > 0

    listed = json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)
    assert listed["active"] == version
    (row,) = listed["versions"]
    assert (row["version"], row["on_disk"], row["registered"]) == (version, True, True)

    shown = json.loads(runner.invoke(app, ["models", "show", version, "--json"]).stdout)
    assert shown["active"] and shown["card"]["onnx_sha256"] == payload["card"]["onnx_sha256"]

    predicted = runner.invoke(app, ["models", "predict", "--json"])
    assert predicted.exit_code == 0, predicted.output
    with engine.connect() as connection:
        stored = model_registry.load_outputs(connection, version=version)
    assert len(stored) == json.loads(predicted.stdout)["days_scored"]

    text = runner.invoke(app, ["models", "list"])
    assert f"* disk db {version}" in text.stdout

    shutil.rmtree(models_dir / version)  # gone from disk: the database still knows its card
    (row,) = json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)["versions"]
    assert (row["on_disk"], row["registered"], row["labels"]) == (False, True, "standardised-2")


def test_activating_a_path_like_version_fails_with_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    runner, app, _ = cli
    result = runner.invoke(app, ["models", "activate", "../../etc/passwd"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "'../../etc/passwd' is not a valid name" in result.stderr


def test_showing_an_unknown_version_fails_with_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    runner, app, _ = cli
    result = runner.invoke(app, ["models", "show", "2020-01-01-abcdef"])
    assert result.exit_code == 1
    assert "neither in" in result.stderr


def test_training_without_features_names_the_missing_step(cli) -> None:  # type: ignore[no-untyped-def]
    runner, app, _ = cli
    result = runner.invoke(app, ["train", "--epochs", "1"])
    assert result.exit_code == 1
    assert "deepregime features" in result.stderr


def test_bad_option_value_quotes_value_and_range(cli) -> None:  # type: ignore[no-untyped-def]
    runner, app, _ = cli
    result = runner.invoke(app, ["train", "--horizon", "-3"])
    assert result.exit_code == 1
    assert "horizon must be between 0 and 250, got -3" in result.stderr


def test_evaluate_prints_machine_readable_json_and_writes_the_report(
    cli, stored_features, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    runner, app, _ = cli
    result = runner.invoke(
        app,
        [
            "evaluate",
            *("--first-year", "2012", "--last-year", "2012", "--epochs", "1"),
            *("--target", "distress-within", "--horizon", "5"),
            *("--report", str(tmp_path / "report")),
            "--no-reproduction",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [refit["year"] for refit in payload["refits"]] == [2012]
    assert "reproduction" not in payload
    assert {row["strategy"] for row in payload["economic_value"]} >= {"buy_and_hold", "rules"}
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "distress within 5 days" in markdown
    assert (tmp_path / "report" / "reliability.png").exists()
    assert "walk-forward" in result.stderr  # the progress bar


def test_registry_commands_do_not_import_torch() -> None:
    code = "import sys, cli.models; assert 'torch' not in sys.modules"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_jump_labels_and_the_shipped_walk_forward_history(
    cli, stored_features, engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    """train --labels jump, evaluate --for-version writes walk_forward.csv into the version
    (its labels, target and horizon), and activation loads it into the store."""
    from store.repository import load_walk_forward_outputs

    runner, app, models_dir = cli
    trained = runner.invoke(
        app,
        [
            "train",
            *("--labels", "jump", "--target", "distress-within", "--horizon", "5"),
            *("--epochs", "1", "--test-fraction", "0", "--json"),
        ],
    )
    assert trained.exit_code == 0, trained.output
    card = json.loads(trained.stdout)["card"]
    assert (card["labels"]["method"], card["labels"]["preset"]) == ("jump", "jump")
    version = card["version"]
    result = runner.invoke(
        app,
        [
            "evaluate",
            *("--first-year", "2012", "--last-year", "2012", "--epochs", "1"),
            *("--for-version", version, "--no-reproduction", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["config"]["setup"]["windows"]["target"] == "distress-within"
    assert payload["config"]["setup"]["labels"]["preset"] == "jump"
    path = models_dir / version / "walk_forward.csv"
    rows = path.read_text().splitlines()
    assert rows[0] == "date,p_distressed,regime,fold_cutoff"
    assert all(row.startswith("2012-") and row.endswith(",2011-12-30") for row in rows[1:])
    shown = json.loads(runner.invoke(app, ["models", "show", version, "--json"]).stdout)
    history = shown["card"]["walk_forward"]
    assert history["days"] == len(rows) - 1 and history["folds"][0]["year"] == 2012
    assert 0.0 <= history["brier"] <= 1.0
    assert runner.invoke(app, ["models", "activate", version]).exit_code == 0
    with engine.connect() as connection:
        stored = load_walk_forward_outputs(connection, model_version=version)
    assert len(stored) == len(rows) - 1
