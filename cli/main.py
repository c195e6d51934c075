"""Entry point of the ``deepregime`` command."""

from __future__ import annotations

import logging

import typer

from cli import backtest, cycle, data, keys, models, rule_sets, serve, sweep, track_record

app = typer.Typer(
    name="deepregime",
    help="Market-regime signal service: update, backtest, models, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
cycle.register(app)
data.register(app)
backtest.register(app)
serve.register(app)
models.register(app)
sweep.register(app)
rule_sets.register(app)
track_record.register(app)
keys.register(app)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress.")) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


if __name__ == "__main__":
    app()
