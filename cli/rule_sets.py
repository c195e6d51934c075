"""``deepregime rule-sets register FILE | list | show NAME``: rule sets as data, by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from cli.common import fail, handles_errors, print_json, transaction
from operations import rule_sets

group = typer.Typer(
    help="Register, list and show rule sets (filters as data); served with ?rule_set=NAME.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="rule-sets")


def _describe(item: rule_sets.RegisteredRuleSet) -> dict:
    return rule_sets.RegisteredInfo.of_item(item).model_dump(mode="json")


@group.command("register")
@handles_errors
def register_command(
    file: Annotated[Path, typer.Argument(help="A rule set definition, JSON or YAML.")],
) -> None:
    """Register a rule set under its name (immutable: a change needs a new name)."""
    if not file.is_file():
        fail(f"{file}: no such file")
    text = file.read_text()
    try:
        document = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        fail(f"{file}: not valid {'JSON' if file.suffix == '.json' else 'YAML'}: {error}")
    definition = rule_sets.parse_definition(document)
    with transaction() as connection:
        item, created = rule_sets.register(connection, definition)
    state = "registered" if created else "already registered (identical)"
    typer.echo(f"{item.name}: {state}, fingerprint {item.fingerprint}")


@group.command("list")
@handles_errors
def list_command() -> None:
    """Every rule set by name, built-in and registered: name, origin, market, filters."""
    with transaction() as connection:
        items = rule_sets.list_rule_sets(connection)
    for item in items:
        kinds = ", ".join(f"{f.name}={f.kind}" for f in item.definition.filters)
        typer.echo(f"{item.name}  {item.version}  {item.origin}  {item.market}  {kinds}")


@group.command("show")
@handles_errors
def show_command(name: Annotated[str, typer.Argument(help="A rule set's name.")]) -> None:
    """A rule set's definition, fingerprint, origin and market, as JSON."""
    with transaction() as connection:
        print_json(_describe(rule_sets.get(connection, name)))
