"""``deepregime track-record``: the live track record GET /track-record serves
(operations.track_record), from the configured database."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.common import handles_errors, print_json, settings, transaction
from operations.track_record import resolve_stream, track_record


def register(app: typer.Typer) -> None:
    app.command("track-record")(track_record_command)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2%}"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The record in a few lines (the full one with --json)."""
    lines = [
        f"market {record['market']} ({record['symbol']}), ledger policy "
        f"{record['ledger_policy']}: {record['published_days']} published days, "
        f"prices until {record['prices_until']}"
    ]
    for model in record["probabilities"]:
        lines.append(
            f"model {model['model_version']} ({model['target']}, horizon {model['horizon']}): "
            f"{model['resolved']} resolved, {model['pending']} pending; "
            f"Brier {_score(model.get('brier'))}, ECE {_score(model.get('ece'))}, "
            f"ROC AUC {_score(model.get('roc_auc'))}"
            + (f" ({model['reason']})" if model.get("reason") else "")
        )
    exposures = record["exposures"]
    lines.append(
        f"exposures: {exposures['sessions']} sessions held ({exposures['pending']} pending), "
        f"cumulative {_percent(exposures['cumulative_return'])} against buy & hold "
        f"{_percent(exposures['buy_and_hold_cumulative_return'])}"
    )
    lines += [
        f"  {year['year']}: {_percent(year['return'])} "
        f"(buy & hold {_percent(year['buy_and_hold'])})"
        for year in exposures["years"]
    ]
    lines.append(f"corrections: {len(record['corrections'])} (not scored)")
    return lines


@handles_errors
def track_record_command(
    market: Annotated[str | None, typer.Option(help="A market (GET /markets).")] = None,
    policy: Annotated[
        str | None, typer.Option(help="rules | ensemble | model:filter | model:leveraged")
    ] = None,
    rule_set: Annotated[str | None, typer.Option(help="A rule set by name.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole record.")] = False,
) -> None:
    """What was published, scored against what then happened (GET /track-record)."""
    config = settings()
    with transaction() as connection:
        stream = resolve_stream(connection, config, market=market, policy=policy, rule_set=rule_set)
        record = track_record(connection, stream, models_dir=config.model_dir)
    if as_json:
        print_json(record)
        return
    for line in summary_lines(record):
        typer.echo(line)
