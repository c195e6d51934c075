"""Classifier commands: train, evaluate, and the model registry (list, show, activate, predict).

Training and evaluation import torch lazily, so the registry commands (and
``--help``) work in an image without the training extras.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from cli.common import engine, handles_errors, print_json, settings, transaction
from core.errors import ConfigError, NoDataError
from inference.predictor import RegimePredictor
from inference.registry import list_versions, read_card
from inference.versions import validate_version
from operations.activation import activate_model as activate
from store import model_registry
from store.repository import load_features
from training.config import (
    LABEL_PRESETS,
    STANDARDISED_LABELS,
    ModelConfig,
    Pooling,
    SplitConfig,
    Target,
    TrainerConfig,
    TrainingSetup,
    WindowConfig,
    default_threads,
    label_preset,
)

models_app = typer.Typer(
    help="Model registry: list, show, activate and score versions.", no_args_is_help=True
)

DATE_FORMATS = ["%Y-%m-%d"]
# Jump-model penalties tried in each training window (the jumpmodels examples use 50).
DEFAULT_JUMP_PENALTIES = (10.0, 50.0, 200.0)
# Refits of the now-cast kept improving for about a dozen epochs (best epoch 12 of 15
# on 2012-2024); the forecasting targets' refits mostly peak within the first three
# (distress within 20 days, 2008-2020: 11-15 epochs run at patience 10, best by epoch
# 1-5). Training is seeded and deterministic, so patience 3 reaches the same best epoch
# wherever improvements come less than 3 epochs apart, in about half the epochs.
WALK_FORWARD_EPOCHS = 15
WALK_FORWARD_PATIENCE = 3
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ModelsDirOption = Annotated[
    Path | None, typer.Option(help="Model registry folder (default: DEEPREGIME_MODEL_DIR).")
]
LabelsOption = Annotated[
    str,
    typer.Option(
        help=f"Label preset: {', '.join(sorted(LABEL_PRESETS))} "
        "('as-published' fits on the whole history and leaks the future)."
    ),
]
HorizonOption = Annotated[
    int,
    typer.Option(
        help="Trading days ahead: the label h days later, or the span of a '-within' target."
    ),
]
TargetOption = Annotated[
    Target,
    typer.Option(
        help="label: the label h days ahead (h = 0: a now-cast); distress-within: any "
        "distressed day in the next h; change-within: any regime change in the next h."
    ),
]
EpochsOption = Annotated[int, typer.Option(help="Maximum training epochs per fit.")]
MaxSecondsOption = Annotated[
    float | None, typer.Option(help="Wall-clock budget per fit in seconds (best epoch kept).")
]
PatienceOption = Annotated[int, typer.Option(help="Epochs without improvement before stopping.")]
SeedOption = Annotated[int, typer.Option(help="Seed of every random number generator.")]
ThreadsOption = Annotated[int | None, typer.Option(help="torch threads (default: 1).")]


@contextmanager
def _progress(description: str, total: int, unit: str) -> Iterator[Callable[[object], None]]:
    """A progress bar with elapsed and remaining time on stderr; yields the function that
    advances it by one ``unit`` (the argument it is given is ignored)."""
    from rich.console import Console  # training extras only, like torch
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda _: bar.advance(task)


def _models_dir(models_dir: Path | None) -> Path:
    return models_dir or settings().model_dir


def _date(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value is not None else None


def _trainer(
    epochs: int, max_seconds: float | None, patience: int, seed: int, threads: int | None
) -> TrainerConfig:
    return TrainerConfig(
        max_epochs=epochs,
        max_seconds=max_seconds,
        patience=patience,
        seed=seed,
        threads=threads or default_threads(),
    ).validate()


def _number(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"  # NaN != NaN


def _outputs_summary(version: str, outputs: pd.DataFrame) -> dict[str, Any]:
    written = len(outputs)
    return {
        "version": version,
        "days_scored": written,
        "first": str(outputs.index[0].date()) if written else None,
        "last": str(outputs.index[-1].date()) if written else None,
        "distressed_share": float(outputs["regime"].mean()) if written else None,
    }


def activate_and_score(models_dir: Path, version: str) -> dict[str, Any]:
    """The one activation path (operations.activation): load with its sha256 and feature
    checks, register, activate, store daily outputs and publish, under the update lock."""
    config = settings()
    db = engine()
    try:
        _, activation = activate(
            db,
            models_dir=models_dir,
            version=validate_version(version),
            rule_set_name=config.rule_set,
            default_policy=config.default_policy,
            model_mapping=config.model_mapping,
            lock_wait_s=config.update_lock_wait_s,
        )
        with db.connect() as connection:
            outputs = model_registry.load_outputs(connection, version=version)
    finally:
        db.dispose()
    return {
        **_outputs_summary(version, outputs),
        "walk_forward_days": activation.walk_forward_days,
        "publications": activation.publications,
    }


@handles_errors
def train(
    start: Annotated[
        dt.datetime | None, typer.Option(formats=DATE_FORMATS, help="First day of data used.")
    ] = None,
    end: Annotated[
        dt.datetime | None, typer.Option(formats=DATE_FORMATS, help="Last day of data used.")
    ] = None,
    labels: LabelsOption = STANDARDISED_LABELS.preset,
    horizon: HorizonOption = 0,
    target: TargetOption = Target.LABEL,
    epochs: EpochsOption = TrainerConfig.max_epochs,
    max_seconds: MaxSecondsOption = None,
    patience: PatienceOption = TrainerConfig.patience,
    val_fraction: Annotated[float, typer.Option(help="Share of windows for validation.")] = (
        SplitConfig.val_fraction
    ),
    test_fraction: Annotated[float, typer.Option(help="Share of windows held out as test.")] = (
        SplitConfig.test_fraction
    ),
    pooling: Annotated[Pooling, typer.Option(help="Token fed to the head.")] = Pooling.LAST,
    seed: SeedOption = 0,
    threads: ThreadsOption = None,
    models_dir: ModelsDirOption = None,
    activate: Annotated[
        bool, typer.Option(help="Activate the new version and store its daily outputs.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Train the Transformer on stored features and register it as models/<version>/.

    Exports ONNX (checked against torch), writes model.onnx + model.json and records
    the version in the database; --activate also makes it serve."""
    from training.pipeline import train_version  # torch: training extras only

    windows = WindowConfig(horizon=horizon, target=target)
    setup = TrainingSetup(
        labels=label_preset(labels),
        windows=windows,
        split=SplitConfig(val_fraction=val_fraction, test_fraction=test_fraction),
        model=ModelConfig(window=windows.window, pooling=pooling),
        trainer=_trainer(epochs, max_seconds, patience, seed, threads),
    ).validate()
    folder = _models_dir(models_dir)
    with transaction() as connection:
        features = load_features(connection, start=_date(start), end=_date(end))
    if features.empty:
        raise NoDataError("no stored features in that period: run `deepregime features` first")
    if not as_json:
        typer.echo(
            f"training on {len(features)} days {features.index[0].date()} .. "
            f"{features.index[-1].date()} (labels {labels}, target {target.value}, "
            f"horizon {horizon})"
        )
    started = time.perf_counter()
    with _progress("training", setup.trainer.max_epochs, "epochs") as advance:
        card, path = train_version(features, setup, folder, on_epoch=advance)
    seconds = time.perf_counter() - started
    with transaction() as connection:
        model_registry.register_version(
            connection, version=card.version, sha256=card.onnx_sha256, card=card.as_dict()
        )
    activation = activate_and_score(folder, card.version) if activate else None
    if as_json:
        print_json(
            {
                "card": card.as_dict(),
                "path": str(path),
                "seconds": seconds,
                "activation": activation,
            }
        )
        return
    test = card.metrics.get("test") or card.metrics.get("validation") or {}
    split_name = "test" if "test" in card.metrics else "validation"
    typer.echo(
        f"model {card.version} written to {path} and registered in {seconds:.0f}s "
        f"({card.training['epochs_run']} epochs, best {card.training['best_epoch']}, "
        f"{card.training['stop_reason']})"
    )
    typer.echo(
        f"{split_name}: accuracy {_number(test.get('accuracy'))}, balanced accuracy "
        f"{_number(test.get('balanced_accuracy'))}, ROC AUC {_number(test.get('roc_auc'))}"
    )
    if activation:
        typer.echo(
            f"activated {card.version}: {activation['days_scored']} daily outputs stored "
            f"({activation['first']} .. {activation['last']})"
        )


