"""``deepregime keys create --role ROLE | list | revoke ID``: the service's API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import fail, handles_errors, transaction
from operations import keys

group = typer.Typer(
    help="Create, list and revoke API keys (roles: read, research, admin).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="keys")


@group.command("create")
@handles_errors
def create_command(
    role: Annotated[str, typer.Option(help="read | research | admin")],
    label: Annotated[str | None, typer.Option(help="Who or what holds it.")] = None,
    max_concurrent_sweeps: Annotated[
        int | None, typer.Option(min=0, help="Sweeps queued or running at once.")
    ] = None,
    max_variants_per_day: Annotated[
        int | None, typer.Option(min=0, help="Sweep variants queued in 24 hours.")
    ] = None,
    backtests_per_minute: Annotated[
        float | None, typer.Option(min=0, help="POST /backtest rate of this key.")
    ] = None,
) -> None:
    """Create a key; it is printed once (only its sha256 is stored). Unset quotas take
    the service's defaults."""
    quotas = keys.Quotas(max_concurrent_sweeps, max_variants_per_day, backtests_per_minute)
    with transaction() as connection:
        key, info = keys.create_key(connection, role=role, label=label, quotas=quotas)
    typer.echo(f"id {info.id}, role {info.role}; the key (shown only now):")
    typer.echo(key)


@group.command("list")
@handles_errors
def list_command() -> None:
    """Every key: id, role, created, revoked (or active), label. Never the key itself."""
    with transaction() as connection:
        items = keys.list_keys(connection)
    for item in items:
        revoked = f"revoked {item.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if item.revoked_at else "active"
        typer.echo(
            f"{item.id}  {item.role}  {item.created_at:%Y-%m-%dT%H:%M:%SZ}  {revoked}"
            f"  {item.label or ''}".rstrip()
        )


@group.command("revoke")
@handles_errors
def revoke_command(
    key_id: Annotated[str, typer.Argument(help="The key's id (keys list).")],
) -> None:
    """Revoke a key: refused from its next request on."""
    with transaction() as connection:
        info = keys.revoke_key(connection, key_id=key_id)
    if info is None:
        fail(f"no key with id {key_id!r}")
    typer.echo(f"{info.id}: revoked")
