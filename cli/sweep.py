"""``deepregime sweep FILE``: run a sweep (the body of ``POST /sweeps``) on Dask.

The sweep is stored like one posted to the API (``GET /sweeps/{id}`` reads it), run
here at once on the configured cluster (``DEEPREGIME_DASK_SCHEDULER``, or a local
one), with a progress bar, and its summary printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.common import engine, fail, handles_errors, print_json, read_document, settings
from core.errors import DataValidationError
from operations.sweeps import (
    DONE,
    ClusterSettings,
    claim,
    cluster_client,
    create_sweep,
    execute_sweep,
)
from research.grid import SweepRequest


def read_sweep_request(path: Path) -> SweepRequest:
    """A SweepRequest from a .json, .yaml or .yml file."""
    return SweepRequest.model_validate(read_document(path, "a 'grid'"))


@handles_errors
def sweep(
    file: Annotated[Path, typer.Argument(help="JSON or YAML sweep request (as POST /sweeps).")],
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler address (default: DEEPREGIME_DASK_SCHEDULER, or a local cluster)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes of the local cluster.")
    ] = None,
    local: Annotated[
        bool, typer.Option("--no-cluster", help="Run every chunk in this process, no Dask.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the sweep as JSON.")] = False,
) -> None:
    """Sweep a grid of rule-set variants: walk-forward choice, PBO, deflated Sharpe."""
    if not file.exists():
        raise DataValidationError("no such file", source=str(file))
    request = read_sweep_request(file)
    config = settings()
    cluster = ClusterSettings(
        scheduler=scheduler or config.dask_scheduler,
        workers=workers or config.dask_workers,
        processes=config.dask_processes,
        chunk_variants=config.sweep_chunk_variants,
    )
    db = engine()
    try:
        created = create_sweep(db, request=request, max_variants=config.sweep_max_variants)
        running = claim(db, sweep_id=created.id, scheduler="none" if local else cluster.label)
        if running is None:  # a serving process took it first: it runs there
            fail(f"sweep {created.id} was taken by a serving process: GET /sweeps/{created.id}")
        with (
            cluster_client(cluster, local=local) as client,
            Progress(
                TextColumn("sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                disable=as_json,
                transient=True,
            ) as bar,
        ):
            task = bar.add_task("variants", total=created.variants)
            finished = execute_sweep(
                db,
                running,
                client=client,
                chunk_variants=cluster.chunk_variants,
                progress=lambda done, _total: bar.update(task, completed=done),
            )
    finally:
        db.dispose()
    if as_json:
        print_json({"id": finished.id, "status": finished.status, "summary": finished.summary})
    if finished.status != DONE:
        fail(f"sweep {finished.id} {finished.status}: {finished.message}")
    if not as_json:
        typer.echo(format_summary(finished.id, finished.summary or {}))


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def format_summary(sweep_id: str, summary: dict[str, Any]) -> str:
    chosen, walk, over = summary["chosen"], summary["walk_forward"], summary["overfitting"]
    period = summary["period"]
    figures = chosen["metrics"]
    oos = walk["out_of_sample"]
    lines = [
        f"sweep {sweep_id}: {summary['variants']} variants ({summary['signals']} signals), "
        f"{period['start']}..{period['end']} ({period['days']} days), objective "
        f"{summary['objective']}",
        f"chosen (best over the whole period): variant {chosen['variant']} "
        f"{json.dumps(chosen['parameters'])}",
        f"  Sharpe {_num(figures['sharpe'])}  return {_pct(figures['annualised_return'])}  "
        f"vol {_pct(figures['annualised_volatility'])}  max DD {_pct(figures['max_drawdown'])}  "
        f"Calmar {_num(figures['calmar'])}  turnover/yr {_num(figures['turnover_per_year'])}",
        f"  deflated Sharpe {_num(chosen['deflated_sharpe'])} ({chosen['trials']} trials)",
        f"walk-forward out of sample {oos['start']}..{oos['end']}: Sharpe {_num(oos['sharpe'])}  "
        f"return {_pct(oos['annualised_return'])}  max DD {_pct(oos['max_drawdown'])}  "
        f"Calmar {_num(oos['calmar'])}",
    ]
    for window in walk["windows"]:
        out = window["out_of_sample"]
        lines.append(
            f"  {window['out_of_sample_period'][0][:4]}: variant {window['variant']:>6} "
            f"in-sample {_num(window['in_sample_objective'])}  out Sharpe {_num(out['sharpe'])}  "
            f"return {_pct(out['annualised_return'])}"
        )
    if over is not None:
        lines.append(
            f"probability of backtest overfitting {_pct(over['pbo'])} "
            f"(CSCV, {over['blocks']} blocks, {over['splits']} splits)"
        )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
