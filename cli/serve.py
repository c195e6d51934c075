"""``deepregime serve``: the REST service with uvicorn on the configured database."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import fail, handles_errors, settings


@handles_errors
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default: DEEPREGIME_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: DEEPREGIME_PORT).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    schedule: Annotated[
        bool,
        typer.Option(
            "--schedule",
            help="Also run `deepregime update` after each NYSE close "
            "(+ DEEPREGIME_SCHEDULE_DELAY_MINUTES).",
        ),
    ] = False,
) -> None:
    """Serve the API (one process; stop with Ctrl-C). Refuses a schema behind the migrations."""
    import uvicorn

    from app.main import create_app
    from app.startup import StartupError, prepare_database
    from store.db import make_engine

    config = settings()
    bind_host, bind_port = host or config.host, port or config.port
    # Check the schema first so a refusal is one line, not a lifespan traceback.
    engine = make_engine(config.database_url, config.db_timeout_s)
    try:
        found = prepare_database(engine, config)
    except StartupError as error:
        fail(str(error))
    finally:
        engine.dispose()
    typer.echo(f"serving on http://{bind_host}:{bind_port} ({found}); docs at /docs")
    if schedule or config.schedule_updates:
        typer.echo(f"updates scheduled {config.schedule_delay_minutes:g} min after each NYSE close")
    # The wait for the database is done: the app's own start-up check must not repeat it.
    uvicorn.run(
        create_app(
            config.model_copy(
                update={
                    "startup_wait_s": 0.0,
                    "schedule_updates": schedule or config.schedule_updates,
                }
            )
        ),
        host=bind_host,
        port=bind_port,
        log_level=log_level,
        proxy_headers=True,
        access_log=False,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