@handles_errors
def evaluate(
    first_year: Annotated[int, typer.Option(help="First walk-forward test year.")] = 2012,
    last_year: Annotated[int, typer.Option(help="Last walk-forward test year.")] = 2024,
    labels: LabelsOption = STANDARDISED_LABELS.preset,
    horizon: HorizonOption = 0,
    target: TargetOption = Target.LABEL,
    epochs: Annotated[
        int,
        typer.Option(
            help="Maximum epochs per refit (2008-2024, distress within 20 days: 17 refits "
            "in 5 min with --jobs 2)."
        ),
    ] = WALK_FORWARD_EPOCHS,
    max_seconds: MaxSecondsOption = None,
    patience: PatienceOption = WALK_FORWARD_PATIENCE,
    seed: SeedOption = 0,
    threads: ThreadsOption = None,
    reproduction: Annotated[
        bool, typer.Option(help="Also run the reproduction report (trains one more model).")
    ] = True,
    plots: Annotated[Path | None, typer.Option(help="Write PNG plots into this folder.")] = None,
    save: Annotated[
        Path | None, typer.Option(help="Also write the JSON report to this file.")
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--report", help="Write report.md, report.json and the plots into this folder."
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option(help="Test years refitted at once (one process each, 1 thread).")
    ] = 1,
    jump_penalty: Annotated[
        list[float] | None,
        typer.Option(
            help="Jump-model penalties tuned by time-series CV in each training window "
            "(repeat the option; default 10, 50, 200)."
        ),
    ] = None,
    hmm_states: Annotated[
        list[int] | None,
        typer.Option(help="HMM state counts tuned likewise (repeat the option; default 2)."),
    ] = None,
    for_version: Annotated[
        str | None,
        typer.Option(
            "--for-version",
            help="Evaluate with this version's labels, target and horizon, and write its "
            "walk_forward.csv (out-of-sample outputs up to its in-sample cut-off).",
        ),
    ] = None,
    models_dir: ModelsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Walk-forward evaluation against baselines, with backtests and the reproduction.

    Refits yearly (expanding window), reports per-year and pooled metrics, the
    out-of-sample strategies and the published table beside what survives."""
    from inference import walk_forward as shipped  # the file format
    from training.baselines import BaselineConfig
    from training.evaluation import evaluate as run_evaluation  # torch: training extras only
    from training.evaluation import report_json, report_markdown, report_text, write_plots
    from training.walkforward import WalkForwardConfig, shipped_history

    card = None
    if for_version is not None:
        card = read_card(_models_dir(models_dir), validate_version(for_version))
        labels = str(card.config.get("LabelConfig", {}).get("preset", card.labels.preset))
        target, horizon = Target(card.target), card.horizon
        if card.window != WindowConfig.window:
            raise ConfigError(f"model {card.version} reads {card.window}-day windows, not 60")
    setup = TrainingSetup(
        labels=label_preset(labels),
        windows=WindowConfig(horizon=horizon, target=target),
        trainer=_trainer(epochs, max_seconds, patience, seed, threads),
    )
    baselines = BaselineConfig(
        jump_penalty_grid=tuple(jump_penalty or DEFAULT_JUMP_PENALTIES),
        hmm_states_grid=tuple(hmm_states or ()),
        hmm_states=(hmm_states or [BaselineConfig.hmm_states])[0],
    )
    config = WalkForwardConfig(
        first_year, last_year, setup=setup, baselines=baselines, jobs=jobs
    ).validate()
    with transaction() as connection:
        features = load_features(connection)
    if features.empty:
        raise NoDataError("no stored features: run `deepregime features` first")
    with _progress("walk-forward", last_year - first_year + 1, "years") as advance:
        report = run_evaluation(features, config, with_reproduction=reproduction, on_refit=advance)
    plots = plots or report_dir
    written = write_plots(report, features, plots) if plots else []
    payload = report_json(report) | {"plots": [str(p) for p in written]}
    if report_dir is not None:
        (report_dir / "report.md").write_text(report_markdown(report, written), encoding="utf-8")
        save = save or report_dir / "report.json"
        written.append(report_dir / "report.md")
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    if card is not None and report.walk_forward is not None:
        outputs, summary = shipped_history(report.walk_forward, pd.Timestamp(card.sample_cutoff))
        card = shipped.attach(_models_dir(models_dir), card.version, outputs, summary)
        written.append(_models_dir(models_dir) / card.version / shipped.WALK_FORWARD_FILE)
    if as_json:
        print_json(payload)
        return
    typer.echo(report_text(report))
    for path in [*written, *([save] if save else [])]:
        typer.echo(f"written: {path}")


@models_app.command("list")
@handles_errors
def list_models(models_dir: ModelsDirOption = None, as_json: JsonOption = False) -> None:
    """Versions on disk and in the database, with the active one marked."""
    folder = _models_dir(models_dir)
    on_disk = set(list_versions(folder))
    with transaction() as connection:
        registered = {row["version"] for row in model_registry.list_registered(connection)}
        active = model_registry.active_version(connection)
        cards = {version: read_card(folder, version).as_dict() for version in on_disk}
        for version in registered - on_disk:  # no longer on disk: the card the database kept
            row = model_registry.registered_version(connection, version=version)
            if row is not None:
                cards[version] = row["card"]
    rows = [
        {
            "version": version,
            "active": version == active,
            "on_disk": version in on_disk,
            "registered": version in registered,
            "labels": cards[version]["labels"]["preset"],
            "horizon": cards[version]["horizon"],
            "training_period": cards[version]["training_period"],
        }
        for version in sorted(cards)
    ]
    if as_json:
        print_json({"models_dir": str(folder), "active": active, "versions": rows})
        return
    if not rows:
        typer.echo(f"no model versions in {folder} or the database: run `deepregime train`")
        return
    for row in rows:
        flags = ("*" if row["active"] else " ") + (" disk" if row["on_disk"] else "     ")
        flags += " db" if row["registered"] else "   "
        period = row["training_period"] or {}
        typer.echo(
            f"{flags} {row['version']}  labels={row['labels']} horizon={row['horizon']} "
            f"trained {period.get('start')} .. {period.get('end')}"
        )
    typer.echo(f"{len(rows)} version(s); * = active ({active or 'none'})")


@models_app.command("show")
@handles_errors
def show_model(
    version: Annotated[str, typer.Argument(help="Version name, e.g. 2024-12-31-a1b2c3.")],
    models_dir: ModelsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """The model card of VERSION (from disk, else from the database) and its status."""
    version = validate_version(version)
    folder = _models_dir(models_dir)
    with transaction() as connection:
        row = model_registry.registered_version(connection, version=version)
        active = model_registry.active_version(connection)
    if version in list_versions(folder):
        card = read_card(folder, version).as_dict()
    elif row is not None:
        card = row["card"]
    else:
        raise NoDataError(f"model version {version} is neither in {folder} nor registered")
    status = {"active": version == active, "registered": row is not None}
    if as_json:
        print_json({"card": card, **status})
        return
    typer.echo(f"{version}  active={status['active']} registered={status['registered']}")
    typer.echo(
        f"  features  {', '.join(card['features'])} (window {card['window']}, "
        f"horizon {card['horizon']})"
    )
    labels = card["labels"]
    typer.echo(
        f"  labels    {labels['preset']}: {labels['n_clusters']} clusters, fitted "
        f"{labels['fit_period']['start']} .. {labels['fit_period']['end']}"
        + ("  (LEAKS THE FUTURE)" if labels["leaks_future"] else "")
    )
    period = card["training_period"]
    typer.echo(f"  trained   {period['start']} .. {period['end']}")
    for split, values in card["metrics"].items():
        typer.echo(
            f"  {split:10s} n={int(values.get('n') or 0)} accuracy="
            f"{_number(values.get('accuracy'))} roc_auc={_number(values.get('roc_auc'))}"
        )
    typer.echo(
        f"  target    {card.get('target', 'label')} (horizon {card['horizon']}), in sample "
        f"until {card.get('in_sample_until') or period['end']}"
    )
    calibration = card.get("calibration") or {}
    typer.echo(f"  calibrated {calibration.get('method', 'none')}")
    history = card.get("walk_forward")
    if history:
        typer.echo(
            f"  walk-forward {history['first']} .. {history['last']} ({history['days']} days, "
            f"{len(history.get('folds', []))} refits): Brier {_number(history.get('brier'))}, "
            f"skill vs climatology {_number(history.get('brier_skill_climatology'))}, "
            f"vs persistence {_number(history.get('brier_skill_persistence'))}, "
            f"ECE {_number(history.get('ece'))}, ROC AUC {_number(history.get('roc_auc'))}"
        )
    typer.echo(f"  onnx      sha256 {card['onnx_sha256']}")


@models_app.command("activate")
@handles_errors
def activate_model(
    version: Annotated[str, typer.Argument(help="Version name, e.g. 2024-12-31-a1b2c3.")],
    models_dir: ModelsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make VERSION the active model and store its daily outputs over the stored history."""
    version = validate_version(version)
    result = activate_and_score(_models_dir(models_dir), version)
    if as_json:
        print_json(result)
        return
    typer.echo(
        f"activated {version}: {result['days_scored']} daily outputs stored "
        f"({result['first']} .. {result['last']}), {result['walk_forward_days']} walk-forward "
        "out-of-sample outputs loaded"
    )


@models_app.command("predict")
@handles_errors
def predict_model(
    version: Annotated[
        str | None, typer.Argument(help="Version to score (default: the active one).")
    ] = None,
    models_dir: ModelsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute and store a version's daily outputs (e.g. after new data) without activating."""
    folder = _models_dir(models_dir)
    with transaction() as connection:
        chosen = version or model_registry.active_version(connection)
        if chosen is None:
            raise NoDataError("no active model: name a version or run `deepregime models activate`")
        chosen = validate_version(chosen)
        if model_registry.registered_version(connection, version=chosen) is None:
            raise NoDataError(f"model version {chosen} is not registered: activate or train it")
        predictor = RegimePredictor.load(folder, chosen)
        result = _outputs_summary(
            chosen, model_registry.store_outputs(connection, predictor=predictor)
        )
    if as_json:
        print_json(result)
        return
    typer.echo(
        f"scored {chosen}: {result['days_scored']} daily outputs stored "
        f"({result['first']} .. {result['last']})"
    )


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.add_typer(models_app, name="models")
